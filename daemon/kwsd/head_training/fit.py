"""The optimisation loop: epochs over cached window features, one checkpoint per epoch.

Resumable: a checkpoint holds the trainable weights, the optimiser, the epoch, the history and
the RNG state, so `--resume` continues exactly where an interrupted run stopped. With
validation windows, the weights of the epoch with the lowest validation loss are kept
(`best.pt`) and returned: later epochs may learn the training voices at the others' expense.
Plain cross entropy without label smoothing: smoothing caps the posteriors and makes
thresholds less useful (measured on the prototype).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass
class FitConfig:
    epochs: int = 12
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0
    max_steps: int | None = None  # stop early (tests, smoke runs)
    class_weight_power: float = 0.5  # 0: none; 1: inverse frequency
    label_smoothing: float = 0.0  # cross-entropy target smoothing (0: one-hot)
    progress: bool = True


@dataclass
class FitState:
    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    best_epoch: int | None = None  # lowest validation loss; its weights are what fit returns


def class_weights(labels: np.ndarray, n_classes: int, power: float) -> torch.Tensor:
    """Inverse-frequency weights to the `power` (rare keyword windows count more), mean 1."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1)) ** power, 0.0)
    w = w / w[counts > 0].mean()
    return torch.tensor(w, dtype=torch.float32)


def loss_function(train_y: np.ndarray, n_classes: int, config: FitConfig) -> nn.Module:
    """The training loss: cross entropy with the training windows' class weights."""
    weights = class_weights(np.asarray(train_y), n_classes, config.class_weight_power)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)


def average_weights(state_dicts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Uniform average of fits' weights ("model soup"). Meaningful only for fits that started
    from the same weights: they stay in one basin, and the average is less a draw of the batch
    order than any one fit (session 21: lower validation loss than each of three)."""
    if not state_dicts:
        raise ValueError("no weights to average")
    keys = state_dicts[0].keys()
    if any(sd.keys() != keys for sd in state_dicts):
        raise ValueError("the fits to average have different parameters")
    for k, v in state_dicts[0].items():
        if not v.is_floating_point():
            raise ValueError(f"cannot average the non-float weight {k!r}")
    return {k: torch.stack([sd[k].float() for sd in state_dicts]).mean(0).to(
        state_dicts[0][k].dtype) for k in keys}


def _batches(n: int, batch: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(n, generator=gen)
    for i in range(0, n, batch):
        yield order[i: i + batch]


def save_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, sched,
                    state: FitState, gen: torch.Generator) -> None:
    """Atomic write, so a kill during the save leaves the previous checkpoint intact."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model": {k: v for k, v in model.state_dict().items()},
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "epoch": state.epoch, "step": state.step,
                "history": state.history, "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, model: nn.Module, opt: torch.optim.Optimizer, sched,
                    gen: torch.Generator) -> FitState:
    # weights_only: a checkpoint is data, never code (we wrote it, but still)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    gen.set_state(ckpt["generator"])
    torch.set_rng_state(ckpt["torch_rng"])
    return FitState(epoch=int(ckpt["epoch"]), step=int(ckpt["step"]),
                    history=list(ckpt["history"]))


def fit(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
        train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray | None,
        val_y: np.ndarray | None, n_classes: int, config: FitConfig, workdir: Path,
        resume: bool = False) -> FitState:
    """Train `model` (its parameters with requires_grad) so that forward(x batch) -> logits.

    `train_x` may be a numpy memmap: batches are gathered from it, so the cache never has to
    fit in memory. Checkpoints go to workdir/checkpoint.pt after every epoch.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / "checkpoint.pt"
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: no parameter requires grad")
    # a model may learn some weights at other rates (train._Model: a pretrained encoder layer)
    groups = model.param_groups(config.lr) if hasattr(model, "param_groups") else \
        [{"params": params, "lr": config.lr}]
    opt = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    loss_fn = loss_function(train_y, n_classes, config)
    n = len(train_y)
    steps_per_epoch = -(-n // config.batch_size)
    total_steps = config.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=[g["lr"] for g in groups], total_steps=max(total_steps, 1), pct_start=0.1)
    state = FitState()
    if resume:
        if not ckpt_path.is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt_path}")
        state = load_checkpoint(ckpt_path, model, opt, sched, gen)
        log.info("resumed from %s after epoch %d", ckpt_path, state.epoch)
    bar = _progress(total_steps, config.progress, initial=state.step)
    try:
        while state.epoch < config.epochs:
            model.train()
            losses = []
            for idx in _batches(n, config.batch_size, gen):
                rows = np.sort(idx.numpy())
                x = torch.from_numpy(np.asarray(train_x[rows], dtype=np.float32))
                y = torch.from_numpy(np.asarray(train_y[rows], dtype=np.int64))
                loss = loss_fn(forward(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if state.step < total_steps:
                    sched.step()
                state.step += 1
                losses.append(loss.item())
                bar.update(1)
                bar.set_postfix(epoch=state.epoch + 1, loss=f"{np.mean(losses[-50:]):.3f}")
                if config.max_steps is not None and state.step >= config.max_steps:
                    break
            state.epoch += 1
            entry = {"epoch": state.epoch, "step": state.step,
                     "train_loss": float(np.mean(losses)) if losses else None,
                     "first_loss": losses[0] if losses else None}
            if val_x is not None and val_y is not None and len(val_y):
                entry.update(evaluate_windows(model, forward, val_x, val_y, loss_fn))
            state.history.append(entry)
            log.info("epoch %d: %s", state.epoch, json.dumps(
                {k: round(v, 4) if isinstance(v, float) else v for k, v in entry.items()}))
            if "val_loss" in entry and entry["val_loss"] <= min(
                    h.get("val_loss", np.inf) for h in state.history):
                tmp = workdir / "best.pt.tmp"
                torch.save({"epoch": state.epoch, "model": model.state_dict()}, tmp)
                os.replace(tmp, workdir / "best.pt")
            save_checkpoint(ckpt_path, model, opt, sched, state, gen)
            if config.max_steps is not None and state.step >= config.max_steps:
                break
    finally:
        bar.close()
    best = workdir / "best.pt"
    if best.is_file() and any("val_loss" in h for h in state.history):
        saved = torch.load(best, map_location="cpu", weights_only=True)  # written just above
        model.load_state_dict(saved["model"])
        state.best_epoch = int(saved["epoch"])
        log.info("kept the weights of epoch %d (lowest validation loss)", state.best_epoch)
    model.eval()
    return state


@torch.no_grad()
def evaluate_windows(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
                     x: np.ndarray, y: np.ndarray, loss_fn: nn.Module,
                     batch: int = 1024) -> dict:
    """Window-level loss and accuracy on held-out windows (a sanity figure, not the metric)."""
    model.eval()
    losses, correct = [], 0
    for i in range(0, len(y), batch):
        xb = torch.from_numpy(np.asarray(x[i: i + batch], dtype=np.float32))
        yb = torch.from_numpy(np.asarray(y[i: i + batch], dtype=np.int64))
        logits = forward(xb)
        losses.append(float(loss_fn(logits, yb)) * len(yb))
        correct += int((logits.argmax(1) == yb).sum())
    model.train()
    return {"val_loss": sum(losses) / len(y), "val_acc": correct / len(y)}


def _progress(total: int, enabled: bool, initial: int = 0):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, disable=not enabled, desc="train", unit="step",
                dynamic_ncols=True, leave=False)
