"""Enrollment with the shipped model on real recordings: templates, calibration, the live
pipeline deciding enrolled keywords with the bundle's own Decision, and storage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from kwsd.audio.audiofile import read_audio_16k, write_wav_16k
from kwsd.config import default_model_path
from kwsd.engine.pipeline import Pipeline
from kwsd.enrollment import store
from kwsd.enrollment.detector import SCORER, EnrolledSet
from kwsd.enrollment.enroll import enroll
from kwsd.enrollment.features import encoder_id
from kwsd.events import EventKind
from kwsd.model.bundle import load_bundle
from recordings import DATA, SPEECH_WAV, WUW_8KHZ_WAV

OPERATOR_17 = DATA / "wuw-dev" / "00017" / "WUWII00017_001.wav"
VOYAGER_7 = DATA / "wuw-dev" / "00007" / "WUWII00007_005.wav"


@pytest.fixture(scope="module")
def bundle():
    import torch

    torch.set_num_threads(1)
    return load_bundle(default_model_path())


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """A small negative bank: real speech without the phrase (4 s of command words)."""
    d = tmp_path_factory.mktemp("bank")
    shutil.copy(SPEECH_WAV, d / "speech.wav")
    return d


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KWSD_CACHE_DIR", str(tmp_path / "cache"))


def test_one_example_enrolls_and_the_stream_finds_it(bundle, bank):
    example = read_audio_16k(OPERATOR_17)
    res = enroll(bundle, "hey op", [example], bank=bank)
    assert res.ok, [c.describe() for c in res.checks]
    kw = res.keyword
    assert kw.encoder_id == encoder_id(bundle) and kw.encoder_id.startswith("sha256:")
    assert 0.0 < kw.threshold < 1.0
    assert res.calibration["bank_hours"] > 0
    assert 0.25 < kw.duration_s < 1.0

    speech = read_audio_16k(SPEECH_WAV)
    gap = np.zeros(8000, np.int16)
    stream = np.concatenate([speech, gap, example, gap])
    events = Pipeline(bundle, "t", enrolled=EnrolledSet([kw])).run(stream)
    found = [e for e in events if e.kind == EventKind.DETECTION and e.keyword == "hey op"]
    assert len(found) == 1
    e = found[0]
    assert e.extra["enrolled"] is True and e.threshold == pytest.approx(kw.threshold)
    assert e.confidence >= kw.threshold
    offset = (len(speech) + len(gap)) / 16000
    assert offset + 0.3 < e.end_s < offset + 1.6        # the phrase is at 0.56-1.18 s in the clip
    # bundle keywords keep their events, marked as not enrolled
    assert all(not ev.extra["enrolled"] for ev in events
               if ev.kind == EventKind.DETECTION and ev.keyword != "hey op")


def test_bad_examples_are_refused_with_reasons(bundle, bank):
    good = read_audio_16k(OPERATOR_17)
    short = good[9000:10600]                     # 0.1 s of the word
    res = enroll(bundle, "hey op", [good, short], bank=bank)
    assert not res.ok and res.keyword is None
    assert res.checks[0].ok
    assert any("too short" in p for p in res.checks[1].problems)


def test_different_words_are_unlike_each_other(bundle, bank):
    same_a, same_b = read_audio_16k(OPERATOR_17), read_audio_16k(WUW_8KHZ_WAV)
    res = enroll(bundle, "hey op", [same_a, same_b, same_a, read_audio_16k(VOYAGER_7)],
                 bank=bank)
    assert not res.ok
    assert [c.index for c in res.checks if not c.ok] == [3]
    assert "unlike the others" in res.checks[3].problems[0]


def test_store_round_trip_mismatch_and_removal(bundle, bank, tmp_path):
    example = read_audio_16k(OPERATOR_17)
    kw = enroll(bundle, "hey op", [example], bank=bank).keyword
    root = tmp_path / "keywords"
    store.save(kw, [example], root)
    (loaded,), problems = store.load_for_encoder(kw.encoder_id, root)
    assert problems == []
    assert loaded.name == "hey op" and loaded.threshold == pytest.approx(kw.threshold)
    assert all(np.allclose(a, b) for a, b in zip(loaded.templates, kw.templates, strict=True))
    assert np.array_equal(store.kept_examples("hey op", root)[0], example)

    usable, problems = store.load_for_encoder("sha256:0000000000000000", root)
    assert usable == []
    assert "made for encoder" in problems[0] and "--again" in problems[0]

    # saved by a kwsd that scored with another rule (before the scorer was recorded): its
    # threshold means something else now, so it is refused until re-enrolled
    meta_path = root / "hey_op" / "keyword.json"
    meta = json.loads(meta_path.read_text())
    assert meta.pop("scorer") == SCORER
    meta_path.write_text(json.dumps(meta))
    usable, problems = store.load_for_encoder(kw.encoder_id, root)
    assert usable == []
    assert "scoring rule dtw-min-p0.03" in problems[0] and "--again" in problems[0]

    store.remove("Hey  Op", root)
    assert store.list_keywords(root) == []
    with pytest.raises(store.StoreError, match="no enrolled keyword"):
        store.remove("hey op", root)


@pytest.mark.parametrize("name", ["", "x" * 41, "hey/op", "-op", "_unknown_"])
def test_bad_names_are_refused(name):
    with pytest.raises(store.StoreError):
        store.check_name(name)


def test_a_model_keyword_cannot_be_enrolled_again(bundle):
    with pytest.raises(store.StoreError, match="already a keyword"):
        store.check_name(bundle.keywords[0].upper(), bundle.keywords)
    assert store.check_name("  Hey   Op ") == "hey op"


def test_thresholds_are_set_on_the_scores_the_daemon_compares(bundle, bank):
    """A model whose decision averages two windows (kws.json decision.smoothing_ms = 400):
    an enrolled keyword's threshold comes from the averaged scores, as the daemon sees them."""
    import copy

    from kwsd.config import DecisionConfig
    from kwsd.enrollment import negatives
    from kwsd.enrollment.enroll import calibrate_keyword
    from kwsd.enrollment.recording import decision_scores, window_scores

    kw = enroll(bundle, "hey op", [read_audio_16k(OPERATOR_17)], bank=bank).keyword
    rec = negatives.bank_records(bundle, bank)[0]
    raw = window_scores(rec, EnrolledSet([kw]))
    assert np.array_equal(decision_scores(rec, [kw.name], raw, DecisionConfig(smoothing_ms=0)),
                          raw)
    smooth = decision_scores(rec, [kw.name], raw, DecisionConfig(smoothing_ms=400))
    pairs = [i for i in range(1, len(raw)) if rec.ends[i] - rec.ends[i - 1] == rec.hop
             and i not in set(rec.resets.tolist())]
    assert len(pairs) > 5
    for i in pairs:
        assert smooth[i, 0] == pytest.approx((raw[i, 0] + raw[i - 1, 0]) / 2, abs=1e-6)

    def with_smoothing(ms):
        model = copy.copy(bundle)
        model.meta = {**bundle.meta, "decision": {"smoothing_ms": ms}}
        return model

    got = calibrate_keyword(with_smoothing(400), kw, 1.0, bank=bank)["threshold"]
    assert got == pytest.approx(negatives.calibrate([smooth[:, 0]], [rec], 1.0)["threshold"])
    alone = calibrate_keyword(with_smoothing(0), kw, 1.0, bank=bank)["threshold"]
    assert alone == pytest.approx(negatives.calibrate([raw[:, 0]], [rec], 1.0)["threshold"])
    assert got != pytest.approx(alone)


