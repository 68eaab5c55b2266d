"""A tiny espeak-ng corpus in the synthetic-corpus manifest format (rendered once per session;
the distillation and head-training suites share it)."""

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from kwsd.audio.audiofile import read_audio_16k, write_wav_16k

KEYWORDS = ["computer", "voyager"]
VOICES = {"en-us": "train", "en-gb": "train", "en-gb-scotland": "heldout"}
NEGATIVES = ["commuter", "voyage", "the weather is nice today", "open the door", "compu"]
SENTENCES = [("hey", "what time is it"), ("please call", "now")]


def _say(text: str, voice: str, path: Path, speed: int = 165) -> np.ndarray:
    raw = path.with_suffix(".raw.wav")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(raw), text],
                   check=True, capture_output=True)
    samples = read_audio_16k(raw)
    raw.unlink()
    return samples


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("corpus")
    rows = []
    lead = np.zeros(3200, np.int16)
    for voice, split in VOICES.items():
        d = root / voice
        d.mkdir()
        for kw in KEYWORDS:
            for speed in (140, 175):
                name = f"{voice}/kw-{kw}-{speed}.wav"
                s = _say(kw, voice, root / name, speed)
                write_wav_16k(root / name, np.concatenate([lead, s, lead]))
                rows.append((name, kw, 0.2, 0.2 + len(s) / 16000, voice, kw, "keyword", split))
            pre, post = SENTENCES[len(rows) % 2]
            a, k, b = (_say(t, voice, root / f"{voice}/tmp.wav") for t in (pre, kw, post))
            name = f"{voice}/kwsent-{kw}.wav"
            write_wav_16k(root / name, np.concatenate([lead, a, k, b, lead]))
            start = (len(lead) + len(a)) / 16000
            rows.append((name, kw, start, start + len(k) / 16000, voice, f"{pre} {kw} {post}",
                         "keyword_sentence", split))
        for i, text in enumerate(NEGATIVES):
            name = f"{voice}/neg-{i}.wav"
            s = _say(text, voice, root / name)
            write_wav_16k(root / name, np.concatenate([lead, s, lead]))
            rows.append((name, "_unknown_", None, None, voice, text, "word", split))
    (root / "noise").mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        name = f"noise/noise-{i}.wav"
        write_wav_16k(root / name, (rng.standard_normal(24000) * 300).astype(np.int16))
        rows.append((name, "_silence_", None, None, "noise", "noise", "noise",
                     "train" if i < 3 else "heldout"))
    with open(root / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "label", "kw_start_s", "kw_end_s", "engine", "voice", "speaker",
                    "text", "kind", "variant", "duration_s", "split"])
        for name, label, a, b, voice, text, kind, split in rows:
            w.writerow([name, label, "" if a is None else f"{a:.3f}",
                        "" if b is None else f"{b:.3f}", "espeak", voice, voice, text, kind,
                        "", "", "val" if split == "heldout" else "train"])
    return root / "manifest.csv"
