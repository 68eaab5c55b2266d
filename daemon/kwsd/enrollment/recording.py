"""Record what a stream's decision sees, once, and replay it for any set of enrolled keywords.

A recording runs audio through the daemon's real `Pipeline` (VAD gate, streaming windows) and
keeps, in order, each window's frame features and each decision reset (speech end). Replaying it
through a fresh `Decision` over enrolled keywords gives the detections the daemon would report
for them (the VAD speech runs that refine a keyword's extent are not replayed). Calibration on
the negative bank and the evaluation use it, so neither re-runs the encoder per candidate.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.config import DecisionConfig
from kwsd.engine.decision import Decision, Detection
from kwsd.enrollment.detector import EnrolledSet

if TYPE_CHECKING:
    from kwsd.engine.pipeline import PipelineSettings
    from kwsd.model.bundle import ModelBundle


@dataclass
class StreamRecord:
    """Windows (start, end samples; frames [N, m, H] float16) and where the decision reset
    (`resets[i]` = number of windows seen before the i-th reset)."""

    starts: np.ndarray
    ends: np.ndarray
    frames: np.ndarray
    resets: np.ndarray
    duration_s: float
    window: int
    hop: int


def record_stream(bundle: ModelBundle, samples: np.ndarray,
                  settings: PipelineSettings | None = None) -> StreamRecord:
    from kwsd.engine.pipeline import Pipeline, PipelineSettings
    from kwsd.enrollment.streaming import EnrolledClassifier

    settings = settings or PipelineSettings()
    starts: list[int] = []
    ends: list[int] = []
    frames: list[np.ndarray] = []
    resets: list[int] = []

    def on_window(start: int, end: int, f: np.ndarray) -> None:
        starts.append(start)
        ends.append(end)
        frames.append(f.astype(np.float16))

    hop = SAMPLE_RATE * settings.hop_ms // 1000 or int(bundle.hop_samples)
    classifier = EnrolledClassifier(bundle, EnrolledSet(), on_window=on_window, hop_samples=hop,
                                    precision=settings.precision_for(bundle))
    pipeline = Pipeline(bundle, "record", settings, classifier=classifier)
    reset = pipeline.decision.reset

    def recording_reset() -> None:
        resets.append(len(starts))
        reset()

    pipeline.decision.reset = recording_reset
    pipeline.run(np.asarray(samples, dtype=np.int16), chunk_samples=1600, start_time=0.0)
    m, h = classifier.frames, classifier.encoder.config.hidden_size
    return StreamRecord(np.asarray(starts, np.int64), np.asarray(ends, np.int64),
                        np.stack(frames) if frames else np.zeros((0, m, h), np.float16),
                        np.asarray(resets, np.int64), len(samples) / SAMPLE_RATE,
                        int(bundle.window_samples), int(classifier.hop))


def save_record(path: Path, rec: StreamRecord) -> None:
    """Write a recording atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, starts=rec.starts, ends=rec.ends, frames=rec.frames, resets=rec.resets,
             meta=np.array([rec.duration_s, rec.window, rec.hop], dtype=np.float64))
    os.replace(tmp, path)


def load_record(path: Path) -> StreamRecord:
    with np.load(path, allow_pickle=False) as z:
        d, w, h = z["meta"]
        return StreamRecord(z["starts"], z["ends"], z["frames"], z["resets"], float(d), int(w),
                            int(h))


def recorded_files(bundle: ModelBundle, paths: dict[str, Path], cache: Path,
                   label: str = "files") -> dict[str, StreamRecord]:
    """Recordings of many audio files (name -> path), each cached in `cache` under its name
    (the caller keys `cache` by the encoder). Unreadable files are left out with a message, as
    the evaluation sets list broken files on purpose; progress goes to stderr."""
    from kwsd.audio.audiofile import AudioFileError, read_audio_16k

    out, t0 = {}, time.perf_counter()
    for i, (name, path) in enumerate(paths.items()):
        f = Path(cache) / (name.replace("/", "__") + ".npz")
        if f.is_file():
            out[name] = load_record(f)
            continue
        try:
            samples = read_audio_16k(path)
        except (AudioFileError, ValueError) as exc:
            print(f"skipped unreadable: {exc}", file=sys.stderr)
            continue
        out[name] = record_stream(bundle, samples)
        save_record(f, out[name])
        if i % 100 == 0:
            print(f"  {label}: {i}/{len(paths)} files recorded "
                  f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return out


def window_scores(record: StreamRecord, enrolled: EnrolledSet,
                  batch: int = 512) -> np.ndarray:
    """[N, K] enrolled scores of every recorded window."""
    out = [enrolled.scores(record.frames[i:i + batch].astype(np.float32))
           for i in range(0, len(record.frames), batch)]
    return np.concatenate(out) if out else np.zeros((0, len(enrolled.names)), np.float32)


def replay(record: StreamRecord, names: list[str], thresholds: dict[str, float],
           scores: np.ndarray, config: DecisionConfig | None = None,
           keyword_samples: dict[str, int] | None = None) -> list[Detection]:
    """The detections the decision makes over recorded windows with these scores [N, K].
    `config`: the model's decision settings (`model_decision`), as in the daemon."""
    return _run_decision(record, names, thresholds, scores, config, keyword_samples)[0]


def decision_scores(record: StreamRecord, names: list[str], scores: np.ndarray,
                    config: DecisionConfig | None = None) -> np.ndarray:
    """[N, K] the scores the decision compares with the thresholds (after its smoothing), for
    calibrating thresholds on what the daemon will compare."""
    never = {n: 1.0 + 1e-6 for n in names}   # no event: nothing disarms or holds
    return _run_decision(record, names, never, scores, config, None)[1]


def _run_decision(record: StreamRecord, names: list[str], thresholds: dict[str, float],
                  scores: np.ndarray, config: DecisionConfig | None,
                  keyword_samples: dict[str, int] | None
                  ) -> tuple[list[Detection], np.ndarray]:
    decision = Decision(names, names, thresholds, config or DecisionConfig(), record.window,
                        record.hop, keyword_samples=keyword_samples)
    out = []
    seen = np.zeros((len(record.starts), len(names)), dtype=np.float32)
    resets = list(record.resets)
    r = 0
    for i in range(len(record.starts)):
        while r < len(resets) and resets[r] <= i:
            decision.reset()
            r += 1
        det = decision.update(int(record.starts[i]), int(record.ends[i]), scores[i])
        seen[i] = decision.last_scores
        if det is not None:
            out.append(det)
    return out, seen
