"""Training the cascade's stage one on the head trainer's labelled window audio.

The head trainer caches the audio of every training window (features.py, `cache/audio-*`:
int16 rows, labels in the bundle's label order, each window's keyword coverage); stage one
learns from exactly those windows, so it sees the same voices, augmentation and hard negatives
as the head. Log-mel features of all windows are computed once and cached (float16) under the
work folder; the small CNN then trains for a few epochs on them. Windows holding part of a
keyword (label `_unknown_`, coverage > PARTIAL_IGNORE) are left out: stage one may pass them
(the hold that follows a pass then covers the windows where the keyword is whole) and need not
learn to refuse them, which the head does.

With the head trainer's hidden-state cache of the bundle's own encoder (`cache/states-*`, the
same rows), stage one also learns from the bundle's head (distillation): its target is half the
window's label, half the head's posterior, and the partial-keyword windows come back with the
head's posterior alone. Stage one then learns where the encoder + head would say "keyword",
which is what the cascade must not miss, rather than only where the labels do.

The threshold is not chosen here (threshold.py: on held-out real callers, through the daemon's
own path, for a stated recall loss).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kwsd.head_training.features import with_top_recomputed
from kwsd.head_training.fit import class_weights
from kwsd.model.cascade import StageOne, StageOneConfig, keyword_probability

log = logging.getLogger(__name__)

PARTIAL_IGNORE = 0.3  # _unknown_ windows holding more of a keyword than this: not trained on


class WindowCacheError(ValueError):
    """A window-audio cache folder that cannot be used; the message says why."""


@dataclass
class WindowAudio:
    """The head trainer's window-audio cache, memory-mapped: rows [N, window] int16."""

    path: Path
    x: np.ndarray
    labels: np.ndarray
    coverage: np.ndarray


def open_window_audio(path: Path, window: int, num_labels: int) -> WindowAudio:
    path = Path(path)
    rows_file, meta_file = path / "rows.bin", path / "meta.npz"
    if not rows_file.is_file() or not meta_file.is_file():
        raise WindowCacheError(f"{path}: not a window-audio cache (needs rows.bin and meta.npz "
                               "from `kwsd train`'s work folder, cache/audio-*)")
    with np.load(meta_file) as z:
        labels, coverage = z["labels"].astype(np.int64), z["coverage"].astype(np.float32)
    n = len(labels)
    size = rows_file.stat().st_size
    if size < n * window * 2 or size % (window * 2):
        raise WindowCacheError(f"{path}: rows.bin holds {size} bytes, not {n} rows of {window} "
                               "int16 samples (another window length, or an unfinished cache)")
    if n and (labels.min() < 0 or labels.max() >= num_labels):
        raise WindowCacheError(f"{path}: labels outside the bundle's {num_labels} labels")
    x = np.memmap(rows_file, dtype=np.int16, mode="r", shape=(n, window))
    return WindowAudio(path, x, labels, coverage)


def cached_features(audio: WindowAudio, model: StageOne, workdir: Path,
                    batch: int = 512) -> np.ndarray:
    """Log-mel features of every row [N, n_mels, frames] (float16), computed once per cache."""
    cfg = model.config
    key = f"{audio.path.resolve().name}-{len(audio.labels)}-mel{cfg.n_mels}-hop{cfg.fft_hop}"
    out = workdir / f"logmel-{key}.npy"
    if out.is_file():
        return np.load(out, mmap_mode="r")
    workdir.mkdir(parents=True, exist_ok=True)
    chunks = []
    t0 = time.time()
    with torch.inference_mode():
        for i in range(0, len(audio.labels), batch):
            wave = torch.from_numpy(np.asarray(audio.x[i:i + batch], dtype=np.float32) / 32768.0)
            chunks.append(model.features(wave).to(torch.float16).numpy())
    feats = np.concatenate(chunks) if chunks else np.zeros((0, cfg.n_mels, 0), np.float16)
    tmp = out.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    tmp.replace(out)
    log.info("log-mel of %d windows in %.0f s -> %s", len(feats), time.time() - t0, out)
    return feats


def _current_top(bundle, rows: np.ndarray) -> torch.Tensor:
    """Cached states with the top one from the bundle's own last layer (features.py)."""
    with torch.inference_mode():
        return with_top_recomputed(torch.from_numpy(np.asarray(rows, np.float32)),
                                   bundle.encoder.encoder.layers[-1])


def teacher_posteriors(bundle, states_dir: Path, audio: WindowAudio, workdir: Path,
                       batch: int = 512) -> np.ndarray:
    """The bundle head's posteriors [N, labels] of every cached window, from the head
    trainer's hidden-state cache of the bundle's encoder (checked on a few rows against the
    encoder itself, so a cache of another encoder is refused). The top state is recomputed
    from the one before it with the bundle's last layer: a cache made before `kwsd train
    --finetune top` holds the old layer's output."""
    from kwsd.model.streaming import encode_windows, posteriors_from_states

    cfg = bundle.encoder.config
    shape = (cfg.num_hidden_layers + 1, cfg.num_frames(bundle.window_samples), cfg.hidden_size)
    n = len(audio.labels)
    path = Path(states_dir) / "states.bin"
    want = n * int(np.prod(shape)) * 2
    if not path.is_file() or path.stat().st_size != want:
        have = path.stat().st_size if path.is_file() else "no file"
        raise WindowCacheError(f"{states_dir}: states.bin should hold {n} windows of "
                               f"{shape} float16 ({want} bytes), has {have} (another encoder, "
                               "another window cache, or unfinished)")
    x = np.memmap(path, dtype=np.float16, mode="r", shape=(n, *shape))
    probe = np.linspace(0, n - 1, 4).astype(np.int64)
    wins = torch.from_numpy(np.asarray(audio.x[probe], dtype=np.float32) / 32768.0)
    live = posteriors_from_states(bundle, encode_windows(bundle, wins, precision="fp32"))
    cached = posteriors_from_states(bundle, _current_top(bundle, x[probe]))
    diff = float(np.abs(live - cached).max())
    if diff > 0.05:
        raise WindowCacheError(f"{states_dir}: its hidden states are not this bundle's "
                               f"encoder's (head posteriors differ by {diff:.2f} on the same "
                               "windows)")
    out = workdir / f"teacher-{Path(states_dir).name}-{n}.npy"
    if out.is_file():
        return np.load(out)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    probs = np.concatenate([
        posteriors_from_states(bundle, _current_top(bundle, x[i:i + batch]))
        for i in range(0, n, batch)]).astype(np.float32)
    np.save(out, probs)
    log.info("teacher posteriors of %d windows in %.0f s -> %s", n, time.time() - t0, out)
    return probs


