"""The standard grpc.health.v1 service, driven by the daemon's own state.

SERVING only while the model is loaded (`daemon.serving`) and no source is degraded (a lost
microphone); NOT_SERVING as soon as stopping begins, so supervisors stop sending new work before
the port closes. A file source that reached its end is not a fault.

`Check` answers from the daemon's state at the time of the call. It used to answer from what a
poller had last seen, and the first poll after the sources started came up to POLL_S later (more
on a starved machine): `kwsd serve` said "ready" (and READY=1) while health still said
NOT_SERVING, and GetStatus at that moment showed serving with an uptime under POLL_S. The poller
remains for `Watch` streams, which are told of changes; `kwsd serve` also refreshes right after
the sources start, before it announces that it is ready.
"""

from __future__ import annotations

import logging
import threading

from grpc_health.v1 import health, health_pb2

log = logging.getLogger(__name__)

SERVICE_NAME = "kwsd.v1.Kwsd"
POLL_S = 0.25

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class _LiveHealthServicer(health.HealthServicer):
    """grpc's servicer, except that Check first brings the status up to date."""

    def __init__(self, refresh) -> None:
        super().__init__(experimental_non_blocking=True)
        self._refresh = refresh

    def Check(self, request, context):
        self._refresh()
        return super().Check(request, context)


class HealthReporter:
    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self.servicer = _LiveHealthServicer(self.update)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one evaluation and set at a time: no stale overwrite
        self._current: int | None = None
        self._thread = threading.Thread(target=self._watch, name="kwsd-health", daemon=True)
        self.update()

    def start(self) -> None:
        self._thread.start()

    def _serving(self) -> tuple[bool, str]:
        """(serving, why not)."""
        daemon = self.daemon
        if self._stop.is_set() or getattr(daemon, "stopping", False):
            return False, "stopping"
        if not getattr(daemon, "serving", False):
            return False, "not serving yet (model loading or sources not started)"
        try:
            sources = daemon.status().get("sources", [])
        except Exception as exc:  # a daemon that cannot report is not healthy
            log.warning("health: status failed, reporting NOT_SERVING: %r", exc)
            return False, f"status failed: {exc!r}"
        degraded = [str(src.get("id", "?")) for src in sources
                    if str(src.get("state", "")) == "degraded"]
        if degraded:
            return False, "source degraded: " + ", ".join(degraded)
        return True, ""

    def update(self) -> int:
        with self._lock:
            serving, why = self._serving()
            status = SERVING if serving else NOT_SERVING
            if status != self._current:
                if self._current is not None:  # not the first evaluation at construction
                    log.info("health: %s%s", health_pb2.HealthCheckResponse.ServingStatus.Name(
                        status), f" ({why})" if why else "")
                self._current = status
                for name in ("", SERVICE_NAME):
                    self.servicer.set(name, status)
            return status

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            try:
                self.update()
            except Exception:  # the poller must outlive a bad poll, or Watch goes stale
                log.exception("health: update failed")

    def shutdown(self) -> None:
        """NOT_SERVING from now on, for every service, and watchers are told."""
        self._stop.set()
        with self._lock:
            self.servicer.enter_graceful_shutdown()
            self._current = NOT_SERVING
