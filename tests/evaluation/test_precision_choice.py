"""`kwsd bench --bundle DIR --choose` and `kwsd train --choose-precision`: every precision
measured through the daemon's own decision path, the fastest one whose decisions match fp32's
written into kws.json with what was measured. Short synthetic audio keeps these quick; the
real-train selection itself is checked on the shared recordings."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path

import numpy as np
import pytest
from encoder_precision import running_precision
from kwsd.audio.audiofile import write_wav_16k
from kwsd.cli import main
from kwsd.evaluation.precision import (
    MeasurementAudio,
    PrecisionChoiceError,
    choose_precision,
    real_train_audio,
    same_detections,
)
from kwsd.model.bench import speech_like
from kwsd.model.bundle import META_FILE, load_bundle, make_random_bundle, write_meta
from kwsd.model.precision import PRECISIONS
from kwsd.model.streaming import StreamingClassifier
from tiny_corpus import tiny_corpus  # noqa: F401  (fixture)

# Random weights (seed 0) give "yes" ~0.13 and "no" ~0.45 on speech-like audio: thresholds at
# those levels make detections happen (and close calls, where precisions may disagree).
THRESHOLDS = {"yes": 0.135, "no": 0.45}


@pytest.fixture
def bundle(tmp_path) -> Path:
    path = make_random_bundle(tmp_path / "b", "demo", ("yes", "no"), seed=0)
    meta = json.loads((path / META_FILE).read_text())
    meta["thresholds"] = dict(THRESHOLDS)
    write_meta(path, meta)
    return path


def fake_real_train(root: Path) -> Path:
    """real-train's layout (wuw-train.csv, speech.csv) with synthetic speech-like clips."""
    wuw, speech = [], []
    for i, (speaker, n) in enumerate([("wuw-00001", 2), ("wuw-00002", 2)]):
        for k in range(n):
            rel = f"wuw-train/{speaker[-5:]}/{k}.wav"
            wuw.append({"file": rel, "duration_s": "2.0", "speaker": speaker})
            _write(root / rel, speech_like(2.0, seed=10 * i + k))
    for j, source in enumerate(["librispeech", "digits"]):
        rel = f"speech/{source}/{j}.wav"
        speech.append({"file": rel, "kind": "speech", "duration_s": "2.0"})
        _write(root / rel, speech_like(2.0, seed=100 + j))
    _write(root / "noise" / "n.wav", np.zeros(16000, np.int16))
    speech.append({"file": "noise/n.wav", "kind": "noise", "duration_s": "1.0"})
    for name, rows in (("wuw-train", wuw), ("speech", speech)):
        with (root / f"{name}.csv").open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return root


