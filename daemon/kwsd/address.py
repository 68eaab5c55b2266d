"""Daemon addresses, shared by the server (to bind) and the clients (to connect).

The default socket path comes from one place (kwsd.config.ApiConfig.resolved_socket) so that
`kwsd serve` and `kwsd listen` agree without configuration: /run/kwsd/kwsd.sock for the system
service, $XDG_RUNTIME_DIR/kwsd/kwsd.sock for a user's daemon.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass


def default_socket_path() -> str:
    """The socket path used when `[api] socket` is empty (kwsd.config decides, for both sides)."""
    from kwsd.config import ApiConfig

    return ApiConfig().resolved_socket()


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed daemon address: a Unix socket path, or TCP host and port."""

    unix_path: str = ""
    host: str = ""
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return bool(self.unix_path)

    @property
    def grpc_target(self) -> str:
        """The string grpc.*_channel and add_*_port expect."""
        if self.unix_path:
            return "unix:" + self.unix_path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.unix_path:
            return True
        return is_loopback_host(self.host)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_target(address: str) -> Target:
    """'unix:///p', 'unix:/p', '/p' -> Unix socket; 'host:port', '[::1]:port' -> TCP.

    Raises ValueError naming what is wrong, so a typo in --address is reported, not retried.
    """
    address = address.strip()
    if not address:
        return Target(unix_path=default_socket_path())
    if address.startswith("unix://"):
        path = address[len("unix://"):]
    elif address.startswith("unix:"):
        path = address[len("unix:"):]
    elif address.startswith(("/", "./", "~")):
        path = address
    else:
        host, sep, port_text = address.rpartition(":")
        if not sep or not host:
            raise ValueError(f"address {address!r}: expected unix:///path, /path or host:port")
        host = host.strip("[]")
        try:
            port = int(port_text)
        except ValueError:
            raise ValueError(f"address {address!r}: port {port_text!r} is not a number") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"address {address!r}: port {port} is out of range 0..65535")
        return Target(host=host, port=port)
    if not path:
        raise ValueError(f"address {address!r}: empty socket path")
    return Target(unix_path=os.path.abspath(os.path.expanduser(path)))
