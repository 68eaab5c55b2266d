"""The life of `kwsd serve`: start, tell systemd, keep the watchdog fed, reload, stop.

Runs on the main thread, where the signal handlers run: SIGTERM/SIGINT ask for a stop, SIGHUP
for a reload; both only set flags, the loop below acts on them. The watchdog is fed only while
the daemon's inference loops keep turning, so a stuck pipeline makes systemd restart us.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, TextIO

from kwsd.config import Config, ConfigError
from kwsd.engine.daemon import Daemon, DaemonError
from kwsd.events import Event, EventKind
from kwsd.systemd_notify import Notifier, watchdog_interval

log = logging.getLogger(__name__)

STOP_BUDGET_S = 1.5   # SIGTERM -> exit must stay under 2 s


def exit_now(rc: int) -> None:
    """Leave the process once everything is shut down, skipping interpreter finalisation.

    Measured here: with torch loaded and a PulseAudio capture stream having been open, plain
    interpreter exit lingers ~2 s in library destructors after our clean shutdown, which would
    break the "SIGTERM -> gone within 2 s" promise. Everything that matters (bus closed,
    sockets removed, logs) is finished before this is called.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)


def start_api(daemon: Daemon, config: Config) -> Any:
    """Start the gRPC server when that part of kwsd is installed; None if it is not."""
    try:
        from kwsd.server import grpc_server
    except ImportError as exc:
        log.warning("gRPC API not available (%s): serving without it", exc)
        return None
    handle = grpc_server.start(daemon, config.api)
    log.info("gRPC API listening on %s", getattr(handle, "address", "?"))
    return handle


def format_event(event: Event) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(event.wall_time))
    ms = int((event.wall_time % 1) * 1000)
    if event.kind == EventKind.DETECTION:
        return (f"{stamp}.{ms:03d}  {event.keyword:<14} {event.confidence:.2f}  "
                f"[{event.start_s:7.2f} - {event.end_s:7.2f} s]  {event.source_id}")
    label = "speech begins" if event.kind == EventKind.SPEECH_BEGIN else "speech ends"
    return f"{stamp}.{ms:03d}  ({label} at {event.start_s:.2f} s)  {event.source_id}"


def console_subscriber(daemon: Daemon, out: TextIO = sys.stdout, speech: bool = False,
                       as_json: bool = False) -> threading.Thread:
    """Print each detection as it arrives (an in-process subscriber on the bus)."""
    sub = daemon.bus.subscribe(
        "console", None if speech else (lambda e: e.kind == EventKind.DETECTION))

    def run() -> None:
        for event in sub:
            line = json.dumps(event.to_dict()) if as_json else format_event(event)
            print(line, file=out, flush=True)

    thread = threading.Thread(target=run, name="console", daemon=True)
    thread.start()
    return thread


class Lifecycle:
    """Signals, sd_notify and the main loop around one Daemon."""

    def __init__(self, config: Config, *, api: bool = True, exit_at_end: bool = False,
                 console: TextIO | None = None, console_speech: bool = False,
                 on_ready: Any = None, console_json: bool = False) -> None:
        self.config = config
        self.api = api
        self.exit_at_end = exit_at_end
        self.console = console
        self.console_speech = console_speech
        self.console_json = console_json
        self.on_ready = on_ready          # called with the Lifecycle once serving (demo client)
        self.notifier = Notifier()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._wake = threading.Event()    # a signal arrived: act on it now
        self.daemon: Daemon | None = None
        self.server: Any = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGHUP:
            self._reload.set()
        else:
            self._stop.set()
        self._wake.set()

    def request_stop(self) -> None:
        """What SIGTERM does, for callers that embed the loop."""
        self._stop.set()
        self._wake.set()

    def install_signals(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def run(self) -> int:
        self.install_signals()
        self.notifier.status("loading model")
        daemon = self.daemon = Daemon(self.config)
        try:
            daemon.load()
            if self.console is not None:
                console_subscriber(daemon, self.console, self.console_speech,
                                   self.console_json)
            if self.api:
                self.server = start_api(daemon, self.config)
            if self.on_ready is not None:
                self.on_ready(self)          # e.g. the demo's subscriber: before any event
            daemon.start_sources()
            # Health says SERVING before "ready" is announced (its poller would take a while).
            health = getattr(self.server, "health", None)
            if health is not None:
                health.update()
        except (DaemonError, ConfigError) as exc:
            log.error("cannot start: %s", exc)
            self.notifier.status(f"failed: {exc}")
            daemon.stop(0.5)
            return 2
        except Exception as exc:  # e.g. the API's socket cannot be created
            log.error("cannot start: %s", exc)
            self.notifier.status(f"failed: {exc}")
            daemon.stop(0.5)
            return 2
        self.notifier.ready(daemon.status_line())
        log.info("ready: %s", daemon.status_line())
        return self._loop(daemon)

    def _loop(self, daemon: Daemon) -> int:
        wd = watchdog_interval()
        max_age = max(1.0, min(5.0, wd / 2)) if wd else 5.0
        next_wd = 0.0
        status_every = self.config.engine.status_interval_s
        next_status = time.monotonic() + status_every
        last_line = ""
        while not self._stop.is_set():
            # Sleep until the next thing to do (few wake-ups: this runs all day); a signal
            # sets _wake and ends the wait at once.
            now = time.monotonic()
            due = [next_status, now + (0.25 if self.exit_at_end else 5.0)]
            if wd:
                due.append(next_wd)
            self._wake.wait(max(0.0, min(due) - now))
            self._wake.clear()
            if self._stop.is_set():
                break
            now = time.monotonic()
            if self._reload.is_set():
                self._reload.clear()
                self.notifier.reloading()
                log.info("SIGHUP: reloading %s", daemon.config.path or "(defaults)")
                daemon.reload()
                self.config = daemon.config
                status_every = self.config.engine.status_interval_s
                self.notifier.ready(daemon.status_line())
            if wd and now >= next_wd:
                if daemon.healthy(max_age):
                    self.notifier.watchdog()
                    next_wd = now + wd / 2
                else:
                    next_wd = now + 0.25     # stuck: no ping; look again soon
            if now >= next_status:
                line = daemon.status_line()
                if line != last_line:
                    self.notifier.status(line)
                    last_line = line
                next_status = now + status_every
            if self.exit_at_end and daemon.sources_finished:
                log.info("all sources ended")
                break
        return self.shutdown()

    def shutdown(self) -> int:
        t0 = time.monotonic()
        self.notifier.stopping()
        log.info("stopping")
        daemon = self.daemon
        if self.server is not None:
            try:
                self.server.stop(0.5)
            except Exception as exc:
                log.warning("API stop: %s", exc)
        if daemon is not None:
            daemon.stop(max(0.1, STOP_BUDGET_S - (time.monotonic() - t0)))
        log.info("stopped in %.2f s", time.monotonic() - t0)
        self.notifier.close()
        return 0
