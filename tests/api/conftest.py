"""Real daemons with real gRPC servers for the API tests: a random-weight bundle (plumbing) or
the demo bundle (detection content), a WAV file source, a Unix socket in a short private dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from recordings import SPEECH_WAV
from running_daemon import LOW_THRESHOLD

REPO = Path(__file__).resolve().parents[2]
DEMO_MODEL = REPO / "models" / "demo"


@pytest.fixture(scope="session")
def demo_bundle() -> Path:
    if not (DEMO_MODEL / "kws.json").is_file():
        pytest.skip(f"the demo model is not in {DEMO_MODEL} yet (issue 7): detection-content "
                    "tests need a trained bundle")
    return DEMO_MODEL


@pytest.fixture(scope="session")
def speech_wav() -> Path:
    """Real speech without the keywords (16 kHz, 4 s; tests/data)."""
    return SPEECH_WAV


@pytest.fixture(scope="session")
def padded_wav(speech_wav, tmp_path_factory) -> Path:
    """The speech between silences: a subscriber has 1.5 s to connect before the first event,
    and a looping source gives speech begin/end (and fresh detections) on every pass."""
    import numpy as np
    from kwsd.audio.audiofile import read_audio_16k, write_wav_16k

    speech = read_audio_16k(speech_wav)
    samples = np.concatenate([np.zeros(24_000, np.int16), speech, np.zeros(16_000, np.int16)])
    path = tmp_path_factory.mktemp("wav") / "padded.wav"
    write_wav_16k(path, samples)
    return path


@pytest.fixture(scope="session")
def silence_wav(tmp_path_factory) -> Path:
    """One second of digital silence: a daemon source that costs nothing."""
    import numpy as np
    from kwsd.audio.audiofile import write_wav_16k

    path = tmp_path_factory.mktemp("wav") / "silence.wav"
    write_wav_16k(path, np.zeros(16_000, np.int16))
    return path


def make_config(bundle: Path, wav: Path, sock: Path, *, realtime: bool = True,
                loop: bool = False, threshold: float | None = LOW_THRESHOLD,
                api: dict | None = None, keywords=("yes", "no")):
    from kwsd.config import config_from_dict

    data = {
        "model": {"path": str(bundle)},
        "audio": {"source": "wav", "wav": str(wav), "realtime": realtime, "loop": loop,
                  "source_id": "file"},
        "engine": {"warmup": False, "torch_threads": 1},
        "api": {"socket": str(sock), **(api or {})},
    }
    if threshold is not None:
        data["decision"] = {"thresholds": {k: threshold for k in keywords}}
    return config_from_dict(data)


def offline_detections(bundle_path: Path, wav: Path, config, source_id: str = "file"):
    """What `kwsd eval` reports for the file: the same Pipeline run offline."""
    from kwsd.audio.audiofile import read_audio_16k
    from kwsd.engine.pipeline import PipelineSettings
    from kwsd.evaluation.runner import run_samples
    from kwsd.model.bundle import load_bundle

    bundle = load_bundle(bundle_path)
    result = run_samples(bundle, read_audio_16k(wav), source_id,
                         PipelineSettings.from_config(config))
    return result.detections
