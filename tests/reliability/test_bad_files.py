"""Bad files: malformed WAVs, truncated and corrupted model files (safetensors header fuzzing,
wrong shapes, pickles under a safetensors name) and bad config files. Each is refused with an
error that names the problem; nothing is ever unpickled; the process keeps running."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kwsd.audio.audiofile import AudioFileError, read_audio, read_audio_16k, write_wav_16k
from kwsd.config import ConfigError, load_config
from kwsd.model.bundle import ModelBundleError, load_bundle
from recordings import BROKEN_WAVS

from .conftest import REPO
from .server import make_config

BROKEN = BROKEN_WAVS  # tests/data/broken: malformed WAVs from the PocketSphinx test suite


def _examples(request, n_ci: int, n_slow: int) -> settings:
    slow = request.config.getoption("--run-slow")
    return settings(max_examples=n_slow if slow else n_ci, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck), derandomize=not slow)


# --- WAV ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", BROKEN, ids=[p.name for p in BROKEN])
def test_broken_wavs_refused_clearly(path, random_bundle, sock_dir):
    from kwsd.engine.daemon import Daemon, DaemonError

    with pytest.raises(AudioFileError) as info:
        read_audio_16k(path)
    assert path.name in str(info.value)
    daemon = Daemon(make_config(random_bundle, sock_dir / "s", path))
    with pytest.raises(DaemonError) as info:
        daemon.start()
    assert str(info.value).startswith("audio:") and path.name in str(info.value)
    daemon.stop()


def test_fuzzed_wavs_raise_only_wav_error(request, tmp_path):
    good = tmp_path / "good.wav"
    write_wav_16k(good, (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16))
    data = good.read_bytes()
    target = tmp_path / "fuzzed.wav"

    @_examples(request, 60, 1000)
    @given(st.integers(0, len(data)), st.lists(st.tuples(st.integers(0, 60), st.integers(0, 255)),
                                               max_size=6))
    def check(cut, flips):
        blob = bytearray(data[:cut])
        for pos, value in flips:
            if pos < len(blob):
                blob[pos] = value
        target.write_bytes(bytes(blob))
        try:
            samples, rate = read_audio(target)[:2]
        except AudioFileError as exc:
            assert str(target) in str(exc)
            return
        assert rate > 0 and len(samples) > 0
    check()


# --- model files ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle_copy(random_bundle, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bad") / "bundle"
    shutil.copytree(random_bundle, path)
    return path


def _safetensors_parts(path: Path) -> tuple[dict, bytes]:
    blob = path.read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _pack(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + body


def _must_refuse_or_load(path: Path) -> str:
    try:
        load_bundle(path)
    except ModelBundleError as exc:
        return str(exc)
    return ""


@pytest.mark.parametrize("name", ["model.safetensors", "head.safetensors"])
def test_fuzzed_safetensors_refused(request, name, random_bundle, bundle_copy):
    """Truncation, a random header length, random header bytes, and a structurally valid
    header with random dtypes, shapes and offsets: ModelBundleError or a correct load, never
    another exception (or a crash of the process)."""
    original = (random_bundle / name).read_bytes()
    header, body = _safetensors_parts(random_bundle / name)
    tensors = [k for k in header if k != "__metadata__"]
    target = bundle_copy / name

    mutation = st.one_of(
        st.integers(0, len(original) - 1).map(lambda n: ("truncate", n)),
        st.integers(0, 2**64 - 1).map(lambda n: ("header length", n)),
        st.lists(st.tuples(st.integers(8, 8 + 200), st.integers(0, 255)), min_size=1,
                 max_size=8).map(lambda f: ("header bytes", f)),
        st.tuples(st.sampled_from(tensors),
                  st.sampled_from(["dtype", "shape", "data_offsets"]),
                  st.one_of(st.sampled_from(["F16", "I64", "BOOL", "U8", "F64", "nope", ""]),
                            st.lists(st.integers(-2, 2**40), max_size=4),
                            st.integers(), st.none())).map(lambda t: ("field", t)),
    )

    @_examples(request, 30, 500)
    @given(mutation)
    def check(m):
        kind, arg = m
        if kind == "truncate":
            blob = original[:arg]
        elif kind == "header length":
            blob = struct.pack("<Q", arg) + original[8:]
        elif kind == "header bytes":
            b = bytearray(original)
            for pos, value in arg:
                b[pos] = value
            blob = bytes(b)
        else:
            tensor, field, value = arg
            h = json.loads(json.dumps(header))
            h[tensor][field] = value
            blob = _pack(h, body)
        target.write_bytes(blob)
        message = _must_refuse_or_load(bundle_copy)
        if message:
            assert name in message
    try:
        check()
    finally:
        target.write_bytes(original)
    load_bundle(bundle_copy)  # restored: loads again


def test_wrong_shapes_named(random_bundle, bundle_copy):
    from safetensors.torch import load_file, save_file

    for name in ("model.safetensors", "head.safetensors"):
        original = (random_bundle / name).read_bytes()
        state = load_file(str(random_bundle / name))
        key = sorted(state)[len(state) // 2]
        state[key] = state[key].reshape(-1)[:-1].clone() if state[key].numel() > 1 \
            else state[key].repeat(2)
        save_file(state, str(bundle_copy / name))
        try:
            with pytest.raises(ModelBundleError) as info:
                load_bundle(bundle_copy)
            assert key.split(".")[-1] in str(info.value) and "shape" in str(info.value)
        finally:
            (bundle_copy / name).write_bytes(original)


class _Trap:
    """Unpickling this creates the marker file: proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("name", ["model.safetensors", "head.safetensors", "kws.json"])
