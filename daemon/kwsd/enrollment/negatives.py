"""Real keyword-free speech that ships with kwsd, and thresholds calibrated on it.

The bank (models/negatives, ~9 min of real speech; sources and licences in its README) is run
once per encoder through the daemon's stream path and its window features are cached (keyed by
the encoder's hash and each bank file's content) in the user's cache directory. A keyword's
threshold is set for a false-alarm target: its decision peaks on the bank (one per refractory
span) are counted, and since a few minutes of speech cannot show rates like 1 per hour directly,
the tail of the peak scores is fitted with an exponential (peaks over threshold) and
extrapolated to the target rate.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kwsd.audio.audiofile import read_audio_16k
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.enrollment.features import encoder_id
from kwsd.enrollment.recording import StreamRecord, load_record, record_stream, save_record
from kwsd.evaluation.tail import MIN_PEAKS, TAIL_PEAKS, tail_threshold

if TYPE_CHECKING:
    from kwsd.model.bundle import ModelBundle

log = logging.getLogger(__name__)
REFRACTORY_S = 1.0


def default_bank_path() -> Path:
    """$KWSD_NEGATIVES_DIR, else models/negatives in the source tree, else
    <prefix>/share/kwsd/models/negatives."""
    if os.environ.get("KWSD_NEGATIVES_DIR"):
        return Path(os.environ["KWSD_NEGATIVES_DIR"])
    here = Path(__file__).resolve()
    for candidate in (here.parents[3] / "models" / "negatives",
                      Path(sys.prefix) / "share" / "kwsd" / "models" / "negatives"):
        if candidate.is_dir():
            return candidate
    return here.parents[3] / "models" / "negatives"


def bank_source_files(bank: Path | None = None) -> set[str]:
    """The real-train files (paths as its manifests name them) the bank's audio was cut from
    (its sources.csv): measurements of false alarms must not count them, thresholds are set
    on them."""
    with open((bank or default_bank_path()) / "sources.csv", newline="", encoding="utf-8") as f:
        return {row["file"] for row in csv.DictReader(f)}


def cache_dir() -> Path:
    base = os.environ.get("KWSD_CACHE_DIR")
    if base:
        return Path(base)
    if os.environ.get("CACHE_DIRECTORY"):          # systemd CacheDirectory=kwsd
        return Path(os.environ["CACHE_DIRECTORY"].split(":")[0])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kwsd"


def _content_hash(path: Path) -> str:
    """Short hash of a bank file's bytes: the cache belongs to this audio, not to its name (two
    banks may both have a `librispeech.ogg`)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()[:12]


def bank_records(bundle: ModelBundle, bank: Path | None = None,
                 settings=None) -> list[StreamRecord]:
    """The bank's streams as recorded window features for this bundle's encoder (cached)."""
    bank = Path(bank or default_bank_path())
    files = sorted(bank.glob("*.ogg")) + sorted(bank.glob("*.flac")) + sorted(bank.glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"{bank}: no negative speech (*.ogg, *.flac, *.wav) found")
    out = []
    key = encoder_id(bundle).split(":")[-1]
    for f in files:
        cached = (cache_dir() / "negatives" / key
                  / f"{f.stem}-{_content_hash(f)}-{bundle.hop_samples}.npz")
        if cached.is_file():
            try:
                out.append(load_record(cached))
                continue
            except (OSError, ValueError, KeyError):
                log.warning("%s: unreadable cache, recomputing", cached)
        rec = record_stream(bundle, read_audio_16k(f), settings)
        try:
            save_record(cached, rec)
        except OSError as exc:
            log.warning("cannot cache negative features in %s: %s", cached, exc)
        out.append(rec)
    return out


def peaks(times: np.ndarray, scores: np.ndarray, refractory_s: float = REFRACTORY_S) -> np.ndarray:
    """Greedy non-maximum suppression: the highest score, then the next one at least
    `refractory_s` away, ... (what the decision's refractory span lets through)."""
    order = np.argsort(-scores)
    taken: list[int] = []
    for i in order:
        if all(abs(times[i] - times[j]) >= refractory_s for j in taken):
            taken.append(int(i))
        if len(taken) >= 4 * TAIL_PEAKS:
            break
    return np.sort(scores[taken])[::-1]


def threshold_for(peak_scores: np.ndarray, hours: float, target_per_h: float) -> dict:
    """Threshold at which the expected false-alarm rate on speech like the bank is the target."""
    peak_scores = np.sort(np.asarray(peak_scores, dtype=np.float64))[::-1]
    allowed = target_per_h * hours          # false alarms the target allows on the bank
    k = min(TAIL_PEAKS, len(peak_scores))
    if k < MIN_PEAKS:
        return {"threshold": 0.5, "method": "too few negative peaks", "peaks": int(k)}
    if allowed >= 1:
        n = int(np.floor(allowed))
        return {"threshold": float(peak_scores[min(n, len(peak_scores) - 1)]) + 1e-4,
                "method": "empirical", "peaks": int(k)}
    if allowed <= 0:
        return {"threshold": 0.999, "method": "no false alarm allowed", "peaks": int(k)}
    fit = tail_threshold(peak_scores, allowed, TAIL_PEAKS)
    return {"threshold": float(min(fit.threshold, 0.999)), "method": "exponential tail",
            "peaks": fit.peaks, "tail_start": fit.start, "tail_scale": fit.scale,
            "bank_max": float(peak_scores[0])}


def calibrate(scores_per_record: list[np.ndarray], records: list[StreamRecord],
              target_per_h: float) -> dict:
    """Threshold for one keyword from its window scores on each bank stream."""
    all_peaks = np.concatenate([peaks(r.ends / SAMPLE_RATE, s) for r, s in
                                zip(records, scores_per_record, strict=True) if len(s)])
    hours = sum(r.duration_s for r in records) / 3600.0
    out = threshold_for(all_peaks, hours, target_per_h)
    out.update(target_fa_per_h=target_per_h, bank_hours=round(hours, 4))
    return out
