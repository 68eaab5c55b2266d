"""Inference copies, the positional-conv cache and the group-norm reference statistics."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from kwsd.model.bundle import load_bundle, make_random_bundle
from kwsd.model.config import demo_config
from kwsd.model.distilhubert import DistilHubert
from kwsd.model.posconv_cache import PosConvCache
from kwsd.model.runtime import PRECISIONS, fold_weight_norm, inference_encoder
from kwsd.model.streaming import StreamingClassifier


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_inference_copies_leave_the_original_alone() -> None:
    model = DistilHubert(demo_config()).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    wave = 0.2 * torch.randn(1, 16000)
    with torch.inference_mode():
        want = model(wave)
        for precision in PRECISIONS:
            got = inference_encoder(model, precision)(wave)
            limit = 1e-6 if precision == "fp32" else 0.05
            assert rel(got[-1], want[-1]) <= limit, precision
        again = model(wave)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(torch.equal(a, b) for a, b in zip(again, want, strict=True))


def test_posconv_cache_equals_the_conv_across_compactions() -> None:
    cfg = demo_config()
    model = DistilHubert(cfg).eval()
    fold_weight_norm(model)
    pc = model.encoder.pos_conv_embed
    frames, hop = 49, 10
    x = torch.randn(frames + 30 * hop, cfg.hidden_size)
    cache = PosConvCache(pc, frames, cfg.hidden_size, cfg.num_conv_pos_embedding_groups)
    with torch.inference_mode():
        cache.push(x[:frames])
        worst = (cache.output() - pc(x[None, :frames])).abs().max().item()
        for k in range(1, 31):  # capacity 98 frames: compacts every few pushes
            cache.push(x[frames + (k - 1) * hop: frames + k * hop])
            want = pc(x[None, k * hop: k * hop + frames])
            worst = max(worst, (cache.output() - want).abs().max().item())
    assert worst <= 1e-5


def test_group_norm_reference_stats_match_groupnorm() -> None:
    cfg = dataclasses.replace(demo_config(), feat_extract_norm="group")
    model = DistilHubert(cfg).eval()
    wave = 0.2 * torch.randn(2, 12345)
    with torch.inference_mode():
        plain = model.extract_conv_features(wave)
        via_reference = model.extract_conv_features(wave, reference=wave)
    assert (plain - via_reference).abs().max().item() <= 1e-4


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_streaming_in_other_precisions_is_chunk_independent(tmp_path, precision) -> None:
    bundle = load_bundle(make_random_bundle(tmp_path / "b", "demo", ["a"]))
    x = (np.random.default_rng(0).normal(0, 5000, 40000)).astype(np.int16)
    ref = StreamingClassifier(bundle, precision=precision).accept(x, 0)
    clf = StreamingClassifier(bundle, precision=precision)
    got = []
    for i in range(0, len(x), 317):
        got += clf.accept(x[i:i + 317], i)
    assert len(got) == len(ref) == 8
    for a, b in zip(got, ref, strict=True):
        assert np.array_equal(a.probs, b.probs)
    with pytest.raises(ValueError, match="precision"):
        StreamingClassifier(bundle, precision="fp8")


def test_bench_speed_runs(tmp_path) -> None:
    """Structure only: benchmarks measure, tests never assert speed."""
    path = make_random_bundle(tmp_path / "b", "demo", ["a"])
    proc = subprocess.run([sys.executable, "-m", "kwsd.model.bench", "speed", "--bundle",
                           str(path), "--seconds", "0.4", "--threads", "1", "--variants",
                           "window-fp32,cache-fp32"], capture_output=True, text=True,
                          check=True)
    out = json.loads(proc.stdout)
    assert set(out["variants"]) == {"window-fp32", "cache-fp32"}
    run = out["variants"]["cache-fp32"]["runs"][0]
    assert run["rtf"] > 0 and set(run["per_part_ms_per_audio_s"]) == {
        "conv", "posconv", "transformer", "head"}
    assert out["variants"]["window-fp32"]["vs_window_fp32"]["max_abs_posterior_diff"] == 0.0
