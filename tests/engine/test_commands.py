"""`kwsd serve` and `kwsd demo` as a user runs them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from audio.speech import espeak, silence
from kwsd.audio.audiofile import write_wav_16k

REPO = Path(__file__).resolve().parents[2]


def _kwsd(*args, timeout=180, env=None):
    env = dict(os.environ, PYTHONPATH=str(REPO / "daemon"), **(env or {}))
    return subprocess.run([sys.executable, "-m", "kwsd", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_serve_refuses_a_bad_config_naming_the_option(tmp_path):
    cfg = tmp_path / "kwsd.toml"
    cfg.write_text("[vad]\nframe_ms = 25\n")
    out = _kwsd("serve", "--config", str(cfg), "--no-api", timeout=60)
    assert out.returncode == 2
    assert "vad.frame_ms" in out.stderr and "10, 20 or 30" in out.stderr
    out = _kwsd("serve", "--config", str(cfg), "--threshold", "yes", "--no-api", timeout=60)
    assert out.returncode == 2 and "--threshold yes" in out.stderr


def test_serve_without_a_model_says_where_it_looked(tmp_path):
    out = _kwsd("serve", "--model", str(tmp_path / "nope"), "--no-api", timeout=120)
    assert out.returncode == 2
    assert "model.path" in out.stderr and "nope" in out.stderr


def test_demo_plays_the_bundled_recording_to_a_subscriber(tmp_path, random_bundle_path):
    model = tmp_path / "demo"
    shutil.copytree(random_bundle_path, model)
    write_wav_16k(model / "demo.wav",
                  np.concatenate([silence(0.5), espeak("yes, no"), silence(1.0)]))
    out = _kwsd("demo", "--model", str(model), "--recording", "--fast", "--speech")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "speech begins" in out.stdout and "speech ends" in out.stdout
    assert "listening to" in out.stderr and "say one of: yes, no" in out.stderr
