"""The optimisation loop's weight averaging (`--ema-decay`): what is kept, and resuming."""

import numpy as np
import pytest
import torch
from kwsd.head_training.fit import FitConfig, fit
from torch import nn


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((640, 8)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.int64)
    return x, y


def _fit(workdir, epochs=3, resume=False, max_steps=None, ema_decay=0.9):
    torch.manual_seed(1)
    model = nn.Linear(8, 2)
    x, y = _data()
    cfg = FitConfig(epochs=epochs, batch_size=32, ema_decay=ema_decay, max_steps=max_steps,
                    progress=False)
    state = fit(model, model, x, y, x[:128], y[:128], 2, cfg, workdir, resume=resume)
    return model, state


def test_the_averaged_weights_are_validated_kept_and_returned(tmp_path):
    model, state = _fit(tmp_path)
    assert all("val_loss_raw" in h and "val_loss" in h for h in state.history)
    # the averaged weights differ from the last step's, and their loss is what picked the epoch
    assert any(h["val_loss"] != h["val_loss_raw"] for h in state.history)
    assert state.best_epoch == min(state.history, key=lambda h: h["val_loss"])["epoch"]
    best = torch.load(tmp_path / "best.pt", weights_only=True)["model"]
    raw = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, best[name])
    assert not torch.equal(best["weight"], raw["weight"])


def test_an_interrupted_averaged_run_resumes_to_the_same_weights(tmp_path):
    whole, _ = _fit(tmp_path / "whole")
    _fit(tmp_path / "parts", max_steps=20)  # stops after the first epoch (20 steps)
    resumed, state = _fit(tmp_path / "parts", resume=True)
    assert state.epoch == 3
    for name, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value)


def test_resuming_a_plain_run_with_averaging_is_refused_by_name(tmp_path):
    _fit(tmp_path, epochs=1, ema_decay=0.0)
    with pytest.raises(ValueError, match="without weight averaging"):
        _fit(tmp_path, resume=True)


def test_a_decay_outside_zero_to_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="ema_decay must be in"):
        _fit(tmp_path, ema_decay=1.0)
