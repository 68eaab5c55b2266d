"""Fixtures of the reliability suite: a random-weight demo-size bundle (plumbing, any weights
give identical events for identical audio), real daemons and gRPC servers on private Unix
sockets, and synthesised speech."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "models" / "demo"
KEYWORDS = ("yes", "no")
LOW_THRESHOLD = 0.3
"""Random weights give posteriors near 1/4 each; 0.3 makes them fire now and then."""


@pytest.fixture(scope="session")
def random_bundle(tmp_path_factory) -> Path:
    from kwsd.model.bundle import make_random_bundle

    return make_random_bundle(tmp_path_factory.mktemp("bundle") / "random", "demo", KEYWORDS,
                              seed=0)


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
    from kwsd.audio.wavfile import write_wav_16k

    path = tmp_path_factory.mktemp("wav") / "speech.wav"
    write_wav_16k(path, speech_samples)
    return path


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """Short path: a Unix socket path must fit in 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="kwsd-r-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