@pytest.mark.parametrize("flavour", ["pickle", "torch.save"])
def test_pickle_renamed_is_never_unpickled(name, flavour, random_bundle, bundle_copy, tmp_path):
    import torch

    marker = tmp_path / "UNPICKLED"
    trap = {"weight": _Trap(marker)}
    original = (bundle_copy / name).read_bytes()
    if flavour == "pickle":
        (bundle_copy / name).write_bytes(pickle.dumps(trap))
    else:
        torch.save(trap, bundle_copy / name)
    try:
        with pytest.raises(ModelBundleError) as info:
            load_bundle(bundle_copy)
        assert name in str(info.value)
    finally:
        (bundle_copy / name).write_bytes(original)
    assert not marker.exists(), "a pickle was unpickled"
    pickle.loads(pickle.dumps(trap))  # the trap works: unpickling does create the marker
    assert marker.exists()


def test_pickle_files_in_bundle_refused(bundle_copy, tmp_path):
    import torch

    marker = tmp_path / "UNPICKLED"
    for name in ("pytorch_model.bin", "head.pt", "weights.ckpt"):
        torch.save({"w": _Trap(marker)}, bundle_copy / name)
        try:
            with pytest.raises(ModelBundleError) as info:
                load_bundle(bundle_copy)
            assert name in str(info.value) and "pickle" in str(info.value)
        finally:
            (bundle_copy / name).unlink()
    assert not marker.exists()


def test_weights_only_bin_checkpoint_refuses_code(tmp_path):
    """The HF loader's pytorch_model.bin path (outside bundles) uses the weights-only
    unpickler: a pickle with code is refused, never run."""
    import torch
    from kwsd.model.checkpoint import CheckpointError, read_weights

    marker = tmp_path / "UNPICKLED"
    torch.save({"w": _Trap(marker)}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError) as info:
        read_weights(tmp_path)
    assert "never unpickled" in str(info.value)
    assert not marker.exists()


def test_daemon_refuses_garbage_model_at_start(bundle_copy, sock_dir, tmp_path):
    from kwsd.engine.daemon import Daemon, DaemonError

    original = (bundle_copy / "model.safetensors").read_bytes()
    (bundle_copy / "model.safetensors").write_bytes(os.urandom(4096))
    try:
        daemon = Daemon(make_config(bundle_copy, sock_dir / "s", None,
                                    audio={"source": "stdin"}))
        with pytest.raises(DaemonError) as info:
            daemon.start()
        assert "model.path" in str(info.value) and "model.safetensors" in str(info.value)
        daemon.stop()
    finally:
        (bundle_copy / "model.safetensors").write_bytes(original)


# --- config files -----------------------------------------------------------------------------

BAD_CONFIGS = [
    ("not TOML", b"[model\npath=", "--config"),
    ("not UTF-8", b"[vad]\naggressiveness = 2\n# \xff\xfe\x00 garbage\n", "--config"),
    ("binary", bytes(range(256)) * 4, "--config"),
    ("unknown section", b"[modle]\npath='x'", "modle"),
    ("unknown option", b"[vad]\naggresiveness=2", "vad.aggresiveness"),
    ("wrong type", b"[vad]\naggressiveness='high'", "vad.aggressiveness"),
    ("out of range", b"[vad]\naggressiveness=7", "vad.aggressiveness"),
    ("bad threshold", b"[decision.thresholds]\nyes=1.5", "decision.thresholds.yes"),
    ("NaN", b"[decision]\ndefault_threshold=nan", "decision.default_threshold"),
    ("bad source", b"[audio]\nsource='telepathy'", "audio.source"),
    ("bad tcp", b"[api]\ntcp='not a host'", "api.tcp"),
    ("bad mode", b"[api]\nsocket_mode=0o7777", "api.socket_mode"),
    ("section not a table", b"vad = 3", "vad"),
]


@pytest.mark.parametrize("text,option", [c[1:] for c in BAD_CONFIGS],
                         ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_the_option(text, option, tmp_path):
    path = tmp_path / "kwsd.toml"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.option == option


def test_serve_refuses_bad_config_without_traceback(tmp_path, random_bundle):
    """`kwsd serve` with bad config files: exit status 2, one clear line, no traceback."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "daemon"))
    for name, text, option in (BAD_CONFIGS[1], BAD_CONFIGS[6]):
        path = tmp_path / "kwsd.toml"
        path.write_bytes(text)
        proc = subprocess.run([sys.executable, "-m", "kwsd", "serve", "--config", str(path),
                               "--model", str(random_bundle), "--no-api"], env=env,
                              capture_output=True, text=True, timeout=900)
        assert proc.returncode == 2, (name, proc.stderr[-2000:])
        assert option in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
