"""A real daemon with its real gRPC server, started and stopped by the API and reliability
tests (each suite builds its own config: what differs is the audio they feed)."""

from __future__ import annotations

from dataclasses import dataclass

KEYWORDS = ("yes", "no")
"""The labels of the random-weight test bundle (`random_bundle` in tests/conftest.py)."""
LOW_THRESHOLD = 0.3
"""Random weights give posteriors near 1/4 each; 0.3 makes them fire now and then."""


@dataclass
class Running:
    daemon: object
    handle: object
    config: object

    @property
    def address(self) -> str:
        return self.handle.address

    @property
    def socket(self) -> str:
        return self.config.api.socket

    def stop(self) -> None:
        self.handle.stop(0.5)
        self.daemon.stop()


def start(config) -> Running:
    """Daemon and server up (the daemon is stopped again if the server cannot start)."""
    from kwsd.engine.daemon import Daemon
    from kwsd.server.grpc_server import start as start_server

    daemon = Daemon(config)
    daemon.start()
    try:
        handle = start_server(daemon, config.api)
    except BaseException:
        daemon.stop()
        raise
    return Running(daemon, handle, config)
