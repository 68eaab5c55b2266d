import numpy as np
import pytest
from kwsd.audio.convert import AudioFormatError, Resampler, pcm16_to_int16, resample, to_mono
from kwsd.audio.wavfile import WavError, read_wav_16k, write_wav_16k


def test_pcm16_round_trip_and_odd_byte_count():
    samples = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    assert np.array_equal(pcm16_to_int16(samples.tobytes())[:, 0], samples)
    with pytest.raises(AudioFormatError, match="not a whole number"):
        pcm16_to_int16(b"\x00\x01\x02")


def test_stereo_downmix():
    frames = pcm16_to_int16(np.array([100, 300, -50, 50], dtype=np.int16).tobytes(), channels=2)
    assert to_mono(frames).tolist() == [200.0, 0.0]


def test_streaming_resampler_matches_whole_signal():
    rng = np.random.default_rng(0)
    t = np.arange(8000 * 2) / 8000
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)
    tone = tone.astype(np.float32)
    whole = resample(tone, 8000)
    stream = Resampler(8000)
    parts = [stream.process(tone[i:i + 777]) for i in range(0, tone.size, 777)]
    parts.append(stream.process(np.zeros(0, np.float32), last=True))
    chunked = np.concatenate(parts)
    assert abs(len(whole) - 32000) <= 1 and len(chunked) == len(whole)
    assert np.max(np.abs(chunked.astype(int) - whole.astype(int))) <= 2


def test_bad_rate_refused():
    with pytest.raises(AudioFormatError, match="sample rate"):
        Resampler(0)


def test_wav_round_trip(tmp_path):
    samples = (np.sin(np.arange(1600) / 5) * 10000).astype(np.int16)
    write_wav_16k(tmp_path / "a.wav", samples)
    assert np.array_equal(read_wav_16k(tmp_path / "a.wav"), samples)


def test_broken_wavs_give_clear_errors(shared_data):
    broken = sorted((shared_data / "real-dev" / "broken").glob("*.wav"))
    assert broken
    for path in broken:
        with pytest.raises(WavError, match=path.name):
            read_wav_16k(path)
