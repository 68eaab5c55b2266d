#!/usr/bin/env python3
"""Build models/negatives/: real keyword-free speech that enrollment calibrates thresholds on.

A fixed, seeded selection from ../shared/data/real-train (never real-dev, which is evaluation
only): WUW-II callers saying their name (telephone, CC BY-SA 4.0), LibriSpeech read speech
(CC BY 4.0), Precise community wake phrases and near misses (public-domain waivers),
crowd-sourced "alexa"/"jarvis"/"snowboy" (Apache-2.0), spoken digits (CC BY-SA 4.0) and Speech
Commands words (CC BY 4.0). Each group becomes one 16 kHz Ogg Opus stream (clips joined with
0.25 s of silence; lossy, which is fine for negatives) listed clip by clip in sources.csv.

    nice .venv/bin/python scripts/make-negative-bank.py [--data ../shared/data/real-train]
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

import numpy as np
import soundfile as sf
from kwsd.audio.audiofile import read_audio_16k

GROUPS = {  # name: (manifest, row filter, seconds wanted)
    "wuw-train-names": ("wuw-train.csv", lambda r: not r["keyword"], 150.0),
    "librispeech": ("speech.csv", lambda r: "/librispeech/" in r["file"], 180.0),
    "precise": ("speech.csv", lambda r: "/precise/" in r["file"], 60.0),
    "wake-phrases": ("speech.csv", lambda r: "/wake-phrases/" in r["file"], 60.0),
    "digits": ("speech.csv", lambda r: "/digits/" in r["file"], 30.0),
    "speech-commands": ("speech.csv", lambda r: "/speech-commands/" in r["file"], 30.0),
}
LICENCES = {"wuw-train-names": "CC BY-SA 4.0 (Wake-Up-Word Corpus II, V. Kepuska et al., FIT)"}
GAP = np.zeros(4000, dtype=np.int16)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/real-train")
    ap.add_argument("--out", default="models/negatives")
    args = ap.parse_args()
    data, out = Path(args.data), Path(args.out)
    if "real-dev" in str(data.resolve()):
        raise SystemExit("real-dev is evaluation only")
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(12)
    listing = []
    for group, (manifest, keep, seconds) in GROUPS.items():
        rows = [r for r in csv.DictReader(open(data / manifest)) if keep(r)]
        rng.shuffle(rows)
        parts, total = [], 0.0
        for r in rows:
            if total >= seconds:
                break
            x = read_audio_16k(data / r["file"])
            if len(x) > 16000 * 12:
                x = x[: 16000 * 12]
            listing.append({"group": group, "offset_s": round(sum(map(len, parts)) / 16000, 3),
                            "duration_s": round(len(x) / 16000, 3), "file": r["file"],
                            "license": r.get("license") or LICENCES[group]})
            parts += [x, GAP]
            total += len(x) / 16000
        audio = np.concatenate(parts)
        sf.write(out / f"{group}.ogg", audio, 16000, format="OGG", subtype="OPUS")
        print(f"{group}: {total:.0f} s from {len([p for p in listing if p['group'] == group])} "
              f"clips -> {(out / f'{group}.ogg').stat().st_size / 1e3:.0f} kB")
    with open(out / "sources.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(listing[0]))
        w.writeheader()
        w.writerows(listing)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
