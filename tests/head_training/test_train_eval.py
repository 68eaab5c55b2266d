"""`kwsd train` and `kwsd eval` on a tiny espeak-ng corpus with a random-weight encoder."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from kwsd.cli import main
from kwsd.head_training.fit import FitConfig, class_weights, fit
from kwsd.head_training.train import TrainConfig, TrainError, train
from kwsd.model.bundle import load_bundle
from recordings import DATA


def _cfg(manifest, tmp_path, **kw):
    base = dict(data=manifest, out=tmp_path / "bundle", workdir=tmp_path / "work",
                keywords=["computer", "voyager"], copies=1, heldout_copies=1, progress=False,
                fit=FitConfig(epochs=4, batch_size=16, lr=3e-3), mlp_dim=32)
    base.update(kw)
    return TrainConfig(**base)


def test_train_writes_a_calibrated_bundle_and_the_loss_falls(tiny_corpus, tmp_path):
    out = train(_cfg(tiny_corpus, tmp_path))
    bundle = load_bundle(out)
    assert bundle.labels == ["computer", "voyager", "_unknown_", "_silence_"]
    assert bundle.window_samples == 16000 and bundle.hop_samples == 3200
    meta = bundle.meta
    hist = meta["metrics"]["history"]
    assert len(hist) == 4
    assert hist[-1]["train_loss"] < hist[0]["first_loss"]
    # thresholds come from the calibration block of the default sensitivity
    sens = meta["sensitivity"]
    assert set(sens["thresholds"]) == {"low", "medium", "high"}
    assert bundle.thresholds == sens["thresholds"][sens["default"]]
    assert all(sens["thresholds"]["low"][k] >= sens["thresholds"]["high"][k]
               for k in bundle.keywords)
    assert meta["training_data"]["voices"]["heldout"] == ["en-gb-scotland", "noise"]
    assert set(meta["keyword_duration_s"]) == {"computer", "voyager"}
    assert "at_default_thresholds" in meta["metrics"]["heldout_synthetic"]
    # the windows it trained and validated on are named for the cascade fit (train-demo.sh)
    record = json.loads((tmp_path / "work" / "windows.json").read_text())
    train_rows = json.loads((Path(record["windows"]) / "progress.json").read_text())["rows"]
    val_rows = json.loads((Path(record["val_windows"]) / "progress.json").read_text())["rows"]
    assert record["windows"] != record["val_windows"] and val_rows > 0
    assert train_rows > val_rows   # one held-out voice of the tiny corpus against the rest
    states = Path(record["teacher_states"])
    assert states.is_dir() and states.name.startswith(
        "states-" + Path(record["windows"]).name.removeprefix("audio-"))


def test_fit_resumes_where_it_stopped(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((96, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def model():
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                   torch.nn.Linear(16, 2))

    cfg = FitConfig(epochs=3, batch_size=16, lr=1e-2, progress=False)
    whole = model()
    fit(whole, whole, x, y, None, None, 2, cfg, tmp_path / "a")

    part = model()
    calls = {"n": 0}

    def dies_in_epoch_three(batch):
        calls["n"] += 1
        if calls["n"] > 13:  # 6 steps per epoch: dies during the third epoch
            raise KeyboardInterrupt
        return part(batch)

    with pytest.raises(KeyboardInterrupt):
        fit(part, dies_in_epoch_three, x, y, None, None, 2, cfg, tmp_path / "b")
    resumed = model()  # a fresh process: new weights, restored from the checkpoint
    state = fit(resumed, resumed, x, y, None, None, 2, cfg, tmp_path / "b", resume=True)
    assert state.epoch == 3 and len(state.history) == 3
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        fit(model(), model(), x, y, None, None, 2, cfg, tmp_path / "c", resume=True)


def test_fit_keeps_the_epoch_with_the_lowest_validation_loss(tmp_path):
    # validation labels are the opposite of the training rule: the more the model learns, the
    # worse it does there, so the first epoch must be the one kept
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    vx = rng.standard_normal((64, 8)).astype(np.float32)
    vy = (vx[:, 0] <= 0).astype(np.int64)
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    cfg = FitConfig(epochs=4, batch_size=16, lr=1e-2, progress=False)
    state = fit(net, net, x, y, vx, vy, 2, cfg, tmp_path)
    losses = [h["val_loss"] for h in state.history]
    assert losses[-1] > losses[0] and state.best_epoch == int(np.argmin(losses)) + 1
    with torch.no_grad():
        logits = net(torch.from_numpy(vx))
        kept = float(torch.nn.functional.cross_entropy(
            logits, torch.from_numpy(vy), weight=class_weights(y, 2, cfg.class_weight_power)))
    assert kept == pytest.approx(min(losses), rel=1e-4)


def test_cli_train_resume_and_eval(tiny_corpus, tmp_path):
    out, work = tmp_path / "b", tmp_path / "w"
    args = ["train", "--data", str(tiny_corpus), "--out", str(out), "--workdir", str(work),
            "--keywords", "computer,voyager", "--epochs", "2", "--batch-size", "16",
            "--copies", "1", "--heldout-copies", "1", "--mlp-dim", "16", "--no-progress",
            "--no-final-eval"]
    assert main(args) == 0
    assert "decision" not in load_bundle(out).meta          # the window alone, as before
    # same arguments + --resume: the features come from the cache, training continues; a
    # decision smoothing is calibrated with and kept in kws.json
    assert main(args + ["--resume", "--smoothing-ms", "400"]) == 0
    bundle = load_bundle(out)
    assert bundle.meta["training"]["epochs"] == 2
    assert bundle.meta["decision"] == {"smoothing_ms": 400}

    # an eval manifest: two held-out keyword files, one negative, one broken WAV
    held = work.glob("heldout-*/manifest.csv")
    rows = list(csv.DictReader(next(held).open()))
    kw_rows = [r for r in rows if r["keyword"]][:2]
    neg = [r for r in rows if not r["keyword"]][:1]
    manifest = tmp_path / "m.csv"
    base = next(work.glob("heldout-*"))
    with manifest.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "keyword", "kw_start_s", "kw_end_s", "in_sentence", "note"])
        for r in kw_rows + neg:
            w.writerow([str(base / r["file"]), r["keyword"], r["kw_start_s"], r["kw_end_s"],
                        r["in_sentence"], "x"])
        w.writerow([str(DATA / "broken" / "pocketsphinx-null.wav"), "", "", "",
                    "False", "broken"])
    dets, plots = tmp_path / "d.jsonl", tmp_path / "plots"
    assert main(["eval", "--model", str(out), "--manifest", str(manifest), "--out", str(dets),
                 "--plots", str(plots), "--threshold", "computer=0.01",
                 "--threshold", "voyager=0.01", "--no-progress"]) == 0
    lines = [json.loads(x) for x in dets.read_text().splitlines()]
    assert lines, "thresholds of 0.01 must produce detections"
    assert set(lines[0]) == {"file", "keyword", "confidence", "start_s", "end_s"}
    assert all(x["file"] in {str(base / r["file"]) for r in kw_rows + neg} for x in lines)
    assert (plots / "det.png").stat().st_size > 0 and (plots / "confusion.png").stat().st_size
    summary = json.loads((plots / "summary.json").read_text())
    assert len(summary["unreadable"]) == 1
    n_kw = sum(v["n_alone"] + v["n_in_sentence"] for v in summary["keywords"].values())
    assert n_kw == 2
    # the DET curves carry their counts, for kwsd compare
    assert summary["det"]["computer"]["n_positives"] == 2
    assert len(summary["det"]["computer"]["false_alarms"]) == len(
        summary["det"]["computer"]["thresholds"])
    # and every keyword's false alarms, also one the set has no positives of (voyager here)
    voyager = summary["det"]["voyager"]
    assert voyager["n_positives"] == 0 and set(voyager["miss_rate"]) == {None}
    assert voyager["false_alarms"][0] > 0 and len(voyager["false_alarms"]) == len(
        voyager["thresholds"])


def test_calibration_and_test_sets_are_composed_their_own_number_of_times(tiny_corpus,
                                                                           tmp_path):
    """--heldout-copies K: the calibration set holds K compositions of the held-out clips, the
    first of them the one-copy set itself; the test set follows --test-copies (default one)."""
    from kwsd.head_training.train import heldout_set, load_clips

    def files(manifest):
        return {r["file"]: (manifest.parent / r["file"]).read_bytes()
                for r in csv.DictReader(manifest.open())}

    held = [c for c in load_clips(_cfg(tiny_corpus, tmp_path))[0] if c.split == "heldout"]
    one = files(heldout_set(held, _cfg(tiny_corpus, tmp_path / "one"), None))
    cfg = _cfg(tiny_corpus, tmp_path / "three", heldout_copies=3)
    three = files(heldout_set(held, cfg, None))
    test = files(heldout_set(held, cfg, None, "heldout-test"))
    assert {f.split("/")[0] for f in three} == {"c0", "c1", "c2"}
    assert {f.split("/")[0] for f in test} == {"c0"}
    assert {f: b for f, b in three.items() if f.startswith("c0/")} == one
    # the other compositions are drawn anew: same clips, other streams
    assert sorted(f for f in three if f.startswith("c1/")) == sorted(
        f.replace("c0/", "c1/") for f in one)
    assert all(three[f.replace("c0/", "c1/")] != b for f, b in one.items())
    # --test-copies 2: the one-copy test set is its first composition, the second is new
    two = files(heldout_set(held, _cfg(tiny_corpus, tmp_path / "two", test_copies=2), None,
                            "heldout-test"))
    assert {f.split("/")[0] for f in two} == {"c0", "c1"}
    assert {f: b for f, b in two.items() if f.startswith("c0/")} == test
    assert all(two[f.replace("c0/", "c1/")] != b for f, b in test.items())


def test_recorded_scores_are_what_the_decision_compared(tiny_corpus, tmp_path):
    """The DET curves and calibration read the decision's smoothed scores; every detection's
    confidence must equal the score recorded for its window (with smoothing on, too)."""
    import dataclasses

    from kwsd.audio.audiofile import read_audio_16k
    from kwsd.engine.pipeline import PipelineSettings
    from kwsd.evaluation.runner import run_samples
    from kwsd.model.bundle import make_random_bundle

    bundle = load_bundle(make_random_bundle(tmp_path / "rb", keywords=("computer", "voyager")))
    bundle.thresholds = {"computer": 0.01, "voyager": 0.01}
    base = PipelineSettings()
    rows = list(csv.DictReader(tiny_corpus.open()))
    audio = np.concatenate([read_audio_16k(tiny_corpus.parent / r["file"]) for r in rows[:6]])
    for smoothing in (0, 400):
        settings = dataclasses.replace(base, decision=dataclasses.replace(
            base.decision, smoothing_ms=smoothing, refractory_ms=300))
        res = run_samples(bundle, audio, "x.wav", settings)
        assert res.detections, "thresholds of 0.01 must fire"
        assert res.trace_mismatches == 0
        assert res.trace.scores.shape[1] == 2 and len(res.trace.end_s) > 5


def test_parallel_eval_gives_the_same_results(tiny_corpus, tmp_path):
    from kwsd.evaluation.runner import run_files
    from kwsd.model.bundle import make_random_bundle

    bundle = load_bundle(make_random_bundle(tmp_path / "rb", keywords=("computer", "voyager")))
    bundle.thresholds = {"computer": 0.01, "voyager": 0.01}
    rows = list(csv.DictReader(tiny_corpus.open()))[:5]
    files = [(r["file"], tiny_corpus.parent / r["file"]) for r in rows]
    files.append(("missing.wav", tmp_path / "missing.wav"))
    one = run_files(bundle, files, progress=False)
    two = run_files(bundle, files, progress=False, jobs=2)
    assert [d.to_dict() for d in one.detections] == [d.to_dict() for d in two.detections]
    assert list(one.traces) == list(two.traces) == [f for f, _ in files[:5]]
    for name in one.traces:
        # float rounding may differ with the thread count, nothing else
        assert np.allclose(one.traces[name].scores, two.traces[name].scores, atol=1e-5)
    assert set(one.errors) == set(two.errors) == {"missing.wav"}


@pytest.mark.parametrize("finetune", ["top", "all"])
def test_finetune_trains_the_encoder_and_ships_it(tiny_corpus, tmp_path, finetune):
    """`--finetune top` changes the encoder's last transformer layer only, `all` every part;
    the bundle carries the fine-tuned encoder (not the one it started from)."""
    from kwsd.head_training.train import load_encoder_from

    start, _ = load_encoder_from("random", seed=0)
    before = {k: v.clone() for k, v in start.state_dict().items()}
    out = train(_cfg(tiny_corpus, tmp_path, finetune=finetune, calibrate=False,
                     fit=FitConfig(epochs=1, batch_size=16, lr=3e-3)))
    after = load_bundle(out).encoder.state_dict()
    top = f"encoder.layers.{len(start.encoder.layers) - 1}."
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "no encoder weight changed"
    assert any(k.startswith(top) for k in changed)
    if finetune == "top":
        assert all(k.startswith(top) for k in changed), sorted(changed)[:5]
    else:
        assert any(k.startswith("feature_extractor.") for k in changed), sorted(changed)[:5]
    assert load_bundle(out).meta["training_data"]["finetune"] == finetune


def test_calibrate_on_real_uses_only_real_recordings(tiny_corpus, tmp_path):
    # pretend the held-out voice's "computer" clips and negatives are real recordings
    rows = list(csv.DictReader(tiny_corpus.open()))
    for r in rows:
        if r["split"] == "val" and r["label"] in ("computer", "_unknown_"):
            r["engine"] = "real"
    manifest = tiny_corpus.parent / "with-real.csv"
    with manifest.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    targets = {"low": 0.0, "medium": 2.0, "high": 20.0}
    out = train(_cfg(manifest, tmp_path, calibrate_on="real", fa_targets=targets,
                     fit=FitConfig(epochs=1, batch_size=16, lr=3e-3)))
    meta = load_bundle(out).meta
    sens = meta["sensitivity"]
    assert "real recordings" in sens["method"]
    # real speakers are counted, never listed (thousands of them, some named by file)
    assert meta["training_data"]["real_speakers"] == {"train": 0, "heldout": 1}
    assert sens["targets_fa_per_hour"] == targets
    measured = sens["measured"]["medium"]
    # voyager has no real example: its threshold comes from the real negatives alone
    assert measured["voyager"]["recall"] is None and measured["computer"]["recall"] is not None
    with pytest.raises(TrainError, match="no held-out real negatives"):
        train(_cfg(tiny_corpus, tmp_path / "none", calibrate_on="real",
                   fit=FitConfig(epochs=1, batch_size=16, lr=3e-3)))


def test_a_bad_smoothing_is_refused_naming_it(tiny_corpus, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_corpus), "--out", str(tmp_path / "b"),
                 "--keywords", "computer,voyager", "--smoothing-ms", "-5",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "decision.smoothing_ms" in err and "-5" in err
    assert not (tmp_path / "b").exists()


def test_top_layer_from_cached_states_is_the_encoders_own_computation():
    """`--finetune top` recomputes the last layer from the cached states before it; with the
    layer unchanged that must give exactly the cached top state (so the head sees what the
    daemon computes)."""
    from kwsd.head_training.train import _Model, load_encoder_from
    from kwsd.model.head import HeadConfig, KeywordHead

    encoder, _ = load_encoder_from("random", seed=0)
    with torch.no_grad():
        states = torch.stack(encoder(torch.randn(3, 16000) * 0.1), dim=1)
        cfg = HeadConfig(num_states=states.shape[1], hidden_size=states.shape[-1],
                         num_labels=4, mlp_dim=16)
        head = KeywordHead(cfg).eval()
        model = _Model(head, top=encoder.encoder.layers[-1]).eval()
        assert torch.allclose(model(states), head(states), atol=1e-5)
    groups = model.param_groups(1e-3)
    assert [g["lr"] for g in groups] == [1e-3, pytest.approx(1e-4)]


def test_label_smoothing_keeps_a_learnt_model_off_certainty(tmp_path):
    """A separable task: one-hot targets drive the probabilities to ~1, smoothed targets
    (0.2) hold them near 1 - 0.2/2."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    top = {}
    for smoothing in (0.0, 0.2):
        torch.manual_seed(1)
        net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(),
                                  torch.nn.Linear(16, 2))
        cfg = FitConfig(epochs=30, batch_size=32, lr=3e-2, progress=False,
                        class_weight_power=0.0, label_smoothing=smoothing)
        fit(net, net, x, y, None, None, 2, cfg, tmp_path / str(smoothing))
        with torch.no_grad():
            top[smoothing] = float(torch.softmax(net(torch.from_numpy(x)), -1).max(-1)
                                   .values.median())
    assert top[0.0] > 0.99 and 0.85 < top[0.2] < 0.95


