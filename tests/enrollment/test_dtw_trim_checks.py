"""DTW, trimming and example checks on plain arrays (no model)."""

from __future__ import annotations

import numpy as np
from kwsd.enrollment.checks import check_audio, unlike_others
from kwsd.enrollment.dtw import subsequence_dtw
from kwsd.enrollment.features import normalise
from kwsd.enrollment.trim import speech_span, trim

RNG = np.random.default_rng(3)


def _frames(n: int, h: int = 16) -> np.ndarray:
    return normalise(RNG.standard_normal((n, h)))


def test_template_inside_window_matches_wherever_it_is():
    t = _frames(10)
    for offset in (0, 7, 20):
        window = _frames(30)
        window[offset:offset + 10] = t
        assert subsequence_dtw(t, window)[0] < 1e-5
    other = _frames(30)
    assert subsequence_dtw(t, other)[0] > 0.5


def test_slower_and_faster_renditions_still_match():
    # speech frames change smoothly: a slow random walk
    t = normalise(np.cumsum(0.3 * RNG.standard_normal((10, 16)), axis=0) + RNG.standard_normal(16))
    slow = np.repeat(t, 2, axis=0)              # said at half speed
    fast = t[::2]                               # said twice as fast
    for said in (slow, fast):
        window = _frames(40)
        window[5:5 + len(said)] = said
        d = subsequence_dtw(t, window)[0]
        assert d < 0.1, d
    # a batch of windows gives one distance each, equal to the single-window calls
    batch = np.stack([_frames(30) for _ in range(4)])
    one_by_one = [subsequence_dtw(t, w)[0] for w in batch]
    assert np.allclose(subsequence_dtw(t, batch), one_by_one, atol=1e-6)


def _burst(seconds: float, level: float = 8000.0) -> np.ndarray:
    n = int(seconds * 16000)
    return (level * np.sin(np.arange(n) * 2 * np.pi * 300 / 16000)).astype(np.int16)


def test_trim_keeps_the_loud_phrase_and_drops_a_distant_click():
    quiet = (RNG.standard_normal(16000) * 20).astype(np.int16)
    click = np.zeros(160, np.int16)
    click[:20] = 12000
    x = np.concatenate([quiet[:3000], click, quiet[:8000], _burst(0.5), quiet])
    a, b = speech_span(x)
    start = 3000 + 160 + 8000
    assert abs(a - start) < 1200 and abs(b - (start + 8000)) < 1200
    assert len(trim(np.zeros(16000, np.int16))) == 0


def test_static_joined_to_the_word_is_cut_when_the_phrase_would_not_fit_a_window():
    """A telephone line's static right after the word is bridged into the phrase at the usual
    level (1.3 s: refused as too long); with the window's length as the limit the level rises
    until only the word (0.6 s, 19 dB louder) is left."""
    quiet = (RNG.standard_normal(8000) * 20).astype(np.int16)
    static = (RNG.standard_normal(11200) * 600).astype(np.int16)
    x = np.concatenate([quiet, _burst(0.6), static, quiet])
    a0, b0 = speech_span(x)
    assert (b0 - a0) / 16000 > 1.2
    a, b = speech_span(x, max_samples=16000)
    assert b - a <= 16000
    assert a <= 8000 and b >= 8000 + 9600          # the whole word is kept
    assert speech_span(x, max_samples=32000) == (a0, b0)  # fits: nothing changes


def test_checks_name_each_problem():
    ok = check_audio(0, _burst(0.6), _burst(0.6), 1.0)
    assert ok.ok and "ok" in ok.describe()
    assert "too short" in check_audio(0, _burst(0.1), _burst(0.1), 1.0).problems[0]
    assert "too long" in check_audio(0, _burst(1.5), _burst(1.5), 1.0).problems[0]
    loud = _burst(0.6, 40000.0 / 1.2)
    loud[::3] = 32767
    assert any("clipped" in p for p in check_audio(0, loud, loud, 1.0).problems)
    assert any("too quiet" in p for p in check_audio(0, _burst(0.6, 100), _burst(0.6, 100),
                                                     1.0).problems)
    assert "no speech" in check_audio(0, np.zeros(8000, np.int16), np.zeros(0, np.int16),
                                      1.0).problems[0]


def test_the_example_unlike_the_others_is_named():
    base = _frames(12)
    temps, wins = [], []
    for i in range(4):
        t = normalise(base + 0.15 * RNG.standard_normal(base.shape)) if i != 2 else _frames(12)
        w = _frames(30)
        w[9:21] = t
        temps.append(t)
        wins.append(w)
    odd = unlike_others(temps, wins)
    assert list(odd) == [2]
    assert "unlike the others" in odd[2]
