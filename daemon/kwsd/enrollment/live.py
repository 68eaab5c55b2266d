"""Enrolled keywords in the running daemon: load those made for its encoder, and notice when
`kwsd enroll` / `kwsd keywords remove` change them (no restart)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from kwsd.enrollment import store
from kwsd.enrollment.detector import EnrolledSet

log = logging.getLogger(__name__)


def load_enrolled(bundle, root: Path | None = None) -> EnrolledSet:
    """The enrolled keywords usable with this bundle; each unusable one is logged as an error
    that says why (another encoder: re-enroll with --again) and left out."""
    from kwsd.enrollment.features import encoder_id

    try:
        usable, problems = store.load_for_encoder(encoder_id(bundle), root)
    except OSError as exc:
        log.error("enrolled keywords: %s", exc)
        return EnrolledSet()
    for p in problems:
        log.error("%s", p)
    usable = [k for k in usable if k.name not in bundle.keywords]
    if usable:
        log.info("enrolled keywords: %s", ", ".join(k.name for k in usable))
    return EnrolledSet(usable)


def signature(root: Path | None = None) -> tuple:
    """Changes when a keyword is added, replaced or removed."""
    root = Path(root or store.keywords_dir())
    try:
        return tuple(sorted((f.name, (f / "keyword.json").stat().st_mtime_ns)
                            for f in root.iterdir()
                            if not f.name.startswith(".") and (f / "keyword.json").is_file()))
    except OSError:
        return ()


class KeywordsWatcher:
    """Polls the keywords directory (cheap: one listing) and calls `on_change` after a change."""

    def __init__(self, on_change: Callable[[], None], interval_s: float = 1.0,
                 root: Path | None = None) -> None:
        self.on_change = on_change
        self.interval_s = interval_s
        self.root = root
        self._sig = signature(root)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="enrolled-keywords", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            sig = signature(self.root)
            if sig != self._sig:
                self._sig = sig
                try:
                    self.on_change()
                except Exception:
                    log.exception("enrolled keywords: reloading failed")
