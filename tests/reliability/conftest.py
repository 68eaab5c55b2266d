"""Fixtures of the reliability suite: a random-weight demo-size bundle (plumbing, any weights
give identical events for identical audio), real daemons and gRPC servers on private Unix
sockets, and synthesised speech."""

from __future__ import annotations

from pathlib import Path

import pytest
from running_daemon import KEYWORDS

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "models" / "demo"


@pytest.fixture(scope="session")
def clip_pool(tmp_path_factory):
    """espeak-ng keywords and sentences, rendered once per session."""
    from .synth import ClipPool, SynthError

    try:
        return ClipPool.build(KEYWORDS, tmp_path_factory.mktemp("pool") / "pool.npz",
                              voices=("en-us", "en-gb", "en-us+f3"), n_sentences=12)
    except SynthError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def speech_samples(clip_pool):
    """40 s of speech with keywords, noise and silence (int16, 16 kHz)."""
    from .synth import Program

    return Program(clip_pool, 40.0, seed=3, keyword_every_s=10.0).samples()


@pytest.fixture(scope="session")
def speech_wav(speech_samples, tmp_path_factory) -> Path:
    from kwsd.audio.audiofile import write_wav_16k

    path = tmp_path_factory.mktemp("wav") / "speech.wav"
    write_wav_16k(path, speech_samples)
    return path
