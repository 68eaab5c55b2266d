"""sd_notify(3) in plain Python: datagrams to `$NOTIFY_SOCKET`, no libsystemd needed.

Outside systemd (no NOTIFY_SOCKET) every call is a cheap no-op, so the daemon calls these
unconditionally. The watchdog interval comes from WATCHDOG_USEC (honoured only when
WATCHDOG_PID is unset or ours); the daemon pings at half of it, and only while its pipelines make
progress, so systemd restarts a daemon that is alive but stuck.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        self.address = os.environ.get("NOTIFY_SOCKET", "") if address is None else address
        self._sock: socket.socket | None = None
        self.sent: list[str] = []          # last messages, for status and tests
        if self.address:
            target = self.address
            if target.startswith("@"):     # abstract namespace
                target = "\0" + target[1:]
            elif not target.startswith("/"):
                log.warning("NOTIFY_SOCKET=%r is neither a path nor abstract; ignored",
                            self.address)
                self.address = ""
                return
            self._target = target
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *lines: str) -> bool:
        if self._sock is None:
            return False
        msg = "\n".join(lines)
        try:
            self._sock.sendto(msg.encode("utf-8", "replace"), self._target)
        except OSError as exc:  # systemd gone or socket full: never fatal
            log.debug("sd_notify failed: %s", exc)
            return False
        self.sent = (self.sent + [msg])[-20:]
        return True

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text.replace(chr(10), ' ')}")

    def reloading(self) -> bool:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval() -> float | None:
    """Seconds systemd waits for WATCHDOG=1 (None: no watchdog for this process)."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1_000_000