@pytest.mark.parametrize("option,value", [("--label-smoothing", "1"),
                                          ("--label-smoothing", "-0.1"),
                                          ("--class-weight-power", "-1"),
                                          ("--real-repeats", "0"),
                                          ("--synthetic-only-repeats", "0"),
                                          ("--real-negative-repeats", "0"),
                                          ("--average-fits", "0")])
def test_bad_loss_options_are_refused(tmp_path, capsys, option, value):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "b"), option, value])
    assert exit_.value.code == 2
    assert option in capsys.readouterr().err


def test_real_recordings_get_more_passes_each_its_own(tmp_path):
    """`real_repeats` lists real clips again (keyword-free ones `real_negative_repeats` times
    when given), `synthetic_only_repeats` the synthetic clips of keywords no real clip says
    (other synthetic clips once), and every listing is its own augmented pass: the windows of
    a repeated clip differ from its first ones."""
    from kwsd.audio.audiofile import write_wav_16k
    from kwsd.head_training.dataset import Clip
    from kwsd.head_training.examples import WindowPolicy
    from kwsd.head_training.features import build_windows
    from kwsd.head_training.train import repeat_clips

    rng = np.random.default_rng(0)
    clips = []
    for name, engine, label in (("a", "real", "computer"), ("b", "espeak", "computer"),
                                ("c", "espeak", "blueberry"), ("d", "espeak", "_unknown_")):
        path = tmp_path / f"{name}.wav"
        write_wav_16k(path, (rng.standard_normal(24000) * 3000).astype(np.int16))
        clips.append(Clip(path=path, label=label, kw_start_s=0.5, kw_end_s=1.0,
                          engine=engine))
    real_speech = Clip(path=tmp_path / "e.wav", label="_unknown_", engine="real")
    listed = repeat_clips(clips, 3)
    assert [c.path.stem for c in listed] == ["a", "b", "c", "d", "a", "a"]
    assert repeat_clips(clips, 1) == clips
    both = repeat_clips(clips, 2, 3)
    assert [c.path.stem for c in both] == ["a", "b", "c", "d", "a", "c", "c"]
    # one real computer beside three real operators: computer still counts as synthetic-only
    few = clips + [Clip(path=clips[0].path, label="operator", engine="real")] * 3
    assert [c.label for c in repeat_clips(few, 1, 2)[len(few):]] == ["computer", "blueberry"]
    negatives_once = repeat_clips(clips + [real_speech], 3, 1, 1)
    assert [c.path.stem for c in negatives_once] == ["a", "b", "c", "d", "e", "a", "a"]
    assert [c.path.stem for c in repeat_clips(clips + [real_speech], 1, 1, 2)] == \
        ["a", "b", "c", "d", "e", "e"]
    assert repeat_clips(clips + [real_speech], 2) == repeat_clips(clips + [real_speech], 2, 1, 2)
    # synthetic speech of no keyword (every kind but noise), not real speech or keywords
    said = [Clip(path=clips[3].path, label=label, engine="espeak", kind=kind)
            for label, kind in (("_unknown_", "partial"), ("_unknown_", "sentence"),
                                ("_silence_", "noise"))]
    mixed = clips + said + [real_speech]
    assert [(c.path.stem, c.kind) for c in repeat_clips(mixed, 1, 1, 1, 3)[len(mixed):]] == \
        [("d", ""), ("d", "partial"), ("d", "sentence")] * 2
    assert repeat_clips(mixed, 2, 3, 1, 1) == repeat_clips(mixed, 2, 3, 1)
    # near-misses (confusable and partial words) listed on their own count, after the others
    near = mixed + [Clip(path=clips[3].path, label="_unknown_", engine="espeak",
                         kind="confusable")]
    assert [c.kind for c in repeat_clips(near, 1, 1, 1, 2, 3)[len(near):]] == \
        ["", "sentence"] + ["partial", "confusable"] * 2
    assert [c.kind for c in repeat_clips(near, 1, 1, 1, 1, 2)[len(near):]] == \
        ["partial", "confusable"]
    assert repeat_clips(near, 1, 1, 1, 2, None) == repeat_clips(near, 1, 1, 1, 2)
    for bad in ((0, 1), (1, 0), (1, 1, 0), (1, 1, 1, 0), (1, 1, 1, 1, 0)):
        with pytest.raises(TrainError, match="repeats must be >= 1"):
            repeat_clips(clips, *bad)
    policy = WindowPolicy(window=16000, hop=3200)
    windows = build_windows(tmp_path / "w", listed, {"computer": 0, "blueberry": 1,
                                                      "_unknown_": 2, "_silence_": 3},
                            policy, 1, 0,
                            lambda audio, starts: np.stack([audio[s:s + 16000]
                                                            for s in starts]),
                            (16000,), np.dtype(np.int16), progress=False)
    by_clip = [np.asarray(windows.x)[windows.clip == i] for i in (0, 4, 5)]
    assert all(len(rows) for rows in by_clip)
    assert not np.array_equal(by_clip[0][0], by_clip[1][0])


