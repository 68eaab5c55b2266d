"""A linear keyword probe: how much of the teacher's knowledge did the student keep?

Frozen features (mean and standard deviation over the keyword's frames) from the student, the
Whisper teacher, a randomly initialised student and plain log-mel are each fed to the same
logistic-regression classifier, trained on synthetic keyword clips of the training voices and
measured on held-out voices and, optionally, on real recordings (evaluation only: the
classifier never sees them). Not a keyword spotter: a quick, comparable quality check.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path

import numpy as np
import torch

from kwsd.audio.convert import int16_to_float
from kwsd.audio.wavfile import read_wav_16k
from kwsd.model.distilhubert import DistilHubert
from kwsd.training import teacher as T

log = logging.getLogger(__name__)
MARGIN_S = 0.1  # context kept around the labelled keyword


def _cut(samples: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    a = max(0, int((start_s - MARGIN_S) * T.SAMPLE_RATE))
    b = min(len(samples), int((end_s + MARGIN_S) * T.SAMPLE_RATE))
    return samples[a:b]


def _pool(frames: np.ndarray) -> np.ndarray:
    return np.concatenate([frames.mean(0), frames.std(0)]).astype(np.float32)


def load_clips(manifest: Path, labels: list[str] | None, max_per_split: int, seed: int
               ) -> dict[str, tuple[list[np.ndarray], list[str]]]:
    """Keyword cuts of a corpus manifest (kinds keyword / keyword_sentence) per split."""
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f)
                if r.get("kind") in ("keyword", "keyword_sentence") and r.get("kw_start_s")]
    if labels is not None:
        rows = [r for r in rows if r["label"] in labels]
    rng = np.random.default_rng(seed)
    out: dict[str, tuple[list[np.ndarray], list[str]]] = {}
    for split in ("train", "val"):
        part = [r for r in rows if r.get("split") == split]
        if len(part) > max_per_split:
            part = [part[i] for i in sorted(rng.choice(len(part), max_per_split, replace=False))]
        clips = [_cut(read_wav_16k(manifest.parent / r["file"]), float(r["kw_start_s"]),
                      float(r["kw_end_s"])) for r in part]
        out[split] = (clips, [r["label"] for r in part])
    return out


def load_real(manifest: Path) -> tuple[list[np.ndarray], list[str], list[bool]]:
    """Labelled keyword cuts of a real-recordings manifest (wuw-dev.csv format)."""
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("keyword") and r.get("kw_start_s")]
    clips = [_cut(read_wav_16k(manifest.parent / r["file"]), float(r["kw_start_s"]),
                  float(r["kw_end_s"])) for r in rows]
    return clips, [r["keyword"] for r in rows], [r["in_sentence"] == "True" for r in rows]


# -- feature extractors ---------------------------------------------------------------------
def student_features(encoder: DistilHubert, clips: list[np.ndarray]) -> np.ndarray:
    out = []
    with torch.no_grad():
        for c in clips:
            x = int16_to_float(c)
            if len(x) < 16000:  # the daemon always sees >= 1 s windows
                pad = 16000 - len(x)
                x = np.pad(x, (pad // 2, pad - pad // 2))
            out.append(_pool(encoder(torch.from_numpy(x)[None])[-1][0].numpy()))
    return np.stack(out)


def teacher_features(clips: list[np.ndarray], layer: int = 6) -> np.ndarray:
    encoder = T.load_torch_teacher()
    floats = [int16_to_float(c) for c in clips]
    placements = T.pack_clips([len(c) for c in floats])
    windows = T.render_windows(floats, placements)
    states = []
    for w in range(0, len(windows), 2):
        states.append(encoder(T.whisper_log_mel(windows[w: w + 2]), upto=layer)[-1].numpy())
    allstates = np.concatenate(states)
    return np.stack([_pool(allstates[p.window, p.first_frame: p.first_frame + p.num_frames])
                     for p in placements])


def logmel_features(clips: list[np.ndarray]) -> np.ndarray:
    return np.stack([_pool(T.whisper_log_mel(int16_to_float(c)).numpy().T) for c in clips])


# -- the classifier -------------------------------------------------------------------------
def fit_logreg(x: np.ndarray, y: np.ndarray, classes: int, weight_decay: float = 1e-3,
               steps: int = 300) -> tuple[torch.nn.Linear, np.ndarray, np.ndarray]:
    mean, std = x.mean(0), x.std(0) + 1e-6
    xt = torch.from_numpy((x - mean) / std).float()
    yt = torch.from_numpy(y).long()
    torch.manual_seed(0)
    lin = torch.nn.Linear(x.shape[1], classes)
    opt = torch.optim.LBFGS(lin.parameters(), lr=0.5, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(xt), yt) + weight_decay * (
            lin.weight ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return lin, mean, std


def predict(model: tuple[torch.nn.Linear, np.ndarray, np.ndarray], x: np.ndarray,
            allowed: list[int] | None = None) -> np.ndarray:
    lin, mean, std = model
    with torch.no_grad():
        logits = lin(torch.from_numpy((x - mean) / std).float()).numpy()
    if allowed is not None:
        mask = np.full(logits.shape[1], -np.inf)
        mask[allowed] = 0.0
        logits = logits + mask
    return logits.argmax(1)


def run_probe(encoder_dir: Path, corpus_manifest: Path, real_manifest: Path | None = None,
              threads: int = 2, max_per_split: int = 1500, seed: int = 0,
              augment_train: bool = True) -> dict:
    from kwsd.model.checkpoint import load_encoder
    from kwsd.training.augment import AugmentConfig, Augmenter

    torch.set_num_threads(threads)
    corpus_manifest = Path(corpus_manifest)
    if corpus_manifest.is_dir():
        corpus_manifest = corpus_manifest / "manifest.csv"
    data = load_clips(corpus_manifest, None, max_per_split, seed)
    train_clips, train_labels = data["train"]
    if augment_train:  # one clean and one augmented copy, as the real head would train
        aug = Augmenter(AugmentConfig(p_speed=0.0, max_shift_s=0.0))
        rng = np.random.default_rng(seed)
        train_clips = train_clips + [aug.apply(c, rng).samples for c in train_clips]
        train_labels = train_labels + train_labels
    val_clips, val_labels = data["val"]
    classes = sorted(set(train_labels))
    cidx = {c: i for i, c in enumerate(classes)}
    y_train = np.array([cidx[v] for v in train_labels])
    y_val = np.array([cidx.get(v, -1) for v in val_labels])
    real = load_real(Path(real_manifest)) if real_manifest is not None else None
    sets = {"train": train_clips, "val": val_clips}
    if real is not None:
        sets["real"] = real[0]
    encoder = load_encoder(encoder_dir)
    torch.manual_seed(seed)
    random_student = DistilHubert(encoder.config).eval()
    extractors = {
        "student": lambda clips: student_features(encoder, clips),
        "teacher": teacher_features,
        "random_student": lambda clips: student_features(random_student, clips),
        "logmel": logmel_features,
    }
    result: dict = {"classes": classes, "train_clips": len(train_clips),
                    "val_clips": len(val_clips), "features": {}}
    for name, fn in extractors.items():
        t0 = time.monotonic()
        feats = {k: fn(v) for k, v in sets.items()}
        model = fit_logreg(feats["train"], y_train, len(classes))
        entry: dict = {"val_heldout_voices_acc": float(
            (predict(model, feats["val"]) == y_val).mean())}
        if real is not None:
            _, real_labels, in_sentence = real
            allowed = sorted({cidx[k] for k in real_labels if k in cidx})
            pred = predict(model, feats["real"], allowed)
            y_real = np.array([cidx.get(k, -1) for k in real_labels])
            ok = pred == y_real
            ins = np.array(in_sentence)
            entry.update(real_acc=float(ok.mean()), real_alone_acc=float(ok[~ins].mean()),
                         real_in_sentence_acc=float(ok[ins].mean()), real_clips=int(len(ok)),
                         real_classes=[classes[i] for i in allowed])
        entry["seconds"] = round(time.monotonic() - t0, 1)
        result["features"][name] = entry
        log.info("probe %s: %s", name, entry)
    return result
