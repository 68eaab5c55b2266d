#!/usr/bin/env python3
"""Draw the README's pictures from real output: the pipeline, and a detection timeline.

The timeline runs a recording (default: the demo model's demo.wav) through the daemon's own
Pipeline and plots the waveform, the VAD gate, every keyword's posterior (ungated, for context)
and the events the pipeline reported, against the recording's truth when a CSV is given.

    .venv/bin/python scripts/readme-figures.py [--model models/demo] [--wav W --truth CSV]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from kwsd.audio.audiofile import read_audio_16k  # noqa: E402
from kwsd.audio.chunk import SAMPLE_RATE  # noqa: E402
from kwsd.config import DecisionConfig
from kwsd.engine.pipeline import Pipeline, PipelineSettings  # noqa: E402
from kwsd.events import EventKind  # noqa: E402
from kwsd.model.bundle import load_bundle  # noqa: E402
from kwsd.model.streaming import StreamingClassifier  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

STAGES = [
    ("audio source", "microphone · WAV\nstdin · gRPC Detect"),
    ("16 kHz mono", "soxr resampler\n(one place)"),
    ("VAD gate", "webrtcvad\npre-roll, hang-over"),
    ("encoder", "DistilHuBERT\n1 s window\n200 ms hop"),
    ("keyword head", "layer mix, pooling\nposteriors"),
    ("decision", "thresholds\nrefractory, 1 event"),
    ("event bus", "bounded queue\nper subscriber"),
    ("gRPC", "Subscribe · Detect\nstatus · health"),
]


def draw_pipeline(out: Path) -> None:
    fig, ax = plt.subplots(figsize=(13, 2.2))
    ax.set_xlim(0, len(STAGES) * 1.6)
    ax.set_ylim(0, 1.6)
    ax.axis("off")
    for i, (title, body) in enumerate(STAGES):
        x = i * 1.6 + 0.05
        gated = 3 <= i <= 4
        ax.add_patch(FancyBboxPatch((x, 0.2), 1.3, 1.2, boxstyle="round,pad=0.02",
                                    fc="#fde2c4" if gated else "#dbe9f6", ec="#335"))
        ax.text(x + 0.65, 1.12, title, ha="center", va="center", weight="bold", fontsize=10)
        ax.text(x + 0.65, 0.62, body, ha="center", va="center", fontsize=8)
        if i < len(STAGES) - 1:
            ax.annotate("", xy=(x + 1.55, 0.8), xytext=(x + 1.32, 0.8),
                        arrowprops={"arrowstyle": "->", "color": "#335"})
    ax.text(0.05, 0.02, "orange: runs only while the VAD gate is open (someone speaks)",
            fontsize=8, color="#a0522d")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def read_truth(path: Path | None) -> list[tuple[str, float, float]]:
    if path is None or not path.exists():
        return []
    with path.open() as f:
        return [(r["keyword"], float(r["kw_start_s"]), float(r["kw_end_s"]))
                for r in csv.DictReader(f) if r.get("keyword")]


def draw_timeline(model: Path, wav: Path, truth_csv: Path | None, out: Path,
                  sensitivity: str) -> list:
    bundle = load_bundle(model)
    samples = read_audio_16k(wav)
    settings = PipelineSettings(decision=DecisionConfig(sensitivity=sensitivity))
    events = Pipeline(bundle, "demo", settings).run(samples)
    posts = StreamingClassifier(bundle).accept(samples, 0)
    t = np.arange(len(samples)) / SAMPLE_RATE
    fig, (ax_w, ax_p) = plt.subplots(2, 1, figsize=(13, 5), sharex=True,
                                     gridspec_kw={"height_ratios": [1, 1.4]})
    ax_w.plot(t, samples / 32768.0, lw=0.4, color="#555")
    begin = None
    for ev in events:
        if ev.kind == EventKind.SPEECH_BEGIN:
            begin = ev.start_s
        elif ev.kind == EventKind.SPEECH_END and begin is not None:
            ax_w.axvspan(begin, ev.start_s, color="#fde2c4", zorder=0)
            begin = None
    for kw, start, end in read_truth(truth_csv):
        ax_w.axvspan(start, end, ymin=0.9, ymax=1.0, color="#2a7", alpha=0.8)
        ax_w.text((start + end) / 2, 1.05, kw, ha="center", fontsize=8, color="#2a7")
    ax_w.set_ylabel("audio")
    ax_w.set_ylim(-1, 1.2)
    ax_w.set_title(f"{wav.name}: VAD gate open (orange), truth (green), detections (red), "
                   f"sensitivity {sensitivity or 'default'}")
    colours = plt.get_cmap("tab10")
    ends = np.array([p.end_sample for p in posts]) / SAMPLE_RATE
    probs = np.stack([p.probs for p in posts]) if posts else np.zeros((0, len(bundle.labels)))
    for k, kw in enumerate(bundle.keywords):
        idx = bundle.labels.index(kw)
        if probs.size and probs[:, idx].max() > 0.2:
            ax_p.plot(ends, probs[:, idx], lw=1, color=colours(k % 10), label=kw)
    detections = [e for e in events if e.kind == EventKind.DETECTION]
    for ev in detections:
        ax_w.axvspan(ev.start_s, ev.end_s, ymin=0.0, ymax=0.1, color="#d22")
        ax_p.axvline(ev.end_s, color="#d22", lw=0.8, ls="--")
        ax_p.text(ev.end_s, 1.02, f"{ev.keyword} {ev.confidence:.2f}", rotation=0,
                  fontsize=7, color="#d22", ha="center")
    ax_p.set_ylim(0, 1.12)
    ax_p.set_ylabel("posterior (window end)")
    ax_p.set_xlabel("seconds")
    ax_p.legend(loc="upper left", fontsize=7, ncol=5)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return detections


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/demo"))
    parser.add_argument("--wav", type=Path, default=None)
    parser.add_argument("--truth", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--sensitivity", default="high", choices=["", "low", "medium", "high"],
                        help="as `kwsd demo` (high)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    draw_pipeline(args.out / "pipeline.png")
    wav = args.wav or args.model / "demo.wav"
    truth = args.truth or (args.model / "demo.csv" if args.wav is None else None)
    detections = draw_timeline(args.model, wav, truth, args.out / "timeline.png",
                               args.sensitivity)
    for ev in detections:
        print(f"{ev.start_s:7.2f}-{ev.end_s:6.2f} s  {ev.keyword:<12} {ev.confidence:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
