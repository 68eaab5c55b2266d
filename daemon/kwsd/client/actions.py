"""What `kwsd listen` does with an event: print it, and run commands with the event in the
environment. Commands run without a shell (argv split once with shlex) unless the user asks for
one, so text from an event can never become shell syntax.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import time
from collections.abc import Sequence

from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.events import round_score
from kwsd.server.messages import event_from_pb

log = logging.getLogger(__name__)

MAX_RUNNING = 8
"""Commands running at once; a burst of detections beyond this waits for the oldest."""


def event_env(event: pb.Event) -> dict[str, str]:
    """The event as KWSD_* environment variables."""
    ev = event_from_pb(event)
    return {
        "KWSD_KIND": ev.kind.value,
        "KWSD_KEYWORD": ev.keyword,
        "KWSD_CONFIDENCE": str(round_score(ev.confidence)),
        "KWSD_THRESHOLD": str(round_score(ev.threshold)),
        "KWSD_START_S": f"{ev.start_s:.3f}",
        "KWSD_END_S": f"{ev.end_s:.3f}",
        "KWSD_START_SAMPLE": str(ev.start_sample),
        "KWSD_END_SAMPLE": str(ev.end_sample),
        "KWSD_SOURCE": ev.source_id,
        "KWSD_SEQUENCE": str(ev.sequence),
        "KWSD_MODEL": ev.model_id,
        "KWSD_WALL_TIME": f"{ev.wall_time:.3f}",
        "KWSD_EVENTS_LOST": str(event.events_lost),
    }


def event_json(event: pb.Event) -> str:
    data = event_from_pb(event).to_dict()
    data["threshold"] = round_score(data["threshold"])  # float32 on the wire: 0.30000001...
    data["events_lost"] = event.events_lost
    return json.dumps(data, sort_keys=True)


def event_line(event: pb.Event) -> str:
    ev = event_from_pb(event)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ev.wall_time))
    stamp += f".{int(ev.wall_time * 1000) % 1000:03d}"
    lost = f"  ({event.events_lost} events lost)" if event.events_lost else ""
    if event.kind == pb.EVENT_KIND_DETECTION:
        return (f"{stamp}  {ev.keyword:<12} {ev.confidence:.2f} "
                f"(threshold {round_score(ev.threshold)})  {ev.source_id}  "
                f"{ev.start_s:.2f}-{ev.end_s:.2f} s  #{ev.sequence}{lost}")
    what = "speech begins" if event.kind == pb.EVENT_KIND_SPEECH_BEGIN else "speech ends"
    return f"{stamp}  [{what}]  {ev.source_id}  {ev.start_s:.2f} s  #{ev.sequence}{lost}"


class CommandRunner:
    """Starts commands without waiting for them (the next event must not wait), reaps them,
    and logs failures. `close()` waits for the ones still running."""

    def __init__(self) -> None:
        self._running: list[tuple[list[str], subprocess.Popen]] = []

    def run(self, argv: Sequence[str], env: dict[str, str]) -> None:
        self._reap()
        while len(self._running) >= MAX_RUNNING:
            self._finish(*self._running.pop(0))
        try:
            proc = subprocess.Popen(list(argv), env={**os.environ, **env},
                                    stdin=subprocess.DEVNULL)
        except OSError as exc:
            log.error("cannot run %s: %s", shlex.join(argv), exc.strerror or exc)
            return
        self._running.append((list(argv), proc))

    def _reap(self) -> None:
        still = []
        for argv, proc in self._running:
            if proc.poll() is None:
                still.append((argv, proc))
            else:
                self._report(argv, proc.returncode)
        self._running = still

    def _finish(self, argv: list[str], proc: subprocess.Popen, timeout: float | None = None):
        try:
            self._report(argv, proc.wait(timeout))
        except subprocess.TimeoutExpired:
            log.warning("%s still running; leaving it", shlex.join(argv))

    @staticmethod
    def _report(argv: list[str], code: int) -> None:
        if code:
            log.warning("%s exited with status %d", shlex.join(argv), code)

    def close(self, timeout_s: float = 30.0) -> None:
        for argv, proc in self._running:
            self._finish(argv, proc, timeout_s)
        self._running = []


def command_argv(command: str, shell: bool) -> list[str]:
    """--exec CMD: split once with shlex, or hand the string to /bin/sh with --shell."""
    if shell:
        return ["/bin/sh", "-c", command]
    argv = shlex.split(command)
    if not argv:
        raise ValueError("--exec: empty command")
    return argv