@dataclass
class StageOneFit:
    epochs: int = 6
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-2
    seed: int = 0
    class_weight_power: float = 0.5
    max_negatives: int | None = 20000  # _unknown_ windows trained on (a random subset)
    label_weight: float = 0.5  # with a teacher: target = w * label + (1 - w) * head posterior


def train_stage_one(train: WindowAudio, val: WindowAudio | None, num_labels: int,
                    workdir: Path, fit: StageOneFit | None = None,
                    n_mels: int = 40, teacher: np.ndarray | None = None
                    ) -> tuple[StageOne, dict]:
    """Train stage one (distilled from `teacher` posteriors [N, labels] when given); returns
    the model of the epoch with the lowest validation loss, and the history."""
    fit = fit or StageOneFit()
    torch.manual_seed(fit.seed)
    model = StageOne(StageOneConfig(num_labels=num_labels, n_mels=n_mels))
    feats = cached_features(train, model, workdir)
    keep = ~((train.labels == num_labels - 2) & (train.coverage > PARTIAL_IGNORE))
    if teacher is not None:
        keep[:] = True  # partial windows learn the head's posterior
        partial = torch.from_numpy((train.labels == num_labels - 2)
                                   & (train.coverage > PARTIAL_IGNORE))
        soft = torch.from_numpy(np.asarray(teacher, dtype=np.float32))
    rows = np.flatnonzero(keep)
    unknown = rows[train.labels[rows] == num_labels - 2]
    if fit.max_negatives is not None and len(unknown) > fit.max_negatives:
        drop = np.random.default_rng(fit.seed).permutation(unknown)[fit.max_negatives:]
        rows = np.setdiff1d(rows, drop)
    labels = torch.from_numpy(train.labels)
    weights = class_weights(train.labels[rows], num_labels, fit.class_weight_power)
    val_feats = cached_features(val, model, workdir) if val is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=fit.lr, weight_decay=fit.weight_decay)
    steps = fit.epochs * -(-len(rows) // fit.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=fit.lr, total_steps=max(1, steps))
    gen = np.random.default_rng(fit.seed)
    history: list[dict] = []
    best: tuple[float, dict] | None = None
    for epoch in range(1, fit.epochs + 1):
        model.train()
        t0 = time.time()
        order = gen.permutation(rows)
        total = 0.0
        for i in range(0, len(order), fit.batch_size):
            idx = np.sort(order[i:i + fit.batch_size])
            x = torch.from_numpy(np.asarray(feats[idx], dtype=np.float32))
            if teacher is None:
                loss = F.cross_entropy(model.body(x), labels[idx], weight=weights)
            else:
                y = labels[idx]
                w = torch.where(partial[idx], 0.0, fit.label_weight)[:, None]
                target = w * F.one_hot(y, num_labels) + (1 - w) * soft[idx]
                logp = F.log_softmax(model.body(x), dim=-1)
                loss = (-(target * logp).sum(-1) * weights[y]).sum() / weights[y].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        entry = {"epoch": epoch, "train_loss": round(total / len(order), 4),
                 "seconds": round(time.time() - t0, 1)}
        if val_feats is not None and len(val.labels):
            entry.update(evaluate(model, val_feats, val.labels, num_labels))
            score = entry["val_loss"]
        else:
            score = -epoch  # no validation: the last epoch
        history.append(entry)
        log.info("stage one epoch %d: %s", epoch, json.dumps(entry))
        if best is None or score < best[0]:
            best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()})
    assert best is not None
    model.load_state_dict(best[1])
    return model.eval().requires_grad_(False), {"history": history}


def evaluate(model: StageOne, feats: np.ndarray, labels: np.ndarray, num_labels: int,
             batch: int = 1024) -> dict:
    """Validation loss, and how many keyword windows stage one would pass at the rate it
    passes non-keyword windows (recall at 10 % and 20 % of negatives passed)."""
    model.eval()
    scores, losses = [], []
    with torch.inference_mode():
        for i in range(0, len(labels), batch):
            x = torch.from_numpy(np.asarray(feats[i:i + batch], dtype=np.float32))
            logits = model.body(x)
            y = torch.from_numpy(labels[i:i + batch])
            losses.append(float(F.cross_entropy(logits, y, reduction="sum")))
            scores.append(keyword_probability(logits, num_labels - 2).numpy())
    s = np.concatenate(scores)
    pos = labels < num_labels - 2
    out = {"val_loss": round(sum(losses) / len(labels), 4)}
    if pos.any() and (~pos).any():
        for rate in (0.1, 0.2):
            thr = np.quantile(s[~pos], 1 - rate)
            recall = float((s[pos] >= thr).mean())
            out[f"val_kw_recall_at_{int(rate * 100)}pct_neg"] = round(recall, 4)
    return out
