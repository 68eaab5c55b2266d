"""`kwsd enroll --text`: examples rendered by the installed offline voices enroll a keyword."""

from __future__ import annotations

import shutil

from kwsd.config import default_model_path
from kwsd.enrollment.enroll import enroll
from kwsd.enrollment.text import synthetic_examples
from kwsd.enrollment.trim import trim
from kwsd.model.bundle import load_bundle
from recordings import SPEECH_WAV


def test_text_renderings_are_speech_and_enroll(tmp_path, monkeypatch):
    monkeypatch.setenv("KWSD_CACHE_DIR", str(tmp_path / "cache"))
    bank = tmp_path / "bank"
    bank.mkdir()
    shutil.copy(SPEECH_WAV, bank / "speech.wav")
    examples = synthetic_examples("hey kitchen", count=3)
    assert 1 <= len(examples) <= 3
    for x in examples:
        assert 0.3 < len(trim(x)) / 16000 < 1.5
    # as `kwsd enroll --text` does: the voices differ by design, so no "unlike the others"
    res = enroll(load_bundle(default_model_path()), "hey kitchen", examples, bank=bank,
                 check_alike=False)
    assert res.ok, [c.describe() for c in res.checks]
    assert len(res.keyword.templates) == len(examples)
