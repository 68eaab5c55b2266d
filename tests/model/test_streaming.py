"""Streaming posteriors: independent of chunking, equal to the per-window computation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from kwsd.audio.convert import int16_to_float
from kwsd.model.bundle import load_bundle, make_random_bundle
from kwsd.model.config import demo_config
from kwsd.model.streaming import (
    StreamingClassifier,
    encode_windows,
    posteriors_from_states,
)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(make_random_bundle(tmp_path_factory.mktemp("s") / "b", "demo",
                                          ["yes", "no"], seed=1))


@pytest.fixture(scope="module")
def group_bundle(tmp_path_factory):
    cfg = dataclasses.replace(demo_config(), feat_extract_norm="group")
    return load_bundle(make_random_bundle(tmp_path_factory.mktemp("g") / "b", cfg, ["go"]))


def audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with a speech-like envelope (syllable-rate amplitude modulation)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    env = 0.05 + 0.5 * (1 + np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6))) / 2
    return np.clip(rng.normal(0, 6000, n) * env, -32768, 32767).astype(np.int16)


def stream(clf: StreamingClassifier, samples: np.ndarray, chunk: int, start: int = 0):
    out = []
    for i in range(0, len(samples), chunk):
        out += clf.accept(samples[i:i + chunk], start + i)
    return out


def offline(bundle, samples: np.ndarray, starts) -> np.ndarray:
    w = bundle.window_samples
    windows = torch.stack([torch.from_numpy(int16_to_float(samples[s:s + w])) for s in starts])
    return posteriors_from_states(bundle, encode_windows(bundle, windows))


@pytest.mark.parametrize("cache", [True, False])
def test_chunk_sizes_give_identical_posteriors(bundle, cache) -> None:
    x = audio(2.75)
    clf = StreamingClassifier(bundle, cache_conv=cache)
    ref = stream(clf, x, 4000)
    assert [p.start_sample for p in ref] == list(range(0, len(x) - 16000 + 1, 3200))
    assert all(p.end_sample - p.start_sample == 16000 for p in ref)
    for chunk in (1, 160, 317):
        clf.reset()
        got = stream(clf, x, chunk)
        assert [p.start_sample for p in got] == [p.start_sample for p in ref]
        for a, b in zip(got, ref, strict=True):
            assert np.array_equal(a.probs, b.probs), f"chunk {chunk} window {a.start_sample}"


@pytest.mark.parametrize("cache", [True, False])
def test_posteriors_equal_offline_windows(bundle, cache) -> None:
    x = audio(3.1, seed=2)
    posts = stream(StreamingClassifier(bundle, cache_conv=cache), x, 1000)
    want = offline(bundle, x, [p.start_sample for p in posts])
    got = np.stack([p.probs for p in posts])
    assert got.shape == (len(posts), len(bundle.labels))
    assert np.allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert np.abs(got - want).max() <= 1e-5


def test_window_and_hop_override(bundle) -> None:
    x = audio(2.0, seed=3)
    clf = StreamingClassifier(bundle, window_samples=8000, hop_samples=1280)
    posts = stream(clf, x, 999)
    assert [p.start_sample for p in posts] == list(range(0, len(x) - 8000 + 1, 1280))
    want = offline_windows(bundle, x, posts, 8000)
    assert np.abs(np.stack([p.probs for p in posts]) - want).max() <= 1e-5
    with pytest.raises(ValueError, match="multiple of 320"):
        StreamingClassifier(bundle, hop_samples=3000)
    with pytest.raises(ValueError, match="exceeds window"):
        StreamingClassifier(bundle, window_samples=3200, hop_samples=6400)


def offline_windows(bundle, x, posts, w):
    windows = torch.stack([torch.from_numpy(int16_to_float(x[p.start_sample:p.start_sample + w]))
                           for p in posts])
    return posteriors_from_states(bundle, encode_windows(bundle, windows))


def test_discontinuity_resets_the_window_grid(bundle) -> None:
    x = audio(2.0, seed=4)
    clf = StreamingClassifier(bundle)
    first = clf.accept(x[:12000], 0)
    assert first == []
    after_gap = clf.accept(x, 50_000)  # does not continue at 12000: new grid from 50000
    assert [p.start_sample for p in after_gap] == list(range(50_000, 50_000 + 16001, 3200))
    fresh = StreamingClassifier(bundle).accept(x, 0)
    for a, b in zip(after_gap, fresh, strict=True):
        assert np.array_equal(a.probs, b.probs)


def test_bad_samples_are_refused(bundle) -> None:
    clf = StreamingClassifier(bundle)
    with pytest.raises(TypeError, match="int16"):
        clf.accept(np.zeros(10, dtype=np.float32), 0)
    with pytest.raises(ValueError, match="mono"):
        clf.accept(np.zeros((10, 2), dtype=np.int16), 0)


def test_window_states_is_the_streaming_path(bundle) -> None:
    x = audio(2.5, seed=5)
    clf = StreamingClassifier(bundle)
    starts, states = clf.window_states(x)
    posts = stream(clf, x, 500)
    assert list(starts) == [p.start_sample for p in posts]
    for i, p in enumerate(posts):  # bit-identical, window by window
        assert np.array_equal(posteriors_from_states(bundle, states[i:i + 1])[0], p.probs)
    # the training engineer's use: the head trains on these states
    head = bundle.head.train()
    try:
        loss = torch.nn.functional.cross_entropy(head(states), torch.zeros(len(starts),
                                                                          dtype=torch.long))
        loss.backward()
        assert head.classifier.weight.grad is not None
    finally:
        head.zero_grad()
        head.eval()


def test_group_norm_cache_is_an_approximation(group_bundle) -> None:
    """Group norm: the first window is exact; later ones differ a little (measured in bench)."""
    x = audio(2.5, seed=6)
    plain = stream(StreamingClassifier(group_bundle, cache_conv=False), x, 4000)
    cached = stream(StreamingClassifier(group_bundle, cache_conv=True), x, 4000)
    want = offline(group_bundle, x, [p.start_sample for p in plain])
    assert np.abs(np.stack([p.probs for p in plain]) - want).max() <= 1e-5
    assert np.abs(cached[0].probs - plain[0].probs).max() <= 1e-5
    chunked = stream(StreamingClassifier(group_bundle, cache_conv=True), x, 317)
    for a, b in zip(chunked, cached, strict=True):
        assert np.array_equal(a.probs, b.probs)
