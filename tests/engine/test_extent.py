"""Where the decision says a keyword was: real speech through the real VAD gate, posteriors
that fire on the first window holding the whole keyword (as a trained model does)."""

import numpy as np
import pytest
from audio.speech import espeak, silence
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.config import DecisionConfig, VadConfig
from kwsd.engine.decision import Decision, resolve_thresholds
from kwsd.engine.vad import VadGate

LABELS = ["computer", "_unknown_", "_silence_"]
WINDOW, HOP = 16000, 3200
TOL = int(0.3 * SAMPLE_RATE)


def _locate(stream, kw_start, kw_end, delay_hops=0):
    gate = VadGate(VadConfig(), WINDOW)
    for i in range(0, len(stream), 800):
        gate.push(stream[i:i + 800], i)
    cfg = DecisionConfig()
    d = Decision(LABELS, ["computer"], resolve_thresholds(["computer"], {}, cfg), cfg,
                 WINDOW, HOP, speech_runs=gate.speech_runs)
    fire_from = None
    for end in range(WINDOW, len(stream) + 1, HOP):
        if fire_from is None and end >= kw_end:
            fire_from = end + delay_hops * HOP
        p = 0.9 if fire_from is not None and end >= fire_from and end - WINDOW <= kw_start + HOP \
            else 0.0
        det = d.update(end - WINDOW, end, np.array([p, 1 - p, 0.0], dtype=np.float32))
        if det is not None:
            return det
    raise AssertionError("no detection")


@pytest.mark.parametrize("delay_hops", [0, 1])
def test_isolated_keyword(delay_hops):
    kw = espeak("computer")
    stream = np.concatenate([silence(1.5), kw, silence(1.5)])
    s, e = int(1.5 * SAMPLE_RATE), int(1.5 * SAMPLE_RATE) + len(kw)
    det = _locate(stream, s, e, delay_hops)
    assert abs(det.start_sample - s) <= TOL and abs(det.end_sample - e) <= TOL, \
        (det.start_sample - s, det.end_sample - e)


@pytest.mark.parametrize("delay_hops", [0, 1])
@pytest.mark.parametrize("gap_s", [0.0, 0.12])
def test_keyword_inside_a_sentence(delay_hops, gap_s):
    before, kw, after = espeak("now please say"), espeak("computer"), espeak("and wait for it")
    gap = silence(gap_s)
    stream = np.concatenate([silence(1.0), before, gap, kw, gap, after, silence(1.0)])
    s = int(1.0 * SAMPLE_RATE) + len(before) + len(gap)
    e = s + len(kw)
    det = _locate(stream, s, e, delay_hops)
    assert abs(det.start_sample - s) <= TOL and abs(det.end_sample - e) <= TOL, \
        (det.start_sample - s, det.end_sample - e)
