"""The standard grpc.health.v1 service, driven by the daemon's own state.

SERVING only while the model is loaded and the sources run (`daemon.serving`); NOT_SERVING as
soon as stopping begins, so supervisors stop sending new work before the port closes.
"""

from __future__ import annotations

import threading

from grpc_health.v1 import health, health_pb2

SERVICE_NAME = "kwsd.v1.Kwsd"
POLL_S = 0.25


class HealthReporter:
    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.servicer = health.HealthServicer(experimental_non_blocking=True)
        self._stop = threading.Event()
        self._current: int | None = None
        self._thread = threading.Thread(target=self._watch, name="kwsd-health", daemon=True)
        self.update()

    def start(self) -> None:
        self._thread.start()

    def update(self) -> int:
        serving = (bool(getattr(self.daemon, "serving", False))
                   and not getattr(self.daemon, "stopping", False) and not self._stop.is_set())
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        if status != self._current:
            self._current = status
            for name in ("", SERVICE_NAME):
                self.servicer.set(name, status)
        return status

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            self.update()

    def shutdown(self) -> None:
        """NOT_SERVING from now on, for every service, and watchers are told."""
        self._stop.set()
        self.servicer.enter_graceful_shutdown()
        self._current = health_pb2.HealthCheckResponse.NOT_SERVING
