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

from kwsd.audio.audiofile import read_audio_16k
from kwsd.audio.convert import int16_to_float
from kwsd.distillation import teacher as T
from kwsd.model.distilhubert import DistilHubert

log = logging.getLogger(__name__)
WINDOW_S = 1.5  # every probe clip: this much audio centred on the labelled keyword


def _cut(samples: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """A fixed-length window (real context, zero-padded at file edges) around the keyword,
    like a daemon window that contains it; fixed length also lets the encoders batch."""
    n = int(WINDOW_S * T.SAMPLE_RATE)
    a = int((start_s + end_s) / 2 * T.SAMPLE_RATE) - n // 2
    out = np.zeros(n, np.int16)
    lo, hi = max(a, 0), min(a + n, len(samples))
    if hi > lo:
        out[lo - a: hi - a] = samples[lo:hi]
    return out


def _pool(frames: np.ndarray) -> np.ndarray:
    return np.concatenate([frames.mean(0), frames.std(0)]).astype(np.float32)


def load_real(manifest: Path) -> tuple[list[np.ndarray], list[str], list[bool]]:
    """Labelled keyword cuts of a real-recordings manifest (wuw-dev.csv format)."""
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("keyword") and r.get("kw_start_s")]
    clips = [_cut(read_audio_16k(manifest.parent / r["file"]), float(r["kw_start_s"]),
                  float(r["kw_end_s"])) for r in rows]
    return clips, [r["keyword"] for r in rows], [r["in_sentence"] == "True" for r in rows]


# -- feature extractors ---------------------------------------------------------------------
def student_features(encoder: DistilHubert, clips: list[np.ndarray], batch: int = 32
                     ) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(clips), batch):
            x = torch.from_numpy(np.stack([int16_to_float(c) for c in clips[i: i + batch]]))
            out += [_pool(h) for h in encoder(x)[-1].numpy()]
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


def _select(corpus_manifest: Path, max_per_split: int, seed: int) -> list[dict[str, str]]:
    with open(corpus_manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f)
                if r.get("kind") in ("keyword", "keyword_sentence") and r.get("kw_start_s")]
    rng = np.random.default_rng(seed)
    out = []
    for split in ("train", "val"):
        part = [r for r in rows if r.get("split") == split]
        if len(part) > max_per_split:
            part = [part[i] for i in sorted(rng.choice(len(part), max_per_split, replace=False))]
        out += [{"file": str(corpus_manifest.parent / r["file"]), "label": r["label"],
                 "split": split, "kw_start_s": r["kw_start_s"], "kw_end_s": r["kw_end_s"]}
                for r in part]
    return out


class ProbeData:
    """A frozen clip list (probe_dir/clips.csv, so later runs compare like with like) and a
    cache of the encoder-independent features (teacher, log-mel) in probe_dir."""

    def __init__(self, probe_dir: Path, corpus_manifest: Path | None = None,
                 real_manifest: Path | None = None, max_per_split: int = 600, seed: int = 0
                 ) -> None:
        from kwsd.corpus.augment import AugmentConfig, Augmenter

        self.dir = Path(probe_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        listing = self.dir / "clips.csv"
        if not listing.is_file():
            if corpus_manifest is None:
                raise FileNotFoundError(f"{listing} missing: pass the corpus manifest")
            corpus_manifest = Path(corpus_manifest)
            if corpus_manifest.is_dir():
                corpus_manifest = corpus_manifest / "manifest.csv"
            rows = _select(corpus_manifest, max_per_split, seed)
            with open(listing, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        with open(listing, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))

        def cut(r: dict[str, str]) -> np.ndarray:
            return _cut(read_audio_16k(r["file"]), float(r["kw_start_s"]), float(r["kw_end_s"]))

        train = [r for r in rows if r["split"] == "train"]
        val = [r for r in rows if r["split"] == "val"]
        clean = [cut(r) for r in train]
        # One clean and one augmented copy, as the real head trains on augmented audio.
        aug = Augmenter(AugmentConfig(p_speed=0.0, max_shift_s=0.0))
        rng = np.random.default_rng(seed)
        self.sets = {"train": clean + [aug.apply(c, rng).samples for c in clean],
                     "val": [cut(r) for r in val]}
        self.labels = {"train": [r["label"] for r in train] * 2,
                       "val": [r["label"] for r in val]}
        self.in_sentence: list[bool] = []
        if real_manifest is not None:
            clips, labels, ins = load_real(Path(real_manifest))
            self.sets["real"], self.labels["real"], self.in_sentence = clips, labels, ins

    def features(self, name: str, fn) -> dict[str, np.ndarray]:
        out = {}
        for key, clips in self.sets.items():
            path = self.dir / f"{name}-{key}.npy"
            if name in ("teacher", "logmel") and path.is_file():
                cached = np.load(path)
                if len(cached) == len(clips):
                    out[key] = cached
                    continue
            out[key] = fn(clips)
            if name in ("teacher", "logmel"):
                np.save(path, out[key])
        return out


def run_probe(encoder_dir: Path, corpus_manifest: Path | None, real_manifest: Path | None = None,
              threads: int = 2, probe_dir: Path | None = None, max_per_split: int = 600,
              seed: int = 0, which: tuple[str, ...] = ("student", "teacher", "random_student",
                                                       "logmel")) -> dict:
    """Fit one linear classifier per feature kind; accuracy on held-out voices and real audio."""
    from kwsd.model.checkpoint import load_encoder
    from kwsd.model.config import demo_config

    torch.set_num_threads(threads)
    probe_dir = Path(probe_dir or Path(encoder_dir) / "probe")
    data = ProbeData(probe_dir, corpus_manifest, real_manifest, max_per_split, seed)
    classes = sorted(set(data.labels["train"]))
    cidx = {c: i for i, c in enumerate(classes)}
    y = {k: np.array([cidx.get(v, -1) for v in labels]) for k, labels in data.labels.items()}
    encoder = load_encoder(encoder_dir) if "student" in which else None
    torch.manual_seed(seed)
    random_student = DistilHubert(encoder.config if encoder else demo_config()).eval()
    extractors = {
        "student": lambda clips: student_features(encoder, clips),
        "teacher": teacher_features,
        "random_student": lambda clips: student_features(random_student, clips),
        "logmel": logmel_features,
    }
    result: dict = {"classes": classes, "train_clips": len(y["train"]),
                    "val_clips": len(y["val"]), "features": {}}
    for name in which:
        t0 = time.monotonic()
        feats = data.features(name, extractors[name])
        model = fit_logreg(feats["train"], y["train"], len(classes))
        entry: dict = {"val_heldout_voices_acc": float(
            (predict(model, feats["val"]) == y["val"]).mean())}
        if "real" in feats:
            allowed = sorted({int(v) for v in y["real"] if v >= 0})
            ok = predict(model, feats["real"], allowed) == y["real"]
            ins = np.array(data.in_sentence)
            entry.update(real_acc=float(ok.mean()), real_alone_acc=float(ok[~ins].mean()),
                         real_in_sentence_acc=float(ok[ins].mean()), real_clips=int(len(ok)),
                         real_classes=[classes[i] for i in allowed])
        entry["seconds"] = round(time.monotonic() - t0, 1)
        result["features"][name] = entry
        log.info("probe %s: %s", name, entry)
    return result
