import numpy as np
import pytest
from kwsd.audio.audiofile import AudioFileError, read_audio_16k, write_wav_16k
from kwsd.audio.convert import AudioFormatError, Resampler, pcm16_to_int16, resample, to_mono
from recordings import BROKEN_WAVS


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
    assert np.array_equal(read_audio_16k(tmp_path / "a.wav"), samples)


def test_broken_wavs_give_clear_errors():
    assert BROKEN_WAVS
    for path in BROKEN_WAVS:
        with pytest.raises(AudioFileError, match=path.name):
            read_audio_16k(path)


@pytest.mark.parametrize("fmt,subtype,rate,channels", [
    ("FLAC", "PCM_16", 8000, 1), ("FLAC", "PCM_24", 44100, 2), ("OGG", "VORBIS", 22050, 1),
    ("WAV", "FLOAT", 48000, 2)])
def test_flac_ogg_and_any_rate_read_into_16k_mono(tmp_path, fmt, subtype, rate, channels):
    import soundfile

    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    frames = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    path = tmp_path / f"tone.{ {'FLAC': 'flac', 'OGG': 'ogg', 'WAV': 'wav'}[fmt] }"
    soundfile.write(path, frames, rate, format=fmt, subtype=subtype)
    samples = read_audio_16k(path)
    assert samples.dtype == np.int16 and abs(len(samples) - 16000) <= 2
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float32)))
    assert abs(int(np.argmax(spectrum)) * 16000 / len(samples) - 440) < 3
    assert 0.4 < np.abs(samples).max() / 32768 < 0.6  # channels averaged, not summed


def test_not_audio_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.flac"
    bad.write_text("not audio at all")
    with pytest.raises(AudioFileError, match="notes.flac: not a readable WAV, FLAC or Ogg"):
        read_audio_16k(bad)
    with pytest.raises(AudioFileError, match="no such file"):
        read_audio_16k(tmp_path / "missing.ogg")
