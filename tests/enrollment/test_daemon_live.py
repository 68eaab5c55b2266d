"""A running daemon picks up a keyword enrolled while it runs (no restart) and reports it like
a trained keyword, marked enrolled; removing it stops that."""

from __future__ import annotations

import shutil
import time

import numpy as np
from kwsd.audio.audiofile import read_audio_16k, write_wav_16k
from kwsd.config import default_model_path, load_config
from kwsd.engine.daemon import Daemon
from kwsd.enrollment import store
from kwsd.enrollment.enroll import enroll
from kwsd.events import EventKind
from recordings import DATA, SPEECH_WAV

OPERATOR_17 = DATA / "wuw-dev" / "00017" / "WUWII00017_001.wav"


def _wait_for(pred, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_enrolled_while_running_is_detected(tmp_path, monkeypatch):
    keywords = tmp_path / "keywords"
    monkeypatch.setenv("KWSD_KEYWORDS_DIR", str(keywords))
    monkeypatch.setenv("KWSD_CACHE_DIR", str(tmp_path / "cache"))
    bank = tmp_path / "bank"
    bank.mkdir()
    shutil.copy(SPEECH_WAV, bank / "speech.wav")
    example = read_audio_16k(OPERATOR_17)
    gap = np.zeros(8000, np.int16)
    wav = tmp_path / "in.wav"
    write_wav_16k(wav, np.concatenate([read_audio_16k(SPEECH_WAV), gap, example, gap]))
    cfg = tmp_path / "kwsd.toml"
    cfg.write_text(f'[model]\npath = "{default_model_path()}"\n[audio]\nsource = "wav"\n'
                   f'wav = "{wav}"\nrealtime = false\nloop = true\n')
    daemon = Daemon(load_config(cfg))
    sub = daemon.bus.subscribe("t", queue_size=10000)
    daemon.start()
    try:
        assert not daemon.enrolled
        from kwsd.model.bundle import load_bundle

        kw = enroll(load_bundle(default_model_path()), "hey op", [example], bank=bank).keyword
        store.save(kw, None)
        assert _wait_for(lambda: bool(daemon.enrolled) and daemon.enrolled.names == ["hey op"])
        found = None
        for _ in range(5000):
            ev = sub.get(timeout=10)
            assert ev is not None
            if ev.kind == EventKind.DETECTION and ev.keyword == "hey op":
                found = ev
                break
        assert found is not None
        assert found.extra["enrolled"] is True and found.confidence >= kw.threshold
        stream = daemon.open_stream("client")
        assert "hey op" in stream.decision.keywords
        stream.close()
        store.remove("hey op")
        assert _wait_for(lambda: not daemon.enrolled)
        assert "hey op" not in daemon.open_stream("client-2").decision.keywords
    finally:
        daemon.stop()