def test_average_fits_ships_the_mean_of_fits_from_one_start(tiny_corpus, tmp_path):
    """`average_fits` fits the head from the same initial weights in other batch orders and
    ships the average of the weights each fit kept; the first fit is the single-fit run's."""
    from safetensors.torch import load_file

    out = train(_cfg(tiny_corpus, tmp_path, average_fits=2, calibrate=False,
                     final_eval=False))
    meta = json.loads((out / "kws.json").read_text())
    averaged = meta["metrics"]["averaged_fits"]
    assert averaged["seeds"] == [0, 1] and meta["training"]["average_fits"] == 2
    assert averaged["val_loss"] > 0 and len(averaged["fit_val_loss"]) == 2
    kept = [torch.load(p / "best.pt", weights_only=True)["model"]
            for p in sorted((tmp_path / "work").glob("run-*"))]
    assert len(kept) == 2
    assert any(not torch.equal(a, b) for a, b in zip(kept[0].values(), kept[1].values(),
                                                      strict=True))
    shipped = load_file(out / "head.safetensors")
    for name, value in shipped.items():
        mean = (kept[0]["head." + name] + kept[1]["head." + name]) / 2
        assert torch.allclose(value, mean, atol=1e-6), name
    single = train(_cfg(tiny_corpus, tmp_path / "one", calibrate=False, final_eval=False,
                        workdir=tmp_path / "work-one"))  # the same seed, the same order
    first = load_file(single / "head.safetensors")
    assert all(torch.equal(first[k], kept[0]["head." + k].to(first[k].dtype)) for k in first)


