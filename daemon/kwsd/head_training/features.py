"""Window features computed once through the streaming path, cached on disk, resumable.

For a frozen encoder the expensive part of training is the encoder, and it never changes: the
hidden states of every training window are computed once (float16, a memory-mapped file) and
the head trains on them for as many epochs as it likes. The states come from the model core's
streaming code: `encode_windows` (batched, equal to the live path when the conv cache is exact
or off, which the model core tests) or `StreamingClassifier.window_states` (the live path
itself, needed when the conv cache is an approximation).

The cache is keyed by everything that changes its content; an interrupted run continues from
the last completed block of clips. For fine-tuning the cache holds the window audio instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kwsd.audio.audiofile import AudioFileError, read_audio_16k
from kwsd.head_training.dataset import Clip
from kwsd.head_training.examples import WindowPolicy, make_clip_windows

log = logging.getLogger(__name__)

BLOCK = 64  # clips per progress checkpoint
MAX_KEEP_SHARE = 0.55  # at most this share of a --max-windows budget goes to keyword windows


@dataclass
class WindowSet:
    """Rows of windows: `x` is a memmap [N, *shape] (float16 states or int16 audio)."""

    x: np.ndarray
    labels: np.ndarray  # int64 label index
    clip: np.ndarray  # index into the clip list
    copy: np.ndarray
    coverage: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def cache_key(parts: dict) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_digest(path: Path) -> str:
    """Content hash of a weights file (the cache must not outlive a change of encoder)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class StatesFn:
    """Hidden states of chosen windows of one padded clip, through the streaming code path."""

    def __init__(self, bundle, use_stream: bool | None = None) -> None:
        from kwsd.model.streaming import StreamingClassifier

        self.bundle = bundle
        self.encoder_id = ""
        self.classifier = StreamingClassifier(bundle)
        exact = self.classifier.cache_exact or not self.classifier.cache_conv
        self.use_stream = (not exact) if use_stream is None else use_stream

    def __call__(self, audio: np.ndarray, starts: Sequence[int]) -> torch.Tensor:
        from kwsd.model.streaming import encode_windows

        w = self.bundle.window_samples
        if not len(starts):
            return torch.zeros(0)
        if self.use_stream:
            # The live path from the clip's first window start (the hop grid's phase).
            first = int(starts[0])
            got, states = self.classifier.window_states(audio[first:], first)
            pos = {int(s): i for i, s in enumerate(got)}
            return states[[pos[int(s)] for s in starts]]
        wins = np.stack([audio[s:s + w] for s in starts]).astype(np.float32) / 32768.0
        return encode_windows(self.bundle, torch.from_numpy(wins))


def build_windows(root: Path, clips: list[Clip], label_index: dict[str, int],
                  policy: WindowPolicy, copies: int, seed: int,
                  row_fn: Callable[[np.ndarray, list[int]], np.ndarray],
                  row_shape: tuple[int, ...], dtype: np.dtype, augmenter=None,
                  progress: bool = True, desc: str = "features") -> WindowSet:
    """Compute rows for `copies` augmented passes over `clips` into `root` (resumable).

    Copy c of a clip always uses the same random stream, seeded by seed, c, the clip's audio and
    which listing of that file it is (`train.repeat_clips` lists some files again): a resumed or
    repeated run produces the same rows, and a clip list with clips added or left out gives
    every other clip the rows it had, so a data change is not also a new augmentation draw.
    """
    from tqdm import tqdm

    root.mkdir(parents=True, exist_ok=True)
    data_path, prog_path = root / "rows.bin", root / "progress.json"
    row_bytes = int(np.prod(row_shape)) * np.dtype(dtype).itemsize
    prog = {"done": 0, "rows": 0, "complete": False}
    meta: dict[str, list] = {"labels": [], "clip": [], "copy": [], "coverage": []}
    if prog_path.is_file() and (root / "meta.npz").is_file():
        prog = json.loads(prog_path.read_text())
        with np.load(root / "meta.npz") as z:
            meta = {k: list(z[k][: prog["rows"]]) for k in meta}
    total = copies * len(clips)
    listing = _listing_numbers(clips)
    if not prog["complete"]:
        with open(data_path, "ab") as f:
            f.truncate(prog["rows"] * row_bytes)
        bar = tqdm(total=total, initial=prog["done"], desc=desc, unit="clip",
                   disable=not progress, dynamic_ncols=True, leave=False)
        failed = 0
        with open(data_path, "ab") as f:
            for job in range(prog["done"], total):
                c, i = divmod(job, len(clips))
                clip = clips[i]
                try:
                    samples = read_audio_16k(clip.path)
                except (AudioFileError, ValueError) as exc:
                    failed += 1
                    if failed <= 5:
                        log.warning("skipping clip: %s", exc)
                    bar.update(1)
                    continue
                rng = np.random.default_rng([seed, c, _audio_seed(samples), listing[i]])
                cw = make_clip_windows(clip, samples, policy, rng, augmenter)
                if cw.windows:
                    rows = row_fn(cw.samples, [w.start for w in cw.windows])
                    f.write(np.ascontiguousarray(rows, dtype=dtype).tobytes())
                    for w in cw.windows:
                        meta["labels"].append(label_index[w.label])
                        meta["clip"].append(i)
                        meta["copy"].append(c)
                        meta["coverage"].append(w.coverage)
                bar.update(1)
                if (job + 1) % BLOCK == 0 or job + 1 == total:
                    f.flush()
                    os.fsync(f.fileno())
                    _save_meta(root, meta)
                    prog = {"done": job + 1, "rows": len(meta["labels"]),
                            "complete": job + 1 == total}
                    _atomic_json(prog_path, prog)
        bar.close()
        if failed:
            log.warning("%d of %d clip reads failed", failed, total)
    n = len(meta["labels"])
    x = (np.memmap(data_path, dtype=dtype, mode="r", shape=(n, *row_shape)) if n
         else np.zeros((0, *row_shape), dtype=dtype))
    return WindowSet(x=x, labels=np.asarray(meta["labels"], dtype=np.int64),
                     clip=np.asarray(meta["clip"], dtype=np.int64),
                     copy=np.asarray(meta["copy"], dtype=np.int64),
                     coverage=np.asarray(meta["coverage"], dtype=np.float32))


