"""Where and how the server listens: the Unix socket (default) and optional TCP with TLS.

The socket's permissions are the access control of the default setup, so the parent directory
is created private (0700, or 0750 with a group) before the socket exists, and the socket is
chmod/chgrp'ed right after binding. TCP without TLS is refused unless the address is loopback
and the config says `insecure_loopback = true`: a token sent in clear over a network is a token
given away.
"""

from __future__ import annotations

import grp
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

import grpc

from kwsd.address import Target, default_socket_path, parse_target
from kwsd.config import ConfigError

log = logging.getLogger(__name__)


class TransportError(ConfigError):
    """A listening setup that kwsd refuses or cannot make; names the `[api]` option."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"api.{option}", message)


def socket_path(api_config) -> str:
    path = api_config.resolved_socket() if hasattr(api_config, "resolved_socket") else ""
    return os.path.abspath(os.path.expanduser(path or api_config.socket or
                                              default_socket_path()))


def _group_id(group: str) -> int | None:
    if not group:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        if group.isdigit():
            return int(group)
        raise TransportError("socket_group", f"no group named {group!r}") from None


def prepare_socket_dir(path: str, group: str) -> None:
    """Create the socket's directory with safe permissions and clear a stale socket.

    A live socket (another daemon answers) is an error rather than something to steal; a path
    that is not a socket is never deleted.
    """
    parent = Path(path).parent
    gid = _group_id(group)
    if not parent.exists():
        parent.mkdir(parents=True, mode=0o750 if gid is not None else 0o700)
        if gid is not None:
            os.chown(parent, -1, gid)
            os.chmod(parent, 0o750)
    elif parent.stat().st_mode & stat.S_IWOTH and not parent.stat().st_mode & stat.S_ISVTX:
        raise TransportError("socket", f"{parent} is world-writable: choose a private directory")
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise TransportError("socket", f"{path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # stale: left by a daemon that died
        else:
            raise TransportError("socket", f"{path} is in use by a running daemon")
        finally:
            probe.close()


def secure_socket(path: str, mode: int, group: str) -> None:
    gid = _group_id(group)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, mode)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One address the server binds."""

    target: Target
    credentials: grpc.ServerCredentials | None  # None: plaintext (Unix socket or loopback)


def _read(option: str, path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise TransportError(option, f"cannot read {path}: {exc.strerror}") from None


def tcp_endpoint(api_config) -> Endpoint | None:
    """The TCP endpoint the config asks for, or None; refuses unsafe combinations."""
    if not api_config.tcp:
        return None
    try:
        target = parse_target(api_config.tcp)
    except ValueError as exc:
        raise TransportError("tcp", str(exc)) from None
    if target.is_unix:
        raise TransportError("tcp", f"{api_config.tcp!r} is not host:port")
    if bool(api_config.tls_cert) != bool(api_config.tls_key):
        raise TransportError("tls_cert" if not api_config.tls_cert else "tls_key",
                             "tls_cert and tls_key must be given together")
    if api_config.tls_cert:
        client_ca = (_read("tls_client_ca", api_config.tls_client_ca)
                     if api_config.tls_client_ca else None)
        creds = grpc.ssl_server_credentials(
            [(_read("tls_key", api_config.tls_key), _read("tls_cert", api_config.tls_cert))],
            root_certificates=client_ca, require_client_auth=client_ca is not None)
        return Endpoint(target, creds)
    if api_config.tls_client_ca:
        raise TransportError("tls_client_ca", "client certificates need tls_cert and tls_key")
    if not target.is_loopback:
        raise TransportError("tcp", f"plain TCP on {target.host} is refused: configure "
                             "tls_cert/tls_key, or listen on loopback with insecure_loopback")
    if not api_config.insecure_loopback:
        raise TransportError("insecure_loopback",
                             f"plain TCP on {api_config.tcp} needs insecure_loopback = true "
                             "(or TLS with tls_cert/tls_key)")
    return Endpoint(target, None)
