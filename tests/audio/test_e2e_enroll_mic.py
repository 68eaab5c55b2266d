"""Issue 12 end to end: `kwsd enroll --record 3` through a real (virtual) microphone while
`kwsd serve` runs on the same microphone; the daemon then reports the phrase, marked enrolled,
without a restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from kwsd.audio.audiofile import read_audio_16k
from kwsd.config import default_model_path
from recordings import DATA, SPEECH_WAV

from .serve_proc import Serve
from .speech import silence

REPO = Path(__file__).resolve().parents[2]
OPERATOR_17 = DATA / "wuw-dev" / "00017" / "WUWII00017_001.wav"


def test_enroll_by_microphone_into_a_running_daemon(virtual_mic, tmp_path, monkeypatch):
    bank = tmp_path / "bank"
    bank.mkdir()
    shutil.copy(SPEECH_WAV, bank / "speech.wav")
    monkeypatch.setenv("KWSD_NEGATIVES_DIR", str(bank))
    monkeypatch.setenv("KWSD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KWSD_KEYWORDS_DIR", str(tmp_path / "keywords"))
    phrase = read_audio_16k(OPERATOR_17)
    serve = Serve("--model", str(default_model_path()))
    enroll = None
    try:
        serve.wait_log("ready:", 120)
        enroll = subprocess.Popen(
            [sys.executable, "-m", "kwsd", "enroll", "hey op", "--record", "3"],
            env=dict(os.environ, PYTHONPATH=str(REPO / "daemon")), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        out: list[str] = []

        def speak_on_prompt() -> None:
            for line in enroll.stdout:
                out.append(line.rstrip())
                if line.startswith("say "):
                    virtual_mic.feed(silence(0.5))
                    virtual_mic.feed(phrase)
                    virtual_mic.feed(silence(1.5))

        reader = threading.Thread(target=speak_on_prompt, daemon=True)
        reader.start()
        assert enroll.wait(180) == 0, out
        reader.join(5)
        assert sum(line.startswith("say ") for line in out) == 3, out
        assert any(line.startswith("enrolled 'hey op'") for line in out), out
        time.sleep(2.0)           # the daemon polls the keywords directory every second
        virtual_mic.feed(silence(1.0))
        virtual_mic.feed(phrase)
        virtual_mic.feed(silence(2.0))
        deadline = time.monotonic() + 60
        found = []
        while time.monotonic() < deadline and not found:
            found = [e for e in serve.events
                     if e["kind"] == "detection" and e["keyword"] == "hey op"]
            time.sleep(0.1)
        assert found, (serve.events[-10:], serve.log[-10:])
        assert found[0]["enrolled"] is True
    finally:
        if enroll is not None and enroll.poll() is None:
            enroll.kill()
        serve.kill()