def test_average_fits_is_refused_where_it_cannot_average(tiny_corpus, tmp_path):
    with pytest.raises(TrainError, match="--finetune none"):
        train(_cfg(tiny_corpus, tmp_path, average_fits=2, finetune="top"))
    with pytest.raises(TrainError, match="at least 1"):
        train(_cfg(tiny_corpus, tmp_path, average_fits=0))


def test_near_homophones_are_left_out_of_training_only(tiny_corpus, tmp_path):
    """--drop-near-homophones: a training negative that says "blue barry" (blueberry where
    marry and merry merge) is not trained on; a held-out one stays in the held-out set."""
    from kwsd.corpus import texts

    assert texts.says_near_homophone("she moved the Blue Barry in the park")
    assert not texts.says_near_homophone("a blueberry pie") and not texts.says_near_homophone(
        "the blue barrel")
    rows = list(csv.DictReader(tiny_corpus.open()))
    renamed = []
    for r in rows:
        if r["label"] == "_unknown_" and r["text"] == "commuter":
            r["text"] = "the blue barry pie"  # the audio stays; only what it is said to say
            renamed.append(r["split"])
    assert sorted(renamed) == ["train", "train", "val"]
    manifest = tiny_corpus.parent / "near-homophones.csv"
    with manifest.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    def clips(out):
        return json.loads((out / "kws.json").read_text())["training_data"]["clips"]

    fit_cfg = FitConfig(epochs=1, batch_size=16, lr=3e-3)
    kept = clips(train(_cfg(manifest, tmp_path / "kept", calibrate=False, final_eval=False,
                            fit=fit_cfg)))
    dropped_out = train(_cfg(manifest, tmp_path / "dropped", calibrate=False, final_eval=False,
                             fit=fit_cfg, drop_near_homophones=True))
    dropped = clips(dropped_out)
    assert dropped["train"]["_unknown_"] == kept["train"]["_unknown_"] - 2
    assert dropped["heldout"] == kept["heldout"]
    assert {k: v for k, v in dropped["train"].items() if k != "_unknown_"} == {
        k: v for k, v in kept["train"].items() if k != "_unknown_"}
    meta = json.loads((dropped_out / "kws.json").read_text())
    assert meta["training"]["drop_near_homophones"] is True


