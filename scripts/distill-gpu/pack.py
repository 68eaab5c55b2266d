#!/usr/bin/env python3
"""Pack what a GPU machine needs to distil the demo encoder into one small folder.

Why: such a machine may reach no package index and take little data along (64 MiB on the one
this project is lent now), while the teacher wheels are 142 MB and the training audio 0.4 GB as
16-bit PCM. So the folder holds:

  teacher.safetensors   the Whisper base encoder, int8 per row (21 MB; `kwsd distill
                        export-teacher`, which also reports its closeness to the wheels')
  audio/real/*.ogg      the real manifest's training split, Opus at about 9 kbit/s at its
                        own rate (8 kHz telephone, 16 kHz other speech)
  audio/synthetic/*.ogg that many synthetic clips of the corpus' training split
  sources.csv           which file each .ogg came from
  rirs.npz              the augmenter's RIR banks (`kwsd.corpus.augment.save_rir_bank`)
  wheels/               soundfile, cffi, pycparser, soxr for the GPU machine's Python

The teacher targets are computed there from the decoded Opus audio, so student and teacher hear
the same samples; the codec is one more channel the student learns to hear through.

    .venv/bin/python scripts/distill-gpu/pack.py --real /work/kwsd-data/real/manifest.csv \\
        --corpus /work/kwsd-data/corpus/manifest.csv --synthetic 300 --out .gpu-distill
Then scripts/distill-gpu/run.sh on the GPU machine (see its header).
"""

from __future__ import annotations

import argparse
import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile
from kwsd.audio.audiofile import AudioFileError, read_audio
from kwsd.corpus.augment import save_rir_bank
from kwsd.distillation import distill as D
from kwsd.distillation import teacher as T

WHEELS = ("soundfile==0.14.0", "cffi==2.1.1", "pycparser==3.12", "soxr==1.1.0")
# libsndfile's Opus compression level -> bit rate (measured: 0.96 ~ 17, 0.99 ~ 9, 1.0 ~ 7 kbit/s)
LEVEL = {8000: 0.99, 16000: 0.99}


def to_opus(path: Path, out: Path) -> int:
    samples, rate = read_audio(path)
    if rate not in (8000, 12000, 16000, 24000, 48000):
        from kwsd.audio.convert import resample

        samples, rate = resample(samples, rate, 16000), 16000
    buf = io.BytesIO()
    soundfile.write(buf, samples, rate, format="OGG", subtype="OPUS",
                    compression_level=LEVEL.get(rate, 0.99))
    out.write_bytes(buf.getvalue())
    return len(samples) * 16000 // rate


def download_wheels(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [f"--platform={p}" for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64",
                                              "manylinux_2_17_x86_64", "manylinux2014_x86_64")]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp",
                    *platforms, "-d", str(folder), *WHEELS], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real", type=Path, required=True,
                    help="real manifest (python -m kwsd.corpus.real); its train split is packed")
    ap.add_argument("--corpus", type=Path, default=None, help="synthetic corpus manifest")
    ap.add_argument("--synthetic", type=int, default=300, help="synthetic clips to pack")
    ap.add_argument("--out", type=Path, default=Path(".gpu-distill"))
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    picks = [("real", p) for p in D.select_from_manifest(args.real)]
    if args.corpus is not None and args.synthetic:
        synthetic = D.select_from_manifest(args.corpus, engine_share={"espeak": 0.2,
                                                                      "noise": 0.05},
                                           seed=args.seed)
        order = np.random.default_rng(args.seed).permutation(len(synthetic))
        picks += [("synthetic", synthetic[int(i)]) for i in order[: args.synthetic]]
    samples_16k = 0
    with open(args.out / "sources.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["packed", "source"])
        for i, (kind, path) in enumerate(picks):
            target = args.out / "audio" / kind / f"{i:05d}.ogg"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.is_file():
                try:
                    samples_16k += to_opus(path, target)
                except AudioFileError as exc:
                    print(f"skipped {path}: {exc}", file=sys.stderr)
                    continue
            writer.writerow([target.relative_to(args.out), path])
            if i % 500 == 0:
                print(f"[pack] {i}/{len(picks)} files", flush=True)
    if not (args.out / "teacher.safetensors").is_file():
        T.save_teacher_weights(args.out / "teacher.safetensors", int8=True)
    save_rir_bank(args.out / "rirs.npz")
    download_wheels(args.out / "wheels")
    sizes = {name: sum(p.stat().st_size for p in (args.out / name).rglob("*") if p.is_file())
             for name in ("audio", "wheels")}
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"[pack] {len(picks)} files, {samples_16k / 16000 / 3600:.2f} h newly packed; audio "
          f"{sizes['audio'] / 1e6:.1f} MB, wheels {sizes['wheels'] / 1e6:.1f} MB, all "
          f"{total / 2**20:.1f} MiB in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
