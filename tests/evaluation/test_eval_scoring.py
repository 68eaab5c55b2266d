"""Counting rules of `kwsd eval` on hand-made detections (no model involved)."""

import numpy as np
import pytest
from kwsd.evaluation.manifest import ManifestError, count_keyword, read_eval_manifest
from kwsd.evaluation.scoring import (
    MISSED_LABEL,
    NONE_LABEL,
    Detection,
    ScoreTrace,
    count_events,
    det_curves,
    score,
)

MANIFEST = """file,keyword,kw_start_s,kw_end_s,in_sentence,transcription,other
a.wav,operator,1.0,1.5,False,Operator,x
b.wav,operator,2.0,2.6,True,call the operator,x
c.wav,voyager,1.0,1.6,False,Voyager,x
d.wav,voyager,3.0,3.5,True,Voyager is a ship says the computer,x
e.wav,,,,False,Eileen Wrubel,x
"""


@pytest.fixture()
def items(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(MANIFEST)
    return read_eval_manifest(path)


def test_manifest_paths_relative_to_manifest(items, tmp_path):
    assert items[0].path == tmp_path / "a.wav" and items[0].file == "a.wav"
    assert items[1].in_sentence and not items[0].in_sentence
    assert items[4].keyword == "" and items[4].kw_start_s is None
    assert items[0].extra["other"] == "x"


def test_manifest_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("file,keyword,kw_start_s,kw_end_s,in_sentence\nx.wav,operator,,1.0,False\n")
    with pytest.raises(ManifestError, match=r"bad.csv:2: keyword 'operator' needs"):
        read_eval_manifest(bad)
    bad.write_text("file,keyword\nx.wav,operator\n")
    with pytest.raises(ManifestError, match="missing column"):
        read_eval_manifest(bad)


def test_a_keyword_label_without_a_time_span_is_left_out_by_name(tmp_path):
    """WUW-II marks some sentences 0 / 0 (not time-labelled): scored as said at 0 s, the real
    keyword later in the file would be a miss plus a false alarm, so the row is refused."""
    bad = tmp_path / "bad.csv"
    bad.write_text("file,keyword,kw_start_s,kw_end_s,in_sentence\n"
                   "x.wav,think engine,0,0,True\ny.wav,operator,1.0,1.5,True\n"
                   "z.wav,,0,0,False\nw.wav,voyager,2.0,1.5,True\n")
    with pytest.raises(ManifestError, match=r"bad.csv:2: kw_end_s 0.0 is not after kw_start_s"):
        read_eval_manifest(bad)
    problems: list[str] = []
    items = read_eval_manifest(bad, problems)
    assert [i.file for i in items] == ["y.wav", "z.wav"]   # a keyword-free 0 / 0 row is fine
    assert [p.split(": ")[0].rsplit(":", 1)[1] for p in problems] == ["2", "5"]


def test_count_keyword_in_transcriptions():
    assert count_keyword("[click] ThinkEngine", "think engine") == 1
    assert count_keyword("a system within Think Engine and thinkengine", "think engine") == 2
    assert count_keyword("{breath} these hot word things are called _Onword", "onword") == 1
    assert count_keyword("wake up the computer [/voices]", "computer") == 1
    assert count_keyword("[voices] four score", "voyager") == 0


def test_hand_made_case(items):
    durations = {"a.wav": 2.0, "b.wav": 4.0, "c.wav": 2.0, "d.wav": 5.0, "e.wav": 3.0}
    dets = [
        Detection("a.wav", "operator", 0.9, 0.8, 1.8),  # hit (alone)
        Detection("a.wav", "operator", 0.8, 1.2, 1.9),  # duplicate on the same span
        Detection("b.wav", "operator", 0.9, 2.9, 3.2),  # hit thanks to the 0.5 s tolerance
        Detection("c.wav", "operator", 0.7, 1.0, 1.6),  # confusion: said voyager -> FA
        Detection("d.wav", "computer", 0.6, 4.0, 4.6),  # said but unlabelled -> not an FA
        Detection("d.wav", "computer", 0.6, 0.0, 0.5),  # said only once -> FA
        Detection("e.wav", "wildfire", 0.95, 1.0, 2.0),  # FA in a negative file
    ]
    r = score(items, dets, durations, ["operator", "voyager", "wildfire", "computer"])
    op, vo = r.per_keyword["operator"], r.per_keyword["voyager"]
    assert (op.alone, op.alone_hits, op.sentence, op.sentence_hits) == (1, 1, 1, 1)
    assert (vo.alone, vo.alone_hits, vo.sentence, vo.sentence_hits) == (1, 0, 1, 0)
    assert r.false_alarms == 3 and r.duplicates == 1 and r.unlabelled_hits == 1
    assert op.false_alarms == 1 and r.per_keyword["wildfire"].false_alarms == 1
    # negative time: total minus each widened span (clipped to the file)
    neg = 16.0 - (2.0 - 0.5) - (3.1 - 1.5) - (2.0 - 0.5) - (4.0 - 2.5)
    assert r.negative_hours == pytest.approx(neg / 3600)
    assert r.fa_per_hour == pytest.approx(3 / (neg / 3600))
    assert r.recall(False) == 0.5 and r.recall(True) == 0.5
    assert r.confusion[("voyager", "operator")] == 1
    assert r.confusion[("voyager", MISSED_LABEL)] == 1
    assert r.confusion[(NONE_LABEL, "wildfire")] == 1 and r.confusion[(NONE_LABEL, "computer")] == 1


def test_unreadable_files_are_left_out(items):
    r = score(items, [], {"a.wav": 2.0}, ["operator"])
    assert r.per_keyword["operator"].alone == 1 and r.per_keyword["operator"].sentence == 0
    assert r.total_hours == pytest.approx(2.0 / 3600)


def test_count_events_runs_refractory_and_release():
    t = np.arange(10) * 0.2
    s = np.array([0, .9, .9, 0, .9, 0, 0, 0, 0, .9])
    # runs at 0.2, 0.8 (within 1 s of 0.2: swallowed), 1.8
    assert count_events(t, s, np.array([0.5, 0.95]), refractory_s=1.0).tolist() == [2, 0]
    assert count_events(t, s, np.array([0.5]), refractory_s=0.0).tolist() == [3]
    # hysteresis: a dip to 0.4 does not re-arm at release 0.5 x 0.5 = 0.25
    s2 = np.array([0, .9, .4, .9, 0, .9])
    assert count_events(t[:6], s2, np.array([0.5]), 0.0, release_ratio=0.5).tolist() == [2]
    assert count_events(t[:6], s2, np.array([0.5]), 0.0, release_ratio=1.0).tolist() == [3]
    # a gap in the hops (gate closed) re-arms
    t3 = np.array([0.0, 0.2, 5.0])
    s3 = np.array([.9, .4, .9])
    assert count_events(t3, s3, np.array([0.5]), 0.0, 0.5, gap_s=0.3).tolist() == [2]


def test_det_curve_from_traces(items):
    durations = {"a.wav": 2.0, "b.wav": 4.0, "c.wav": 2.0, "d.wav": 5.0, "e.wav": 3.0}
    kws = ["operator", "voyager"]

    def trace(file, n, peaks):
        start = np.arange(n) * 0.2
        sc = np.zeros((n, 2))
        for i, k, v in peaks:
            sc[i, k] = v
        return ScoreTrace(file, start, start + 1.0, sc)

    traces = {
        "a.wav": trace("a.wav", 6, [(3, 0, 0.8)]),  # window 0.6-1.6 overlaps span
        "b.wav": trace("b.wav", 16, [(12, 0, 0.4)]),
        "c.wav": trace("c.wav", 6, [(3, 1, 0.7)]),
        "d.wav": trace("d.wav", 21, [(14, 1, 0.6)]),
        "e.wav": trace("e.wav", 11, [(2, 0, 0.5)]),  # operator FA at 0.5
    }
    curves = det_curves(items, traces, durations, kws, thresholds=np.array([0.3, 0.45, 0.9]))
    op = curves["operator"]
    assert op.n_positives == 2
    assert op.miss_rate.tolist() == [0.0, 0.5, 1.0]
    neg_h = (16.0 - 1.5 - 1.6) / 3600
    assert op.fa_per_hour.tolist() == pytest.approx([1 / neg_h, 1 / neg_h, 0.0])


def test_several_keywords_in_one_file(tmp_path):
    path = tmp_path / "demo.csv"
    path.write_text("file,keyword,kw_start_s,kw_end_s,in_sentence,transcription\n"
                    "demo.wav,computer,1.0,1.5,False,computer lights operator voyager\n"
                    "demo.wav,operator,5.0,5.6,True,\n"
                    "demo.wav,voyager,9.0,9.6,False,\n")
    items = read_eval_manifest(path)
    dets = [Detection("demo.wav", "computer", 0.9, 1.1, 1.6),
            Detection("demo.wav", "voyager", 0.9, 5.1, 5.5),  # confusion in operator's span
            Detection("demo.wav", "voyager", 0.9, 9.0, 9.5),
            Detection("demo.wav", "voyager", 0.8, 9.3, 9.7)]  # duplicate
    r = score(items, dets, {"demo.wav": 12.0}, ["computer", "operator", "voyager"])
    assert r.per_keyword["computer"].alone_hits == 1
    assert r.per_keyword["operator"].sentence == 1 and r.per_keyword["operator"].sentence_hits == 0
    assert r.per_keyword["voyager"].alone_hits == 1
    assert r.false_alarms == 1 and r.duplicates == 1
    assert r.confusion[("operator", "voyager")] == 1
    assert r.negative_hours == pytest.approx((12.0 - 1.5 - 1.6 - 1.6) / 3600)
