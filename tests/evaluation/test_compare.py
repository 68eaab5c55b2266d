"""`kwsd compare`: a candidate's hits at the baseline's false alarms, keyword by keyword."""

import json

import pytest
from kwsd.cli import main
from kwsd.evaluation.compare import CompareError, compare_at_baseline_false_alarms, read_summary


def _summary(model, hits_fa_at_own, det, n_alone=3, n_sentence=1):
    """`hits_fa_at_own`: keyword -> (hits, false alarms) at the model's own thresholds;
    `det`: keyword -> [(threshold, hits, false alarms), ...]."""
    n = n_alone + n_sentence
    keywords = {kw: {"n_alone": n_alone, "recall_alone": min(h, n_alone) / n_alone,
                     "n_in_sentence": n_sentence,
                     "recall_in_sentence": max(0, h - n_alone) / n_sentence,
                     "false_alarms": fa} for kw, (h, fa) in hits_fa_at_own.items()}
    return {"model": model, "keywords": keywords,
            "det": {kw: {"thresholds": [t for t, _, _ in pts],
                         "miss_rate": [1 - h / n for _, h, _ in pts],
                         "fa_per_hour": [fa / 0.5 for _, _, fa in pts],
                         "false_alarms": [fa for _, _, fa in pts], "n_positives": n}
                    for kw, pts in det.items()}}


def _write(tmp_path, name, summary):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


# the baseline: its own curve reaches 3 alpha hits at the one false alarm of its thresholds
BASE = _summary("A", {"alpha": (2, 1), "beta": (4, 0)},
                {"alpha": [(0.5, 3, 4), (0.85, 3, 1), (0.9, 2, 1)],
                 "beta": [(0.5, 4, 2), (0.9, 4, 0)]})
# the candidate: more hits for alpha at one false alarm; for beta none at no false alarm
CAND = _summary("B", {"alpha": (4, 5), "beta": (4, 3)},
                {"alpha": [(0.5, 4, 5), (0.8, 3, 1), (0.95, 1, 0)],
                 "beta": [(0.5, 4, 3), (0.99, 1, 1)]})


def test_the_candidate_is_read_at_the_baselines_false_alarms(tmp_path):
    base = read_summary(_write(tmp_path, "a", BASE))
    cand = read_summary(_write(tmp_path, "b", CAND) / "summary.json")
    alpha, beta = compare_at_baseline_false_alarms(base, cand)
    assert (alpha.baseline_hits, alpha.baseline_false_alarms) == (2, 1)
    assert (alpha.baseline_curve_hits, beta.baseline_curve_hits) == (3, 4)
    assert (alpha.candidate_hits, alpha.candidate_false_alarms,
            alpha.candidate_threshold) == (3, 1, 0.8)
    assert (beta.baseline_hits, beta.candidate_hits, beta.candidate_threshold) == (4, 0, None)
    (only,) = compare_at_baseline_false_alarms(base, cand, ["beta"])
    assert only.keyword == "beta"


def test_the_cli_prints_the_table_and_the_sum(tmp_path, capsys):
    a, b = _write(tmp_path, "a", BASE), _write(tmp_path, "b", CAND)
    assert main(["compare", str(a), str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].split() == ["all", "8", "6,", "1", "7", "3,", "1"]
    assert main(["compare", str(a), str(b), "--json", "--keywords", "alpha"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["all"]["candidate_hits"] == 3 and out["candidate"] == "B"


@pytest.mark.parametrize("change,message", [
    (lambda s: s["det"]["alpha"].pop("false_alarms"), "older kwsd eval"),
    (lambda s: s.pop("det"), "not a kwsd eval summary"),
    (lambda s: s["det"]["alpha"].update(n_positives=5), "not the same set"),
])
def test_summaries_that_cannot_be_compared_are_refused(tmp_path, capsys, change, message):
    cand = json.loads(json.dumps(CAND))
    change(cand)
    code = main(["compare", str(_write(tmp_path, "a", BASE)), str(_write(tmp_path, "b", cand))])
    assert code == 2 and message in capsys.readouterr().err


def test_unknown_keyword_and_missing_file_are_named(tmp_path, capsys):
    a = _write(tmp_path, "a", BASE)
    assert main(["compare", str(a), str(a), "--keywords", "gamma"]) == 2
    assert "'gamma' is not a labelled keyword of both" in capsys.readouterr().err
    assert main(["compare", str(a), str(tmp_path / "nowhere")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(CompareError, match="not a kwsd eval summary"):
        read_summary(tmp_path / "bad.json")