def _write(path: Path, samples: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_wav_16k(path, samples)


def check_record(meta: dict) -> dict:
    """kws.json after a choice: the precision and a consistent record of the measurements."""
    chosen = meta["streaming"]["precision"]
    rec = meta["streaming"]["precision_choice"]
    assert chosen in PRECISIONS and rec["chosen"] == chosen
    assert set(rec["precisions"]) == set(PRECISIONS)
    assert rec["max_abs_posterior_diff_bound"] > 0
    fp32 = rec["precisions"]["fp32"]
    assert fp32["max_abs_posterior_diff"] == 0 and fp32["qualifies"] and fp32["vs_fp32"] == 1
    base = fp32["cpu_s_per_audio_s_runs"]
    for p, r in rec["precisions"].items():
        assert r["cpu_s_per_audio_s"] > 0 and len(r["cpu_s_per_audio_s_runs"]) == len(base), p
        ratios = [a / b for a, b in zip(r["cpu_s_per_audio_s_runs"], base, strict=True)]
        assert r["vs_fp32"] == pytest.approx(statistics.median(ratios), abs=0.01), p
        assert r["qualifies"] == (r["same_detections"] and r["max_abs_posterior_diff"]
                                  <= rec["max_abs_posterior_diff_bound"]), p
    qualifying = {p: r["vs_fp32"] for p, r in rec["precisions"].items() if r["qualifies"]}
    assert rec["precisions"][chosen]["qualifies"]
    assert qualifying[chosen] == min(qualifying.values())
    assert rec["windows_compared"] > 0 and rec["audio"]["seconds"] > 0
    return rec


def test_bench_choose_writes_the_precision_and_what_was_measured(bundle, tmp_path):
    before = json.loads((bundle / META_FILE).read_text())
    speech = fake_real_train(tmp_path / "real-train")
    assert main(["bench", "--bundle", str(bundle), "--choose", "--speech", str(speech),
                 "--speech-seconds", "12", "--seconds", "0.4", "--repeats", "2"]) == 0
    meta = json.loads((bundle / META_FILE).read_text())
    rec = check_record(meta)
    # Everything else in kws.json is as it was.
    assert {k: v for k, v in meta.items() if k != "streaming"} == before
    assert rec["audio"]["source"] == "real-train"
    # 6 s of callers (whole ones), 6 s of other speech (there are only 4 s), no noise
    assert sorted(rec["audio"]["files"]) == [
        "speech/digits/1.wav", "speech/librispeech/0.wav", "wuw-train/00001/0.wav",
        "wuw-train/00001/1.wav", "wuw-train/00002/0.wav", "wuw-train/00002/1.wav"]
    assert rec["audio"]["seconds_by_set"] == {"wuw-train": 8.0, "speech": 4.0}
    assert rec["threshold_sets"] == ["default"]
    assert rec["precisions"]["fp32"]["detections"]["default"] > 0  # something to compare
    assert all(len(r["cpu_s_per_audio_s_runs"]) == 2 for r in rec["precisions"].values())
    assert "--choose" in rec["command"]
    # The daemon's streams now run the chosen precision.
    loaded = load_bundle(bundle)
    assert running_precision(StreamingClassifier(loaded).encoder) == rec["chosen"]


def test_the_bound_keeps_out_precisions_whose_posteriors_move(bundle):
    audio = MeasurementAudio([("a", speech_like(3.0, seed=5))], "synthetic")
    loaded = load_bundle(bundle)
    strict = choose_precision(loaded, audio, speed_seconds=0.3, repeats=1, bound=1e-9)
    assert strict["chosen"] == "fp32"
    others = {p: r for p, r in strict["precisions"].items() if p != "fp32"}
    assert all(r["max_abs_posterior_diff"] > 1e-9 and not r["qualifies"]
               for r in others.values())
    loose = choose_precision(loaded, audio, speed_seconds=0.3, repeats=1, bound=1.0,
                             precisions=["int8"])
    assert set(loose["precisions"]) == {"fp32", "int8"}  # fp32 is always the reference
    assert loose["precisions"]["int8"]["qualifies"] == loose["precisions"]["int8"][
        "same_detections"]


def test_sensitivities_are_each_compared(bundle):
    meta = json.loads((bundle / META_FILE).read_text())
    meta["sensitivity"] = {"default": "medium", "thresholds": {
        "low": {"yes": 0.9, "no": 0.9}, "medium": dict(THRESHOLDS),
        "high": {"yes": 0.1, "no": 0.3}}}
    write_meta(bundle, meta)
    audio = MeasurementAudio([("a", speech_like(3.0, seed=6))], "synthetic")
    rec = choose_precision(load_bundle(bundle), audio, speed_seconds=0.3, repeats=1,
                           precisions=["bf16-conv"])
    # medium equals the defaults, so it is not run twice
    assert rec["threshold_sets"] == ["default", "low", "high"]
    dets = rec["precisions"]["fp32"]["detections"]
    assert dets["high"] >= dets["default"] >= dets["low"]


def test_real_dev_is_refused(bundle, tmp_path):
    before = (bundle / META_FILE).read_text()
    dev = fake_real_train(tmp_path / "real-dev")
    assert main(["bench", "--bundle", str(bundle), "--choose", "--speech", str(dev)]) == 2
    assert (bundle / META_FILE).read_text() == before
    with pytest.raises(PrecisionChoiceError, match="evaluation-only"):
        real_train_audio(dev)


def test_without_real_train_the_demo_recording_is_used_and_said(bundle, tmp_path, capsys):
    write_wav_16k(bundle / "demo.wav", speech_like(2.5, seed=7))
    before = (bundle / META_FILE).read_text()
    assert main(["bench", "--bundle", str(bundle), "--json", "--speech",
                 str(tmp_path / "absent"), "--seconds", "0.3", "--repeats", "1"]) == 0
    out = capsys.readouterr()
    assert "absent not found" in out.err and "demo.wav" in out.err
    rec = json.loads(out.out)
    assert rec["audio"]["source"] == "demo.wav" and "not found" in rec["audio"]["note"]
    assert (bundle / META_FILE).read_text() == before  # no --choose: nothing written


def test_choose_needs_a_bundle(capsys):
    assert main(["bench", "--choose"]) == 2
    assert "--bundle" in capsys.readouterr().err


def test_train_choose_precision(tiny_corpus, tmp_path):  # noqa: F811
    out = tmp_path / "model"
    speech = fake_real_train(tmp_path / "real-train")
    args = ["train", "--data", str(tiny_corpus), "--out", str(out), "--workdir",
            str(tmp_path / "w"), "--keywords", "computer,voyager", "--epochs", "1",
            "--batch-size", "16", "--mlp-dim", "16", "--no-progress", "--no-calibrate",
            "--no-final-eval", "--choose-precision", "--precision-speech", str(speech)]
    assert main([*args[:-4], "--choose-precision", "--precision-speech",
                 str(tmp_path / "x" / "real-dev")]) == 2  # refused before any training
    assert not out.exists()
    assert main(args) == 0
    rec = check_record(load_bundle(out).meta)
    assert rec["audio"]["source"] == "real-train"
    assert "--choose-precision" in rec["command"]


def test_real_train_selection(shared_data):
    audio = real_train_audio(shared_data / "real-train", 40.0)
    files = [name for name, _ in audio.clips]
    assert all((shared_data / "real-train" / f).is_file() for f in files)
    assert set(audio.parts) == {"wuw-train", "speech"} and min(audio.parts.values()) >= 15
    assert 35 <= audio.seconds <= 120  # whole callers: a little over half is fine
    assert not any("real-dev" in f for f in files)
    assert len({f.split("/")[1] for f in files if f.startswith("speech/")}) >= 3  # spread
    assert real_train_audio(shared_data / "real-train", 40.0).describe() == audio.describe()
    with pytest.raises(PrecisionChoiceError):
        real_train_audio(shared_data / "real-dev")


def test_a_detection_one_hop_later_is_the_same_detection():
    """Posteriors within the bound can move a firing by one hop near a threshold: that is a hop
    of latency, not another detection. Anything more refuses the precision."""
    hop = 0.2
    ref = [("a.wav", "voyager", 0.48, 0.8), ("a.wav", "operator", 2.0, 2.6),
           ("b.wav", "voyager", 0.48, 1.2)]
    assert same_detections(list(ref), ref, hop) == (True, 0)
    later = [("a.wav", "voyager", 0.48, 1.0), *ref[1:]]
    assert same_detections(later, ref, hop) == (True, 1)
    earlier = [*ref[:2], ("b.wav", "voyager", 0.48, 1.0)]
    assert same_detections(earlier, ref, hop) == (True, 1)
    two_hops = [("a.wav", "voyager", 0.48, 1.2), *ref[1:]]
    other_start = [("a.wav", "voyager", 0.68, 1.0), *ref[1:]]
    other_keyword = [("a.wav", "wildfire", 0.48, 0.8), *ref[1:]]
    other_file = [("c.wav", "voyager", 0.48, 0.8), *ref[1:]]
    for run in (two_hops, other_start, other_keyword, other_file, ref[1:], ref + ref[:1]):
        assert same_detections(run, ref, hop) == (False, 0), run
