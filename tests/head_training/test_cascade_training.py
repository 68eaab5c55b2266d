"""Stage-one training on a window-audio cache (the head trainer's format), with and without the
head as teacher; bad caches are clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kwsd.head_training.cascade import (
    StageOneFit,
    WindowCacheError,
    open_window_audio,
    train_stage_one,
)
from kwsd.model.cascade import STAGE_ONE_FILE, keyword_probability, load_stage_one, save_stage_one

WINDOW = 16000
LABELS = 4  # two keywords, _unknown_, _silence_


def _cache(path, n=48, seed=0):
    """Keyword windows hold a loud 1 kHz tone burst, the others noise: learnable in an epoch."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    labels = np.array([i % LABELS for i in range(n)], dtype=np.int64)
    t = np.arange(WINDOW) / 16000
    rows = rng.normal(0, 300, (n, WINDOW))
    for i, lab in enumerate(labels):
        if lab < 2:
            rows[i, 4000:12000] += 8000 * np.sin(2 * np.pi * (1000 + 500 * lab) * t[4000:12000])
    rows.astype(np.int16).tofile(path / "rows.bin")
    np.savez(path / "meta.npz", labels=labels, clip=np.arange(n), copy=np.zeros(n, np.int64),
             coverage=np.where(labels < 2, 1.0, 0.0).astype(np.float32))
    return path


def test_train_save_load_and_separate(tmp_path):
    torch.set_num_threads(1)
    audio = open_window_audio(_cache(tmp_path / "train"), WINDOW, LABELS)
    model, info = train_stage_one(audio, audio, LABELS, tmp_path / "work",
                                  StageOneFit(epochs=3, batch_size=16, lr=5e-3))
    assert len(info["history"]) == 3 and "val_loss" in info["history"][0]
    loaded = load_stage_one(save_stage_one(model, tmp_path / STAGE_ONE_FILE), LABELS)
    wave = torch.from_numpy(np.asarray(audio.x[:8], np.float32) / 32768)
    with torch.inference_mode():
        # folding BatchNorm at load changes nothing but rounding
        torch.testing.assert_close(loaded(wave), model(wave), atol=1e-4, rtol=1e-4)
        p = keyword_probability(loaded(wave), 2).numpy()
    kw = audio.labels[:8] < 2
    assert p[kw].min() > p[~kw].max()


def test_train_with_teacher(tmp_path):
    torch.set_num_threads(1)
    audio = open_window_audio(_cache(tmp_path / "train"), WINDOW, LABELS)
    teacher = np.eye(LABELS, dtype=np.float32)[audio.labels] * 0.9 + 0.025
    model, info = train_stage_one(audio, None, LABELS, tmp_path / "work",
                                  StageOneFit(epochs=1, batch_size=16), teacher=teacher)
    assert info["history"][0]["train_loss"] > 0


def test_bad_caches(tmp_path):
    with pytest.raises(WindowCacheError, match="not a window-audio cache"):
        open_window_audio(tmp_path, WINDOW, LABELS)
    path = _cache(tmp_path / "c")
    with pytest.raises(WindowCacheError, match="another window length"):
        open_window_audio(path, 8000 + 1, LABELS)
    with pytest.raises(WindowCacheError, match="labels outside"):
        open_window_audio(path, WINDOW, 3)
