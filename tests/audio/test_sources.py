"""WAV file, stdin and microphone sources: the same AudioChunk stream from each."""

import io
import os
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from kwsd.audio.audiofile import read_audio_16k, write_wav_16k
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.audio.convert import resample
from kwsd.audio.microphone import MicrophoneSource
from kwsd.audio.source import SourceError, SourceState
from kwsd.audio.stdin_source import StdinSource
from kwsd.audio.wav_source import WavSource

from .speech import espeak, silence

REPO = Path(__file__).resolve().parents[2]


def _drain(src, timeout=30.0):
    chunks, deadline = [], time.monotonic() + timeout
    while not src.finished and time.monotonic() < deadline:
        chunk = src.read(0.2)
        if chunk is not None:
            chunks.append(chunk)
    assert src.finished, "source did not end"
    return chunks


def _contiguous(chunks):
    assert chunks[0].start_sample == 0
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start_sample == a.end_sample
    return np.concatenate([c.samples for c in chunks])


def _write_wav(path, samples, rate, channels, width):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def test_wav_source_any_rate_equals_the_one_resampler(tmp_path):
    rng = np.random.default_rng(0)
    stereo = rng.integers(-8000, 8000, (44100, 2)).astype("<i2")
    path = tmp_path / "x.wav"
    _write_wav(path, stereo, 44100, 2, 2)
    src = WavSource(path, "w", realtime=False, chunk_ms=37)
    src.start()
    got = _contiguous(_drain(src))
    assert np.array_equal(got, read_audio_16k(path))
    assert src.state == SourceState.STOPPED and src.detail == "end of file"


def test_wav_source_real_time_pacing_and_capture_times(tmp_path):
    path = tmp_path / "x.wav"
    write_wav_16k(path, silence(0.6))
    src = WavSource(path, "w", realtime=True, chunk_ms=100)
    src.start()
    chunks = _drain(src)
    assert len(chunks) == 6
    t0 = chunks[0].capture_time
    assert [round(c.capture_time - t0, 3) for c in chunks] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def test_wav_source_refuses_a_broken_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEfmt nonsense")
    with pytest.raises(SourceError, match="bad.wav"):
        WavSource(bad)


def test_stdin_source_raw_pcm_any_rate_and_odd_reads():
    rng = np.random.default_rng(1)
    pcm = rng.integers(-8000, 8000, (48000 + 7, 2)).astype("<i2")
    src = StdinSource("s", rate=48000, channels=2, chunk_ms=20,
                      stream=io.BufferedReader(io.BytesIO(pcm.tobytes() + b"\x01")))
    src.start()
    got = _contiguous(_drain(src))
    mono = pcm.astype(np.float32).mean(axis=1) / 32768.0
    assert np.array_equal(got, resample(mono, 48000))   # trailing odd byte ignored


def test_serve_stdin_end_to_end(random_bundle_path):
    audio = np.concatenate([silence(0.5), espeak("yes no"), silence(1.5)])
    env = dict(os.environ, PYTHONPATH=str(REPO / "daemon"))
    out = subprocess.run(
        [sys.executable, "-m", "kwsd", "serve", "--model", str(random_bundle_path), "--stdin",
         "--no-api", "--print", "--json", "--print-speech", "--exit-at-end"],
        input=audio.astype("<i2").tobytes(), env=env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    kinds = [line.split(b'"kind": "')[1].split(b'"')[0] for line in out.stdout.splitlines()]
    assert kinds[0] == b"speech_begin" and kinds[-1] == b"speech_end"


def test_microphone_overflow_is_counted_and_the_stream_clock_jumps(virtual_mic):
    src = MicrophoneSource("", "mic", chunk_ms=50, queue_ms=300)
    src.start()
    try:
        deadline = time.monotonic() + 20
        while src.state != SourceState.RUNNING and time.monotonic() < deadline:
            src.read(0.1)
        while src.pending():                          # empty the queue
            src.read(0)
        time.sleep(1.5)                               # a consumer that stalls
        assert src.overflows > 0                      # counted, not raised
        chunks = []
        while len(chunks) < 30:
            chunk = src.read(1.0)
            assert chunk is not None
            chunks.append(chunk)
        gaps = [b.start_sample - a.end_sample for a, b in zip(chunks, chunks[1:], strict=False)]
        assert max(gaps) > 0.5 * SAMPLE_RATE          # lost audio shows as a jump in offsets
        assert min(gaps) >= 0
    finally:
        src.stop()


def test_microphone_converts_a_native_48k_stereo_device():
    """The conversion path taken when a device cannot open 16 kHz mono: blocks as PortAudio
    hands them to the callback -> downmix -> the one resampler."""
    src = MicrophoneSource("", "mic", chunk_ms=20)
    src._fmt = (48000, 2)
    rng = np.random.default_rng(2)
    pcm = rng.integers(-8000, 8000, (48000, 2)).astype("<i2")
    for i in range(0, len(pcm), 960):
        src._callback(pcm[i:i + 960].tobytes(), 960, None, 0)
    chunks = []
    while src.pending():
        chunk = src.read(0)
        if chunk is not None:        # soxr may hold back the very first block
            chunks.append(chunk)
    got = _contiguous(chunks)
    from kwsd.audio.convert import Resampler

    mono = pcm.astype(np.float32).mean(axis=1) / 32768.0
    r = Resampler(48000)
    expected = np.concatenate([r.process(mono[i:i + 960]) for i in range(0, len(mono), 960)])
    assert np.array_equal(got, expected)
