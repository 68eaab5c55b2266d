"""The two-stage cascade: a stage one that passes everything changes nothing; rejected windows
say "no keyword"; the windows after a rejection equal the plain path; bad settings and files
are clear errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from kwsd.config import ConfigError, config_from_dict
from kwsd.head_training.cascade_threshold import pass_mask
from kwsd.model.bundle import ModelBundleError, load_bundle, make_random_bundle
from kwsd.model.cascade import (
    STAGE_ONE_FILE,
    CascadeError,
    CascadeGate,
    CascadeSettings,
    StageOne,
    StageOneConfig,
    load_stage_one,
    no_keyword_probs,
    save_stage_one,
)
from kwsd.model.streaming import StreamingClassifier

LABELS = 4  # yes, no, _unknown_, _silence_


def speechy(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    env = 0.05 + 0.5 * (1 + np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6))) / 2
    return np.clip(rng.normal(0, 6000, n) * env, -32768, 32767).astype(np.int16)


def _with_cascade(src, dst, cascade: dict | None, stage_one: bool = True):
    shutil.copytree(src, dst)
    if stage_one:
        torch.manual_seed(3)
        save_stage_one(StageOne(StageOneConfig(num_labels=LABELS)).eval(), dst / STAGE_ONE_FILE)
    meta = json.loads((dst / "kws.json").read_text())
    if cascade is not None:
        meta.setdefault("streaming", {})["cascade"] = cascade
    (dst / "kws.json").write_text(json.dumps(meta))
    return dst


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory):
    return make_random_bundle(tmp_path_factory.mktemp("c") / "plain", "demo", ["yes", "no"],
                              seed=1)


@pytest.fixture(scope="module")
def bundle(plain_dir, tmp_path_factory):
    dst = tmp_path_factory.mktemp("c") / "cascade"
    return load_bundle(_with_cascade(plain_dir, dst, {"enabled": True, "threshold": 0.0,
                                                      "hold_hops": 2}))


def _stream(clf: StreamingClassifier, x: np.ndarray, chunk: int = 1600):
    out = []
    for i in range(0, len(x), chunk):
        out += clf.accept(x[i:i + chunk], i)
    return out


def test_stage_one_passing_everything_equals_plain_path(bundle):
    x = speechy(4.0)
    on = _stream(StreamingClassifier(bundle), x)  # kws.json enables it, threshold 0
    off = _stream(StreamingClassifier(bundle, cascade="off"), x)
    clf = StreamingClassifier(bundle)
    assert clf.gate is not None
    _stream(clf, x)
    assert clf.gate.windows == len(off) and clf.gate.pass_rate == 1.0
    assert len(on) == len(off) > 5
    for a, b in zip(on, off, strict=True):
        assert (a.start_sample, a.end_sample) == (b.start_sample, b.end_sample)
        np.testing.assert_array_equal(a.probs, b.probs)


def test_rejected_windows_say_no_keyword_and_the_next_pass_equals_plain(bundle):
    x = speechy(5.0, seed=4)
    off = _stream(StreamingClassifier(bundle, cascade="off"), x)
    clf = StreamingClassifier(bundle, cascade="on")
    pattern = [True, True, False, False, True, False, True, True, True]
    clf.gate.schedule = pattern
    on = _stream(clf, x)
    rejected = no_keyword_probs(list(bundle.labels))
    assert rejected[bundle.labels.index("_unknown_")] == 1.0
    for i, (a, b) in enumerate(zip(on, off, strict=True)):
        if pattern[i % len(pattern)]:
            # a window after a rejection recomputes its conv features whole: same values to
            # float rounding (the exact per-frame conv cache)
            np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
        else:
            np.testing.assert_array_equal(a.probs, rejected)


def test_gate_threshold_and_hold(bundle):
    """The replay's pass rule (pass_mask) is the gate's rule."""
    gate = CascadeGate(bundle.cascade, threshold=0.5, hold_hops=2)
    scores = [0.9, 0.1, 0.1, 0.1, 0.6, 0.2]
    it = iter(scores)

    def fake_stage_one(window):  # keyword probability s, split over the two keywords
        s = next(it)
        return torch.log(torch.tensor([[s / 2, s / 2, (1 - s) / 2, (1 - s) / 2]]))

    gate.model = fake_stage_one
    got = [gate.check(torch.zeros(16000)) for _ in scores]
    calls = [[(i * 3200, i * 3200 + 16000, None, s)
              for i, s in enumerate([0.9, 0.1, 0.1, 0.1, 0.6, 0.2])]]
    assert pass_mask(calls, 3200, 0.5, 2) == [got] == [[True, True, True, False, True, True]]
    # a break in the window grid resets the hold
    calls = [[(0, 16000, None, 0.9)], [(99_999, 115_999, None, 0.1)]]
    assert pass_mask(calls, 3200, 0.5, 2) == [[True], [False]]
    assert pass_mask(calls, 3200, None, 0) == [[True], [True]]


def test_cascade_off_and_missing(plain_dir, bundle):
    plain = load_bundle(plain_dir)
    assert plain.cascade is None
    assert StreamingClassifier(plain).gate is None
    with pytest.raises(CascadeError, match="no stage one"):
        StreamingClassifier(plain, cascade="on")
    with pytest.raises(CascadeError, match="'on', 'off'"):
        StreamingClassifier(bundle, cascade="sometimes")


@pytest.mark.parametrize("bad, match", [
    ([], "must be an object"),
    ({"enabled": "yes", "threshold": 0.5}, "enabled must be true or false"),
    ({"enabled": True}, "threshold must be a number in \\[0, 1\\]"),
    ({"enabled": True, "threshold": 1.5}, "threshold must be a number"),
    ({"enabled": True, "threshold": 0.5, "hold_hops": -1}, "hold_hops must be an integer"),
    ({"enabled": True, "threshold": 0.5, "hold_hops": 1.5}, "hold_hops must be an integer"),
    ({"enabled": True, "threshold": 0.5, "stage_one": "../x.safetensors"},
     "stage_one must be a file name inside the bundle"),
])
def test_kws_json_cascade_errors_name_the_field(plain_dir, tmp_path, bad, match):
    with pytest.raises(CascadeError, match=match):
        CascadeSettings.parse(bad)
    d = _with_cascade(plain_dir, tmp_path / "b", bad)
    with pytest.raises(ModelBundleError, match="streaming.cascade"):
        load_bundle(d)


def test_missing_and_corrupt_stage_one_files(plain_dir, tmp_path):
    ok = {"enabled": True, "threshold": 0.5}
    d = _with_cascade(plain_dir, tmp_path / "missing", ok, stage_one=False)
    with pytest.raises(ModelBundleError, match="stage-one file missing"):
        load_bundle(d)
    d = _with_cascade(plain_dir, tmp_path / "corrupt", ok)
    data = (d / STAGE_ONE_FILE).read_bytes()
    (d / STAGE_ONE_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelBundleError, match="unreadable stage-one file"):
        load_bundle(d)
    (d / STAGE_ONE_FILE).write_bytes(b"\x00" * 64)
    with pytest.raises(ModelBundleError, match="stage-one"):
        load_bundle(d)
    # a head file is safetensors but not a stage one
    shutil.copy(d / "head.safetensors", d / STAGE_ONE_FILE)
    with pytest.raises(ModelBundleError, match="not a kwsd stage-one file"):
        load_bundle(d)


def test_stage_one_for_other_labels_is_refused(tmp_path):
    p = save_stage_one(StageOne(StageOneConfig(num_labels=7)), tmp_path / STAGE_ONE_FILE)
    with pytest.raises(CascadeError, match="7 labels, the bundle 4"):
        load_stage_one(p, 4)
    state = StageOne(StageOneConfig(num_labels=4)).state_dict()
    state["classifier.bias"] = torch.full((4,), float("nan"))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(p),
              metadata={"kwsd_stage_one": StageOneConfig(num_labels=4).to_json()})
    with pytest.raises(CascadeError, match="non-finite"):
        load_stage_one(p, 4)


def test_config_engine_cascade():
    assert config_from_dict({"engine": {"cascade": "off"}}).engine.cascade == "off"
    with pytest.raises(ConfigError, match="engine.cascade"):
        config_from_dict({"engine": {"cascade": "maybe"}})


def test_bench_and_eval_commands_measure_with_and_without(bundle, tmp_path, capsys):
    from kwsd.audio.audiofile import write_wav_16k
    from kwsd.cli import main

    # no real-train and no demo.wav: synthetic speech-like audio (announced)
    assert main(["bench", "--bundle", str(bundle.path), "--cascade-only", "--speech",
                 str(tmp_path / "absent"), "--seconds", "1", "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["default"] == "on" and out["on"]["pass_rate"] == 1.0  # threshold 0
    assert out["off"]["cpu_s_per_audio_s"] > 0 and out["on"]["cpu_s_per_audio_s"] > 0
    assert out["audio"]["source"] == "synthetic"
    write_wav_16k(tmp_path / "a.wav", speechy(3.0, seed=9))
    (tmp_path / "m.csv").write_text("file,keyword,kw_start_s,kw_end_s,in_sentence\n"
                                    "a.wav,,,,False\n")
    dets = {}
    for mode in ("on", "off"):
        assert main(["eval", "--model", str(bundle.path), "--manifest", str(tmp_path / "m.csv"),
                     "--out", str(tmp_path / f"{mode}.jsonl"), "--cascade", mode,
                     "--no-progress", "--threshold", "yes=0.3", "--threshold", "no=0.3"]) == 0
        assert f"(cascade {mode})" in capsys.readouterr().out
        dets[mode] = (tmp_path / f"{mode}.jsonl").read_text()
    assert dets["on"] == dets["off"]  # a stage one that passes everything changes nothing


def test_fit_replay_equals_real_cascade_runs(plain_dir, tmp_path):
    """kwsd cascade fit records once and replays every candidate threshold: the replay must give
    what a real run with the cascade on gives (same VAD gate, same decision)."""
    from kwsd.evaluation.manifest import EvalItem
    from kwsd.head_training.cascade_threshold import (
        MeasurementSet,
        candidate_thresholds,
        record,
        replay,
        verify,
    )

    d = _with_cascade(plain_dir, tmp_path / "b", {"enabled": True, "threshold": 0.5})
    meta = json.loads((d / "kws.json").read_text())
    meta["thresholds"] = {"yes": 0.2, "no": 0.2}  # random weights: make detections happen
    (d / "kws.json").write_text(json.dumps(meta))
    bundle = load_bundle(d)
    audio = {f"f{i}.wav": speechy(4.0, seed=20 + i) for i in range(3)}
    items = [EvalItem(file=f, path=tmp_path / f, keyword="", kw_start_s=None, kw_end_s=None,
                      in_sentence=False) for f in audio]
    mset = MeasurementSet(items, audio, {})
    rec = record(bundle, mset)
    plain = replay(bundle, mset, rec, None, 1)
    assert plain.detections and plain.pass_rate == 1.0
    scores = sorted(w[3] for calls in rec.calls.values() for c in calls for w in c)
    thr = scores[len(scores) // 2]  # about half the windows pass before the hold
    assert candidate_thresholds(rec)
    for hold in (0, 1):
        out = replay(bundle, mset, rec, thr, hold)
        assert 0 < out.pass_rate < 1
        from kwsd.model.cascade import Cascade, CascadeSettings

        bundle.cascade = Cascade(CascadeSettings(True, STAGE_ONE_FILE, thr, hold),
                                 bundle.cascade.model, bundle.cascade.num_keywords)
        check = verify(bundle, mset, {"detections": {"default": out.detections}})
        assert check["default"]["same_detections_as_replay"], (hold, out.detections)
