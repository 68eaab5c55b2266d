"""The demo recording: ~25 s of synthetic speech with a few keywords, and its truth.

`kwsd demo` plays it when there is no microphone. Rendered with held-out corpus voices (never
used in training) through the corpus TTS, so the demo is an honest, if easy, test. The truth
is an evaluation manifest (one row per keyword), so `kwsd eval --manifest demo.csv` scores it.

    python -m kwsd.corpus.demo_audio --out models/demo
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from kwsd.audio.audiofile import write_wav_16k
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.corpus import tts
from kwsd.corpus.voices import Voice, available_voices

# (voice preference list, [(text, keyword or None), ...]) per sentence; parts of a sentence are
# rendered separately (so the keyword's span is exact) and joined with short pauses.
VOICE_A = ("flite-rms", "pico-en-GB", "espeak-en-029-m3")
VOICE_B = ("pico-en-GB", "festival-ked_diphone", "flite-rms", "espeak-en-029-f3")
SCRIPT: list[tuple[tuple[str, ...], list[tuple[str, str | None]]]] = [
    (VOICE_B, [("Good morning.", None)]),
    (VOICE_A, [("Computer", "computer")]),
    (VOICE_A, [("turn on the lights.", None)]),
    (VOICE_B, [("The commuter train was late, and the opera starts at eight.", None)]),
    (VOICE_B, [("I read a story about", None), ("Voyager", "voyager"),
               ("leaving the solar system.", None)]),
    (VOICE_A, [("Operator", "operator")]),
    (VOICE_A, [("connect me to the front desk.", None)]),
    (VOICE_B, [("We had a", None), ("blueberry", "blueberry"), ("pancake.", None)]),
    (VOICE_A, [("Wildfire", "wildfire")]),
    (VOICE_B, [("That is all, thank you.", None)]),
]


def _voice(prefs: tuple[str, ...], voices: dict[str, Voice]) -> Voice:
    for name in prefs:
        if name in voices:
            return voices[name]
    raise tts.TTSUnavailable(f"none of the voices {prefs} is installed")


def make_demo(out: Path, seed: int = 3) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    voices = {v.name: v for v in available_voices()}
    pieces: list[np.ndarray] = [np.zeros(int(0.6 * SAMPLE_RATE), np.int16)]
    pos = len(pieces[0])
    rows, words = [], []
    for prefs, parts in SCRIPT:
        voice = _voice(prefs, voices)
        for j, (text, keyword) in enumerate(parts):
            audio = tts.render(voice, text)
            if keyword:
                rows.append({"keyword": keyword, "kw_start_s": round(pos / SAMPLE_RATE, 3),
                             "kw_end_s": round((pos + len(audio)) / SAMPLE_RATE, 3),
                             "in_sentence": len(parts) > 1, "voice": voice.name})
            words.append(text)
            pieces.append(audio)
            pos += len(audio)
            gap = (rng.uniform(0.08, 0.15) if j < len(parts) - 1
                   else rng.uniform(0.7, 1.1)) * SAMPLE_RATE
            pieces.append(np.zeros(int(gap), np.int16))
            pos += int(gap)
    samples = np.concatenate(pieces).astype(np.float32)
    samples += rng.standard_normal(len(samples)).astype(np.float32) * 20.0  # a quiet room
    samples = np.clip(np.round(samples), -32768, 32767).astype(np.int16)
    out.mkdir(parents=True, exist_ok=True)
    wav, truth = out / "demo.wav", out / "demo.csv"
    write_wav_16k(wav, samples)
    transcription = " ".join(words)
    with truth.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["file", "keyword", "kw_start_s", "kw_end_s",
                                          "in_sentence", "voice", "transcription"])
        w.writeheader()
        for r in rows:
            w.writerow({"file": wav.name, **r, "transcription": transcription})
    return wav, truth


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("models/demo"))
    p.add_argument("--seed", type=int, default=3)
    a = p.parse_args(argv)
    wav, truth = make_demo(a.out, a.seed)
    print(f"wrote {wav} and {truth}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