def _listing_numbers(clips: list[Clip]) -> list[int]:
    """For each clip, how many earlier entries of the list are the same file."""
    seen: Counter = Counter()
    out = []
    for clip in clips:
        out.append(seen[clip.path])
        seen[clip.path] += 1
    return out


def _audio_seed(samples: np.ndarray) -> int:
    """A seed from the audio itself: the same wherever the file lies and whatever is beside it."""
    return int.from_bytes(hashlib.blake2b(samples.tobytes(), digest_size=8).digest(), "little")


def _save_meta(root: Path, meta: dict[str, list]) -> None:
    tmp = root / "meta.tmp.npz"
    np.savez(tmp, labels=np.asarray(meta["labels"], np.int64),
             clip=np.asarray(meta["clip"], np.int64), copy=np.asarray(meta["copy"], np.int64),
             coverage=np.asarray(meta["coverage"], np.float32))
    os.replace(tmp, root / "meta.npz")


def _atomic_json(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def with_top_recomputed(states: torch.Tensor, top_layer: torch.nn.Module) -> torch.Tensor:
    """Cached hidden states [B, layers + 1, frames, H] with the last one recomputed from the one
    before it by `top_layer` (the encoder's last layer): exactly the encoder's own output while
    that layer is unchanged, and the fine-tuned layer's once `--finetune top` has trained it."""
    return torch.cat([states[:, :-1], top_layer(states[:, -2]).unsqueeze(1)], dim=1)


def choose_rows(ws: WindowSet, max_rows: int | None, keep: set[int], seed: int) -> np.ndarray:
    """Rows whose label is in `keep` (the keywords; all of them if they fit in MAX_KEEP_SHARE of
    the budget), plus a random sample of the others up to `max_rows` in all; sorted, so memmap
    reads stay sequential."""
    n = len(ws)
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    must = np.flatnonzero(np.isin(ws.labels, sorted(keep)))
    rng = np.random.default_rng(seed)
    if len(must) > max_rows * MAX_KEEP_SHARE:  # keep room for the negatives
        must = np.sort(rng.permutation(must)[: int(max_rows * MAX_KEEP_SHARE)])
    rest = np.setdiff1d(np.arange(n), np.flatnonzero(np.isin(ws.labels, sorted(keep))))
    room = max(0, max_rows - len(must))
    return np.sort(np.concatenate([must, rng.permutation(rest)[:room]]))


_ENC: dict = {}


def _encode_part(args: tuple[int, np.ndarray, str, int]) -> int:
    """Worker: encode one contiguous part of the rows into its own resumable folder."""
    part, rows, root, batch = args
    torch.set_num_threads(1)
    encode_window_audio(_ENC["audio"], _ENC["bundle"], Path(root) / f"part{part}", batch,
                        progress=False, rows=rows)
    return part


class CacheSpaceError(RuntimeError):
    """The disk cannot hold a cache about to be written: said before the encoding starts, not
    as ENOSPC half an hour into it (a 9 GB states cache filled a build machine's disk)."""


def check_free_space(root: Path, need_bytes: int) -> None:
    """Refuse to write `need_bytes` more under `root` when its disk has less free."""
    free = shutil.disk_usage(root).free
    if need_bytes > free:
        raise CacheSpaceError(
            f"{root}: the hidden-state cache needs {need_bytes / 1e9:.1f} GB more and its disk "
            f"has {free / 1e9:.1f} GB free; delete old caches in {root.parent} or give "
            "--workdir on a larger disk")


def encode_window_audio(audio: WindowSet, bundle, root: Path, batch: int = 32,
                        progress: bool = True, rows: np.ndarray | None = None,
                        jobs: int = 1) -> WindowSet:
    """Hidden states of cached window audio, in batches, resumable (float16 memmap).

    Only for encoders whose streaming path equals the plain window computation (per-frame conv
    norm, or the conv cache off): `encode_windows` is then the live computation, batched.
    """
    from tqdm import tqdm

    from kwsd.model.streaming import encode_windows

    cfg = bundle.encoder.config
    shape = (cfg.num_hidden_layers + 1, cfg.num_frames(bundle.window_samples), cfg.hidden_size)
    row_bytes = int(np.prod(shape)) * 2
    root.mkdir(parents=True, exist_ok=True)
    data_path, prog_path = root / "states.bin", root / "progress.json"
    rows = np.arange(len(audio)) if rows is None else np.asarray(rows)
    n = len(rows)
    if jobs > 1 and n > jobs * batch and not (root / "states.bin").is_file():
        # forked workers (they share the loaded model), one contiguous part each, then joined
        import multiprocessing as mp

        root.mkdir(parents=True, exist_ok=True)
        parts = np.array_split(rows, jobs)
        written = sum(p.stat().st_size for p in root.glob("part*/states.bin"))
        # the parts, then part 0 growing while the last part still exists (see the join below)
        check_free_space(root, (n + len(parts[-1])) * row_bytes - written)
        _ENC.update(audio=audio, bundle=bundle)
        log.info("encoding %d windows in %d processes", n, jobs)
        with mp.get_context("fork").Pool(jobs) as pool:
            list(pool.imap_unordered(_encode_part, [(k, p, str(root), batch)
                                                    for k, p in enumerate(parts)]))
        # Join by appending the later parts to part 0's file, each part deleted once copied: the
        # disk holds the states ~1.5 times at the peak instead of twice (a 20 GB cache filled
        # the build machine's disk). An interruption stays safe: part 0 resumes by truncating
        # its file to the rows its progress counts, and a deleted part is encoded again.
        joined = root / "part0" / "states.bin"
        with open(joined, "ab") as f:
            for k in range(1, jobs):
                part = root / f"part{k}" / "states.bin"
                with open(part, "rb") as src:
                    while block := src.read(1 << 24):
                        f.write(block)
                f.flush()
                os.fsync(f.fileno())
                shutil.rmtree(part.parent)
        os.replace(joined, root / "states.bin")
        _atomic_json(root / "progress.json", {"done": n})
        shutil.rmtree(root / "part0")
    done = json.loads(prog_path.read_text())["done"] if prog_path.is_file() else 0
    if data_path.is_file() and data_path.stat().st_size > done * row_bytes:
        os.truncate(data_path, done * row_bytes)   # rows written after the last progress mark
    if done < n:
        check_free_space(root, (n - done) * row_bytes)
        bar = tqdm(total=n, initial=done, desc="encode windows", unit="win",
                   disable=not progress, dynamic_ncols=True, leave=False)
        with open(data_path, "ab") as f:
            for i in range(done, n, batch):
                wins = torch.from_numpy(np.asarray(audio.x[rows[i:i + batch]],
                                                   dtype=np.float32) / 32768.0)
                states = encode_windows(bundle, wins)
                f.write(states.to(torch.float16).numpy().tobytes())
                bar.update(len(wins))
                if (i // batch) % 20 == 19 or i + batch >= n:
                    f.flush()
                    os.fsync(f.fileno())
                    _atomic_json(prog_path, {"done": min(n, i + batch)})
        bar.close()
    x = (np.memmap(data_path, dtype=np.float16, mode="r", shape=(n, *shape)) if n
         else np.zeros((0, *shape), dtype=np.float16))
    return WindowSet(x=x, labels=audio.labels[rows], clip=audio.clip[rows],
                     copy=audio.copy[rows], coverage=audio.coverage[rows])
