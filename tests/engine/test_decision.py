import numpy as np
import pytest
from kwsd.config import ConfigError, DecisionConfig
from kwsd.engine.decision import Decision, model_decision, resolve_thresholds

LABELS = ["yes", "no", "_unknown_", "_silence_"]
HOP, WINDOW = 3200, 16000


def _probs(yes=0.0, no=0.0):
    rest = 1.0 - yes - no
    return np.array([yes, no, rest / 2, rest / 2], dtype=np.float32)


def _run(decision, scores, start=0):
    """scores: per-window (yes, no); returns detections."""
    out = []
    for i, (y, n) in enumerate(scores):
        s = start + i * HOP
        det = decision.update(s, s + WINDOW, _probs(y, n))
        if det is not None:
            out.append(det)
    return out


def _decision(**cfg):
    config = DecisionConfig(**cfg)
    thr = resolve_thresholds(["yes", "no"], {"yes": 0.5, "no": 0.6}, config)
    return Decision(LABELS, ["yes", "no"], thr, config, WINDOW, HOP)


def test_one_event_for_one_keyword_seen_by_many_overlapping_windows():
    bump = [(0.1, 0)] * 3 + [(0.7, 0), (0.9, 0), (0.95, 0), (0.8, 0), (0.6, 0)] + [(0.05, 0)] * 3
    dets = _run(_decision(), bump)
    assert len(dets) == 1
    assert dets[0].keyword == "yes" and dets[0].threshold == 0.5
    assert dets[0].confidence == pytest.approx(0.7)       # fires at the first crossing


def test_a_dip_inside_the_keyword_does_not_fire_twice():
    scores = [(0.8, 0), (0.45, 0), (0.8, 0), (0.9, 0)]    # dip above threshold*release_ratio
    assert len(_run(_decision(refractory_ms=0), scores)) == 1


def test_refractory_blocks_a_second_event_then_allows_it():
    one = [(0.9, 0), (0.0, 0)]
    within = one + one              # the second one 2 hops (0.4 s) later
    assert len(_run(_decision(refractory_ms=1000), within)) == 1
    later = one + [(0.0, 0)] * 5 + one                      # 1.4 s later
    assert len(_run(_decision(refractory_ms=1000), later)) == 2


def test_bundle_threshold_and_config_override():
    assert _run(_decision(), [(0, 0.55)]) == []             # bundle: "no" needs 0.6
    dets = _run(_decision(thresholds={"no": 0.5}), [(0, 0.55)])
    assert [d.keyword for d in dets] == ["no"] and dets[0].threshold == 0.5


def test_unknown_keyword_in_config_thresholds_is_refused_naming_the_option():
    with pytest.raises(ConfigError) as err:
        resolve_thresholds(["yes"], {}, DecisionConfig(thresholds={"maybe": 0.3}))
    assert err.value.option == "decision.thresholds.maybe"


def test_the_same_word_half_recognised_as_another_keyword_gives_one_event():
    scores = [(0.9, 0.0), (0.2, 0.7), (0.1, 0.8), (0, 0), (0, 0)]
    dets = _run(_decision(), scores)
    assert [d.keyword for d in dets] == ["yes"]


def test_smoothing_averages_recent_windows():
    scores = [(0.0, 0), (0.9, 0), (0.0, 0)]                  # a one-window spike
    assert len(_run(_decision(smoothing_ms=400), scores)) == 0
    assert len(_run(_decision(smoothing_ms=0), scores)) == 1


class _Bundle:
    def __init__(self, meta):
        self.meta = meta


def test_the_model_sets_the_smoothing_its_thresholds_were_calibrated_with():
    model = _Bundle({"decision": {"smoothing_ms": 400}})
    assert model_decision(model, DecisionConfig()).smoothing_ms == 400       # -1: the model's
    assert model_decision(model, DecisionConfig(smoothing_ms=0)).smoothing_ms == 0
    assert model_decision(_Bundle({}), DecisionConfig()).smoothing_ms == 0   # older bundles
    config = model_decision(model, DecisionConfig(refractory_ms=300))
    assert config.refractory_ms == 300                                      # the rest is kept
    spike = [(0.0, 0), (0.9, 0), (0.0, 0)]
    thr = {"yes": 0.5, "no": 0.6}
    assert _run(Decision(LABELS, ["yes", "no"], thr, config, WINDOW, HOP), spike) == []
    assert len(_run(Decision(LABELS, ["yes", "no"], thr, DecisionConfig(), WINDOW, HOP),
                    spike)) == 1                                            # -1 alone: none


def test_extent_lies_inside_the_window_that_fired():
    det = _run(_decision(), [(0, 0), (0.9, 0)])[0]
    assert det.window_start <= det.start_sample < det.end_sample <= det.window_end
    assert det.window_end - det.end_sample <= HOP


def test_silence_and_unknown_never_fire():
    probs = np.array([0, 0, 1.0, 0], dtype=np.float32)
    d = _decision()
    assert all(d.update(i * HOP, i * HOP + WINDOW, probs) is None for i in range(10))
