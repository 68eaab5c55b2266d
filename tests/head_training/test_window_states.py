"""Hidden states of cached window audio, encoded in parallel parts and joined on disk."""

import shutil

import numpy as np
import pytest
from kwsd.head_training.features import CacheSpaceError, WindowSet, encode_window_audio
from kwsd.model.bundle import load_bundle


def _audio(n: int, window: int) -> WindowSet:
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((n, window)) * 3000).astype(np.int16)
    zeros = np.zeros(n, dtype=np.int64)
    return WindowSet(x=x, labels=zeros, clip=np.arange(n), copy=zeros, coverage=zeros.astype(float))


def test_parallel_parts_join_to_the_serial_states_and_leave_no_copy(random_bundle, tmp_path):
    bundle = load_bundle(random_bundle)
    audio = _audio(12, bundle.window_samples)
    serial = encode_window_audio(audio, bundle, tmp_path / "serial", batch=4, progress=False)
    parallel = encode_window_audio(audio, bundle, tmp_path / "parallel", batch=4,
                                   progress=False, jobs=2)
    np.testing.assert_array_equal(np.asarray(parallel.x), np.asarray(serial.x))
    # the parts are gone once joined: the states are on disk once, not twice
    assert sorted(p.name for p in (tmp_path / "parallel").iterdir()) == ["progress.json",
                                                                       "states.bin"]


def test_an_interrupted_join_resumes_to_the_right_states(random_bundle, tmp_path):
    """Killed while appending part 1 to part 0: part 0's file holds extra bytes, part 1 is
    still there. The rerun must give the serial states, not the stray bytes."""
    bundle = load_bundle(random_bundle)
    audio = _audio(12, bundle.window_samples)
    serial = encode_window_audio(audio, bundle, tmp_path / "serial", batch=4, progress=False)
    root = tmp_path / "parallel"
    parts = np.array_split(np.arange(12), 2)
    for k, rows in enumerate(parts):
        encode_window_audio(audio, bundle, root / f"part{k}", batch=4, progress=False, rows=rows)
    with open(root / "part0" / "states.bin", "ab") as f:
        f.write(b"\x01" * 12345)               # half-appended part 1
    again = encode_window_audio(audio, bundle, root, batch=4, progress=False, jobs=2)
    np.testing.assert_array_equal(np.asarray(again.x), np.asarray(serial.x))


def test_a_cache_larger_than_the_free_disk_is_refused_before_any_encoding(random_bundle,
                                                                            tmp_path):
    """More windows than this disk can hold the states of (the rows cost no memory: one
    window seen n times), serial and in parts: a clear error up front, nothing written."""
    bundle = load_bundle(random_bundle)
    probe = encode_window_audio(_audio(1, bundle.window_samples), bundle, tmp_path / "probe",
                                progress=False)
    row_bytes = (tmp_path / "probe" / "states.bin").stat().st_size
    assert row_bytes == np.asarray(probe.x).nbytes > 0
    n = shutil.disk_usage(tmp_path).free // row_bytes + 1000
    one = np.zeros(n, dtype=np.int64)
    audio = WindowSet(x=np.broadcast_to(np.zeros(bundle.window_samples, np.int16),
                                        (n, bundle.window_samples)),
                      labels=one, clip=one, copy=one, coverage=one.astype(float))
    for jobs in (1, 2):
        root = tmp_path / f"jobs{jobs}"
        with pytest.raises(CacheSpaceError, match=r"needs [\d.]+ GB more .* GB free"):
            encode_window_audio(audio, bundle, root, batch=4, progress=False, jobs=jobs)
        assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) == 0
