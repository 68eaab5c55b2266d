"""Run recordings through the daemon's own path and keep what scoring needs.

Each file goes WAV (any rate) -> kwsd.audio resampling -> `Pipeline` (VAD gate, streaming
classifier, decision) in 100 ms chunks, exactly as a live stream. Besides the detections, the
decision score of every keyword at every hop is recorded (the smoothed posterior the decision
compares with the threshold), so DET curves and threshold calibration cover all thresholds from
this one pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kwsd.audio.audiofile import AudioFileError, read_audio_16k
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.evaluation.scoring import Detection, ScoreTrace
from kwsd.events import EventKind

if TYPE_CHECKING:
    from kwsd.engine.pipeline import PipelineSettings
    from kwsd.model.bundle import ModelBundle

log = logging.getLogger(__name__)

CHUNK_SAMPLES = 1600  # 100 ms, a typical capture block


@dataclass
class FileResult:
    file: str
    duration_s: float
    detections: list[Detection]
    trace: ScoreTrace
    rtf: float = 0.0
    trace_mismatches: int = 0


@dataclass
class RunResult:
    files: list[FileResult] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def durations(self) -> dict[str, float]:
        return {f.file: f.duration_s for f in self.files}

    @property
    def detections(self) -> list[Detection]:
        return [d for f in self.files for d in f.detections]

    @property
    def traces(self) -> dict[str, ScoreTrace]:
        return {f.file: f.trace for f in self.files}


def _record_scores(pipeline: Any, rows: list[tuple[int, int, np.ndarray]]) -> None:
    """Wrap the pipeline's decision so every update also records its smoothed keyword scores.

    The decision keeps the posteriors it averaged in `_history` and the keyword columns in
    `_index`; reading them after `update` gives exactly the scores it compared with the
    thresholds. A decision that publishes `last_scores` is read directly.
    """
    decision = pipeline.decision
    update = decision.update

    def recording_update(start_sample: int, end_sample: int, probs: np.ndarray):
        det = update(start_sample, end_sample, probs)
        scores = getattr(decision, "last_scores", None)
        if scores is None:
            history = [p for _, p in decision._history]
            scores = np.mean(history, axis=0)[decision._index]
        rows.append((int(start_sample), int(end_sample), np.asarray(scores, dtype=np.float32)))
        return det

    decision.update = recording_update


def run_samples(bundle: ModelBundle, samples: np.ndarray, file: str,
                settings: PipelineSettings | None = None,
                make_pipeline: Callable[..., Any] | None = None) -> FileResult:
    """One 16 kHz int16 recording through a fresh Pipeline (fresh state, like a new stream)."""
    from kwsd.engine.pipeline import Pipeline

    pipeline = (make_pipeline or Pipeline)(bundle, f"eval:{file}", settings)
    rows: list[tuple[int, int, np.ndarray]] = []
    _record_scores(pipeline, rows)
    events = pipeline.run(samples, chunk_samples=CHUNK_SAMPLES, start_time=0.0)
    dets = [Detection(file=file, keyword=e.keyword, confidence=float(e.confidence),
                      start_s=e.start_sample / SAMPLE_RATE, end_s=e.end_sample / SAMPLE_RATE)
            for e in events if e.kind == EventKind.DETECTION]
    n_kw = len(pipeline.decision.keywords)
    # The recorded scores must be what the decision compared: check at every detection.
    by_end = {r[1]: r[2] for r in rows}
    mismatches = 0
    for e in events:
        if e.kind != EventKind.DETECTION:
            continue
        rec = by_end.get(int(e.extra.get("window_end", -1)))
        k = pipeline.decision.keywords.index(e.keyword)
        if rec is None or abs(float(rec[k]) - float(e.confidence)) > 1e-4:
            mismatches += 1
    if mismatches:
        log.error("%s: %d detection(s) whose confidence differs from the recorded score: the "
                  "DET curves and calibration would be wrong (decision internals changed?)",
                  file, mismatches)
    trace = ScoreTrace(
        file=file,
        start_s=np.array([r[0] for r in rows], dtype=np.float64) / SAMPLE_RATE,
        end_s=np.array([r[1] for r in rows], dtype=np.float64) / SAMPLE_RATE,
        scores=(np.stack([r[2] for r in rows]) if rows else np.zeros((0, n_kw), np.float32)))
    return FileResult(file=file, duration_s=len(samples) / SAMPLE_RATE, detections=dets,
                      trace=trace, rtf=pipeline.rtf, trace_mismatches=mismatches)


def _one_file(bundle: ModelBundle, name: str, path: Path,
              settings: PipelineSettings | None) -> FileResult | str:
    """A FileResult, or the error message of an unreadable file."""
    try:
        samples = read_audio_16k(path)
    except (AudioFileError, ValueError) as exc:
        return str(exc) if str(path) in str(exc) else f"{path}: {exc}"
    return run_samples(bundle, samples, name, settings)


_WORKER: dict[str, Any] = {}


def _worker_init(bundle: ModelBundle, settings: PipelineSettings | None) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["bundle"], _WORKER["settings"] = bundle, settings


def _worker_run(job: tuple[str, Path]) -> tuple[str, FileResult | str]:
    return job[0], _one_file(_WORKER["bundle"], job[0], job[1], _WORKER["settings"])


def run_files(bundle: ModelBundle, files: Iterable[tuple[str, Path]],
              settings: PipelineSettings | None = None,
              progress: bool = True, on_result: Callable[[FileResult], None] | None = None,
              desc: str = "eval", jobs: int = 1) -> RunResult:
    """Every (name, path) through the pipeline; unreadable files are reported and skipped.

    `jobs` > 1 runs files in forked worker processes (each file is its own stream, so the
    results are the same); results are collected in manifest order.
    """
    from tqdm import tqdm

    files = list(files)
    out = RunResult()
    bar = tqdm(total=len(files), desc=desc, unit="file", disable=not progress,
               dynamic_ncols=True, leave=False)
    if jobs > 1 and len(files) > 1:
        import multiprocessing as mp

        # fork: workers share the loaded model's memory instead of unpickling a copy
        with mp.get_context("fork").Pool(jobs, _worker_init, (bundle, settings)) as pool:
            results = {}
            for name, res in pool.imap_unordered(_worker_run, files, chunksize=1):
                results[name] = res
                bar.update(1)
        ordered = [(name, results[name]) for name, _ in files]
    else:
        ordered = ((name, _one_file(bundle, name, path, settings)) for name, path in files)
    for name, res in ordered:
        if isinstance(res, str):
            out.errors[name] = res
            log.error("skipping %s", res)
        else:
            out.files.append(res)
            if on_result is not None:
                on_result(res)
        if jobs <= 1 or len(files) <= 1:
            bar.update(1)
    bar.close()
    return out
