"""Starts the gRPC server of a running daemon: kwsd.v1.Kwsd, health and reflection, on the
Unix socket and, when configured, on TCP.

`start(daemon, api_config) -> ServerHandle` is called by `kwsd serve` once the model is loaded;
`ServerHandle.stop(grace_s)` turns health NOT_SERVING, refuses new calls with UNAVAILABLE, ends
subscriptions cleanly and closes the ports.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from grpc_reflection.v1alpha import reflection

from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.server.auth import ClientNameInterceptor, TokenAuthInterceptor
from kwsd.server.decoding import add_servicer
from kwsd.server.health import HealthReporter
from kwsd.server.servicer import KwsdServicer
from kwsd.server.transport import (
    TransportError,
    prepare_socket_dir,
    secure_socket,
    socket_path,
    tcp_endpoint,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_STREAMS = 4
DEFAULT_MAX_CHUNK_BYTES = 64 * 1024  # 2 s of 16 kHz mono, 0.33 s of 48 kHz stereo
MAX_SUBSCRIBERS = 64
"""Subscribe calls at once; each holds a worker thread (more: RESOURCE_EXHAUSTED)."""

KEEPALIVE_OPTIONS = [
    # The server pings an idle connection every 5 minutes and drops it if no answer in 20 s:
    # dead peers (suspended laptops, vanished NATs) are noticed, live ones stay for days.
    ("grpc.keepalive_time_ms", 300_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # Clients may ping every 10 s or slower, also between calls, without being cut off with
    # GOAWAY "too_many_pings" (the default allows one ping per 5 minutes). The floor is half
    # that: pings a client sends "every 10 s" arrive with jitter, and three early ones would
    # otherwise count as abuse.
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),  # the receive-side floor
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.max_ping_strikes", 2),
    # Never close a connection for being idle or old: a subscriber may wait days for an event.
    ("grpc.max_connection_idle_ms", 2**31 - 1),
    ("grpc.max_connection_age_ms", 2**31 - 1),
]


def _limit(api_config, name: str, default: int) -> int:
    value = int(getattr(api_config, name, 0) or 0)
    return value if value > 0 else default


@dataclass
class ServerHandle:
    """A running server. `address` is the primary address (the Unix socket, as grpc target)."""

    server: grpc.Server
    servicer: KwsdServicer
    health: HealthReporter
    addresses: list[str]
    socket_path: str = ""
    metrics: object | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def address(self) -> str:
        return self.addresses[0]

    def stop(self, grace_s: float = 1.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.health.shutdown()
        self.servicer.begin_stop()
        self.server.stop(grace_s).wait(grace_s + 1.0)
        if self.metrics is not None:
            self.metrics.close()
        if self.socket_path:
            try:
                os.unlink(self.socket_path)
            except FileNotFoundError:
                pass
        log.info("gRPC server stopped")


def start(daemon, api_config) -> ServerHandle:
    """Bind and start; raises TransportError (naming the [api] option) for a refused setup."""
    max_streams = _limit(api_config, "max_streams", DEFAULT_MAX_STREAMS)
    max_chunk = _limit(api_config, "max_chunk_bytes", DEFAULT_MAX_CHUNK_BYTES)
    max_subscribers = _limit(api_config, "max_subscribers", MAX_SUBSCRIBERS)
    # Room for the chunk, its framing and a config message; anything bigger is refused by gRPC
    # before it is read into memory.
    max_message = max_chunk + 4096
    tcp = tcp_endpoint(api_config)  # validate before binding anything

    interceptors = []
    if getattr(api_config, "token", ""):
        interceptors.append(TokenAuthInterceptor(api_config.token))
    allowed = getattr(api_config, "tls_client_names", ())
    if allowed:
        interceptors.append(ClientNameInterceptor(allowed))

    metrics = None
    metrics_address = getattr(api_config, "metrics", "")
    if metrics_address:
        from kwsd.server.metrics import Metrics
        metrics = Metrics(daemon, metrics_address)

    workers = max_streams + max_subscribers + 8  # + unary calls, health, reflection
    options = KEEPALIVE_OPTIONS + [
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.max_concurrent_streams", workers),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.server(ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kwsd-grpc"),
                         interceptors=interceptors, options=options,
                         maximum_concurrent_rpcs=workers)
    servicer = KwsdServicer(daemon, max_streams=max_streams, max_chunk_bytes=max_chunk,
                            max_message_bytes=max_message, max_subscribers=max_subscribers,
                            metrics=metrics)
    add_servicer(servicer, server)
    health = HealthReporter(daemon)
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    reflection.enable_server_reflection(
        (pb.DESCRIPTOR.services_by_name["Kwsd"].full_name,
         health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME), server)

    addresses: list[str] = []
    path = ""
    if getattr(api_config, "socket", None) != "none":
        path = socket_path(api_config)
        prepare_socket_dir(path, getattr(api_config, "socket_group", ""))
        if not server.add_insecure_port("unix:" + path):
            raise TransportError("socket", f"cannot listen on {path}")
        addresses.append("unix:" + path)
    if tcp is not None:
        target = tcp.target.grpc_target
        port = (server.add_secure_port(target, tcp.credentials) if tcp.credentials
                else server.add_insecure_port(target))
        if not port:
            raise TransportError("tcp", f"cannot listen on {target}")
        host = f"[{tcp.target.host}]" if ":" in tcp.target.host else tcp.target.host
        addresses.append(f"{host}:{port}")
    if not addresses:
        raise TransportError("socket", "nothing to listen on: socket is 'none' and tcp is empty")

    server.start()
    if path:
        secure_socket(path, int(getattr(api_config, "socket_mode", 0o660)),
                      getattr(api_config, "socket_group", ""))
    health.start()
    log.info("gRPC API on %s", ", ".join(addresses))
    return ServerHandle(server, servicer, health, addresses, path, metrics)
