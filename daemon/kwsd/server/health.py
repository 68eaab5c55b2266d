"""The standard grpc.health.v1 service, driven by the daemon's own state.

SERVING only while the model is loaded (`daemon.serving`) and no source is degraded (a lost
microphone); NOT_SERVING as soon as stopping begins, so supervisors stop sending new work before
the port closes. A file source that reached its end is not a fault.
"""

from __future__ import annotations

import logging
import threading

from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)

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

    def _serving(self) -> bool:
        daemon = self.daemon
        if (self._stop.is_set() or not getattr(daemon, "serving", False)
                or getattr(daemon, "stopping", False)):
            return False
        try:
            sources = daemon.status().get("sources", [])
        except Exception as exc:  # a daemon that cannot report is not healthy
            log.warning("health: status failed, reporting NOT_SERVING: %r", exc)
            return False
        return all(str(src.get("state", "")) != "degraded" for src in sources)

    def update(self) -> int:
        serving = self._serving()
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
