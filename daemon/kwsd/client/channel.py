"""Opening a channel to the daemon: Unix socket by default, TCP with TLS and/or a token.

The same rules as the server: TCP without TLS only to a loopback address and only when the
caller says `insecure_loopback=True`, so a token is never sent in clear over a network by
accident.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from kwsd.address import Target, parse_target

CHANNEL_OPTIONS = [
    # Ping every minute (the server allows one per 10 s): a dead daemon or network is noticed
    # within ~80 s, and an idle subscription stays up for days.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    # gRPC's own reconnect backoff grows to 2 minutes by default, and calls fail at once while
    # it waits; capped at 5 s, a restarted daemon is found again within seconds.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 5_000),
]


@dataclass(frozen=True)
class Connection:
    """How to reach a daemon; `open()` makes a channel, `metadata` goes with every call."""

    address: str = ""
    token: str = ""
    tls: bool = False
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    server_name: str = ""
    insecure_loopback: bool = False

    @property
    def target(self) -> Target:
        return parse_target(self.address or _default_address())

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

    def _credentials(self, target: Target) -> grpc.ChannelCredentials | None:
        if target.is_unix:
            return None
        if self.tls or self.tls_ca or self.tls_cert:
            if bool(self.tls_cert) != bool(self.tls_key):
                raise ValueError("tls_cert and tls_key go together (client certificate)")
            return grpc.ssl_channel_credentials(
                root_certificates=_read(self.tls_ca) if self.tls_ca else None,
                private_key=_read(self.tls_key) if self.tls_key else None,
                certificate_chain=_read(self.tls_cert) if self.tls_cert else None)
        if not target.is_loopback:
            raise ValueError(f"{target.grpc_target}: TCP without TLS is refused; give a CA "
                             "(tls_ca) or use the Unix socket")
        if not self.insecure_loopback:
            raise ValueError(f"{target.grpc_target}: plain TCP needs insecure_loopback=True "
                             "(or TLS)")
        return None

    def _options(self) -> list[tuple[str, object]]:
        options = list(CHANNEL_OPTIONS)
        if self.server_name:
            options.append(("grpc.ssl_target_name_override", self.server_name))
        return options

    def open(self) -> grpc.Channel:
        target = self.target
        creds = self._credentials(target)
        if creds is None:
            return grpc.insecure_channel(target.grpc_target, options=self._options())
        return grpc.secure_channel(target.grpc_target, creds, options=self._options())

    def open_aio(self) -> grpc.aio.Channel:
        target = self.target
        creds = self._credentials(target)
        if creds is None:
            return grpc.aio.insecure_channel(target.grpc_target, options=self._options())
        return grpc.aio.secure_channel(target.grpc_target, creds, options=self._options())


def _default_address() -> str:
    from kwsd.address import default_socket_path

    return "unix:" + default_socket_path()


def _read(path: str) -> bytes:
    try:
        return Path(path).expanduser().read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from None