def test_bank_features_are_cached_per_audio_not_per_file_name(bundle, bank, tmp_path):
    """Two banks that both hold a `speech.wav` never share cached features (the newer file
    used to overwrite the other's cache, which the older bank then read as its own)."""
    from kwsd.enrollment import negatives

    x = read_audio_16k(Path(bank) / "speech.wav")
    other = tmp_path / "other-bank"
    other.mkdir()
    write_wav_16k(other / "speech.wav", x[: len(x) // 2])   # same name, other audio
    a = negatives.bank_records(bundle, Path(bank))
    b = negatives.bank_records(bundle, other)
    assert len(b) == 1 and b[0].duration_s == pytest.approx(len(x) // 2 / 16000, abs=0.01)
    assert negatives.bank_records(bundle, Path(bank))[0].duration_s == a[0].duration_s
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == len(a) + 1


def test_the_default_target_is_the_models_own(bundle, bank):
    """The bank target that gives a rate is a property of the encoder: a bundle names its own
    (kws.json `enrollment.fa_target_per_h`); without one, DEFAULT_FA_PER_H."""
    import copy

    from kwsd.enrollment.enroll import DEFAULT_FA_PER_H, default_fa_target

    example = read_audio_16k(OPERATOR_17)
    model = copy.copy(bundle)
    model.meta = {k: v for k, v in bundle.meta.items() if k != "enrollment"}
    plain = enroll(model, "hey op", [example], bank=bank).keyword
    assert default_fa_target(model) == DEFAULT_FA_PER_H == plain.fa_target_per_h
    model.meta = {**model.meta, "enrollment": {"fa_target_per_h": 5.0}}
    own = enroll(model, "hey op", [example], bank=bank).keyword
    assert own.fa_target_per_h == 5.0
    assert own.info["calibration"]["target_fa_per_h"] == 5.0
    assert own.threshold < plain.threshold      # more false alarms allowed: a lower threshold
    # one example may have a target of its own; several examples keep the general one
    model.meta = {**model.meta, "enrollment": {"fa_target_per_h": 5.0,
                                               "fa_target_per_h_one_example": 0.5}}
    assert enroll(model, "hey op", [example], bank=bank).keyword.fa_target_per_h == 0.5
    assert default_fa_target(model, examples=3) == 5.0
    assert default_fa_target(model, examples=1) == 0.5


def test_recorded_files_are_cached_and_broken_files_left_out(bundle, tmp_path, capsys):
    """The evaluation scripts' recordings: each file once through the stream path, then read
    back from the cache; a broken file is named and left out, the rest still recorded."""
    from kwsd.enrollment.recording import recorded_files

    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    paths = {"a/speech.wav": SPEECH_WAV, "b/broken.wav": broken}
    first = recorded_files(bundle, paths, tmp_path / "rec")
    assert list(first) == ["a/speech.wav"]
    assert "broken.wav" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "rec").iterdir()] == ["a__speech.wav.npz"]
    again = recorded_files(bundle, {"a/speech.wav": tmp_path / "gone.wav"}, tmp_path / "rec")
    np.testing.assert_array_equal(again["a/speech.wav"].frames, first["a/speech.wav"].frames)
    assert again["a/speech.wav"].duration_s == first["a/speech.wav"].duration_s > 3
