import numpy as np
import pytest
from audio.speech import espeak, noise, silence, speech_span
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.config import VadConfig
from kwsd.engine.vad import GatedAudio, SpeechBegin, SpeechEnd, VadGate

MS = SAMPLE_RATE // 1000


def _feed(gate, samples, chunk=800):
    items = []
    for i in range(0, len(samples), chunk):
        items += gate.push(samples[i:i + chunk], i)
    return items


def _summary(items):
    begins = [i.sample for i in items if isinstance(i, SpeechBegin)]
    ends = [i.sample for i in items if isinstance(i, SpeechEnd)]
    audio = [i for i in items if isinstance(i, GatedAudio)]
    return begins, ends, audio


@pytest.fixture(scope="module")
def word():
    return espeak("computer")


def test_pre_roll_and_hang_over_around_a_spoken_word(word):
    stream = np.concatenate([silence(1.5), word, silence(2.0)])
    onset, offset = 1.5 * SAMPLE_RATE, 1.5 * SAMPLE_RATE + len(word)
    gate = VadGate(VadConfig(pre_roll_ms=400, hangover_ms=500), 400 * MS)
    begins, ends, audio = _summary(_feed(gate, stream))
    assert len(begins) == 1 and len(ends) == 1
    assert abs(begins[0] - onset) <= 100 * MS
    assert abs(ends[0] - offset) <= 150 * MS
    first, last = audio[0].start_sample, audio[-1].start_sample + len(audio[-1].samples)
    assert first <= onset - 300 * MS          # at least 300 ms before the onset reach the encoder
    assert first >= onset - 400 * MS - 3 * gate.frame - 100 * MS
    assert last >= ends[0] + 500 * MS - gate.frame   # hang-over kept the gate open
    assert last <= ends[0] + 500 * MS + 2 * gate.frame
    # Gated audio is contiguous, exact stream audio.
    joined = np.concatenate([a.samples for a in audio])
    assert np.array_equal(joined, stream[first:last])
    assert all(b.start_sample == a.start_sample + len(a.samples)
               for a, b in zip(audio, audio[1:], strict=False))


def test_default_pre_roll_is_the_model_window(word):
    stream = np.concatenate([silence(2.0), word, silence(1.0)])
    gate = VadGate(VadConfig(), 16000)
    _, _, audio = _summary(_feed(gate, stream))
    assert audio[0].start_sample <= 2.0 * SAMPLE_RATE - 16000


def test_silence_and_quiet_noise_keep_the_gate_closed():
    gate = VadGate(VadConfig(), 16000)
    assert _feed(gate, silence(3.0)) == []
    assert _feed(gate, noise(3.0, dbfs=-70)) == []
    assert gate.samples_open == 0 and gate.duty_cycle == 0.0


def test_chunk_size_does_not_change_the_result(word):
    stream = np.concatenate([silence(1.0), word, silence(1.0), word, silence(1.5)])
    ref = None
    for chunk in (1, 160, 317, 4000):
        gate = VadGate(VadConfig(pre_roll_ms=300), 300 * MS)
        begins, ends, audio = _summary(_feed(gate, stream, chunk))
        joined = np.concatenate([a.samples for a in audio])
        got = (begins, ends, audio[0].start_sample, joined.tobytes())
        if ref is None:
            ref = got
        assert got == ref, chunk


def test_reopening_soon_after_closing_continues_without_repeating_audio(word):
    stream = np.concatenate([silence(1.0), word, silence(0.8), word, silence(1.5)])
    gate = VadGate(VadConfig(pre_roll_ms=1000, hangover_ms=300), 16000)
    begins, ends, audio = _summary(_feed(gate, stream))
    assert len(begins) == 2 and len(ends) == 2
    starts = [a.start_sample for a in audio]
    ends_ = [a.start_sample + len(a.samples) for a in audio]
    for i in range(1, len(audio)):
        assert starts[i] >= ends_[i - 1]              # never the same sample twice


def test_disabled_vad_passes_everything():
    gate = VadGate(VadConfig(enabled=False), 16000)
    items = _feed(gate, silence(1.0))
    assert sum(len(i.samples) for i in items if isinstance(i, GatedAudio)) == SAMPLE_RATE


def test_speech_runs_locate_the_word(word):
    stream = np.concatenate([silence(1.0), word, silence(1.0)])
    gate = VadGate(VadConfig(), 16000)
    _feed(gate, stream)
    runs = gate.speech_runs(0, len(stream), 150 * MS)
    lo, hi = speech_span(stream)
    assert len(runs) == 1
    assert abs(runs[0][0] - lo) <= 100 * MS and abs(runs[0][1] - hi) <= 150 * MS