def test_a_clip_left_out_leaves_every_other_clips_windows_as_they_were(tmp_path):
    """Augmentation is seeded by each clip's audio and listing, not its place in the list: a
    data change (a clip left out) is not also a new augmentation draw for the clips after it."""
    from kwsd.audio.audiofile import write_wav_16k
    from kwsd.head_training.dataset import Clip
    from kwsd.head_training.examples import WindowPolicy
    from kwsd.head_training.features import build_windows
    from kwsd.head_training.train import training_augmenter

    rng = np.random.default_rng(1)
    clips = []
    for name in "abcd":
        path = tmp_path / f"{name}.wav"
        write_wav_16k(path, (rng.standard_normal(24000) * 3000).astype(np.int16))
        clips.append(Clip(path=path, label="computer", kw_start_s=0.5, kw_end_s=1.0))
    listed = clips + [clips[3]]  # d listed twice: its second listing is its own pass
    augmenter = training_augmenter(listed, True, 0)

    def rows(part, folder):
        w = build_windows(tmp_path / folder, part, {"computer": 0, "_unknown_": 1,
                                                     "_silence_": 2},
                          WindowPolicy(window=16000, hop=3200), 2, 0,
                          lambda audio, starts: np.stack([audio[s:s + 16000] for s in starts]),
                          (16000,), np.dtype(np.int16), augmenter, progress=False)
        x = np.asarray(w.x)
        return [[x[(w.clip == i) & (w.copy == c)] for c in (0, 1)] for i in range(len(part))]

    every = rows(listed, "all")
    without_a = rows(listed[1:], "without-a")
    for before, after in zip(every[1:], without_a, strict=True):
        for copy_before, copy_after in zip(before, after, strict=True):
            assert len(copy_before) and np.array_equal(copy_before, copy_after)
    assert not np.array_equal(every[3][0], every[4][0])  # d's two listings differ
    assert not np.array_equal(every[1][0], every[1][1])  # and so do a clip's two copies
