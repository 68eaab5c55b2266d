"""Human-readable output of an evaluation: the printed table and the PNG figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kwsd.evaluation.scoring import MISSED_LABEL, NONE_LABEL, DetCurve, EvalResult


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{100 * value:5.1f}%"


def format_table(result: EvalResult) -> str:
    """Per-keyword recall (alone / in sentence) and false alarms, then the totals."""
    lines = [f"{'keyword':<14} {'alone':>14} {'in sentence':>14} {'false alarms':>13}"]
    for kw, s in result.per_keyword.items():
        alone = f"{s.alone_hits:>3}/{s.alone:<3} {_pct(s.recall_alone)}" if s.alone else "-"
        sent = (f"{s.sentence_hits:>3}/{s.sentence:<3} {_pct(s.recall_sentence)}"
                if s.sentence else "-")
        lines.append(f"{kw:<14} {alone:>14} {sent:>14} {s.false_alarms:>13}")
    lines.append(f"{'all':<14} {_pct(result.recall(False)):>14} {_pct(result.recall(True)):>14} "
                 f"{result.false_alarms:>13}")
    lines.append(
        f"false alarms: {result.false_alarms} in {result.negative_hours:.3f} h of audio outside "
        f"labelled keywords = {result.fa_per_hour:.1f} per hour "
        f"(total audio {result.total_hours:.3f} h; duplicates {result.duplicates}; "
        f"unlabelled true detections {result.unlabelled_hits})")
    return "\n".join(lines)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_det(curves: dict[str, DetCurve], path: str | Path, title: str,
             operating: dict[str, tuple[float, float]] | None = None) -> None:
    """Miss rate against false alarms per hour, one line per keyword; dots at the thresholds
    the bundle uses (`operating`: keyword -> (fa_per_hour, miss_rate) from the real pipeline)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for kw, c in curves.items():
        order = np.argsort(c.fa_per_hour, kind="stable")
        # symlog-friendly: zero false alarms are drawn at the left edge
        ax.step(c.fa_per_hour[order], 100 * c.miss_rate[order], where="post",
                label=f"{kw} (n={c.n_positives})")
        if operating and kw in operating:
            fa, miss = operating[kw]
            ax.plot([fa], [100 * miss], "o", color=ax.lines[-1].get_color())
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("false alarms per hour")
    ax.set_ylabel("miss rate (%)")
    ax.set_ylim(-2, 102)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_confusion(result: EvalResult, labels: list[str], path: str | Path, title: str) -> None:
    """Rows: what was said (labelled keyword, or none); columns: what was detected first."""
    plt = _pyplot()
    rows = [k for k in labels if any(t == k for t, _ in result.confusion)] + [NONE_LABEL]
    cols = [k for k in labels if any(k in (t, d) for t, d in result.confusion)] + [MISSED_LABEL]
    mat = np.array([[result.confusion.get((r, c), 0) for c in cols] for r in rows])
    fig, ax = plt.subplots(figsize=(1.2 + 0.7 * len(cols), 1.0 + 0.5 * len(rows)), dpi=110)
    ax.imshow(mat, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    for i in range(len(rows)):
        for j in range(len(cols)):
            if mat[i, j]:
                ax.text(j, i, str(mat[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if mat[i, j] > mat.max() / 2 else "black")
    ax.set_xlabel("detected")
    ax.set_ylabel("said")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_fa_vs_threshold(curves: dict[str, DetCurve], path: str | Path, title: str,
                         thresholds: dict[str, float] | None = None) -> None:
    """False alarms per hour against the threshold, per keyword (sets without keywords);
    dots at the thresholds in use."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5), dpi=110)
    for kw, c in curves.items():
        (line,) = ax.plot(c.thresholds, c.fa_per_hour, label=kw)
        if thresholds and kw in thresholds:
            i = int(np.clip(np.searchsorted(c.thresholds, thresholds[kw]), 0,
                            len(c.thresholds) - 1))
            ax.plot([c.thresholds[i]], [c.fa_per_hour[i]], "o", color=line.get_color())
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel("threshold")
    ax.set_ylabel("false alarms per hour")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
