"""`kwsd bench`: real-time factor, per-part time, accuracy, memory and load time.

For the real DistilHuBERT size and the demo size (random weights: speed does not depend on
them), streams speech-like audio through encoder + head with the default 1 s window and 200 ms
hop, at 1 and 2 torch threads, for each precision/caching variant; reports each variant's
difference from the plain fp32 per-window computation, recommends the fastest variant within
the accuracy limits, and measures that one's load time and peak RSS in a fresh process.
Numbers are measured on whatever else the machine is doing: the load average is reported.

The shipped demo bundle (models/demo) is measured too, on real speech (real-train, else its
demo.wav): CPU-s per audio second as it runs by default, with its two-stage cascade off and on,
and stage one's pass rate; the real-size encoder's cascade cost is then measured at that very
pass pattern (kwsd.evaluation.cascade_bench).

`kwsd bench --bundle DIR` measures one real bundle instead: every precision on real speech
(`../shared/data/real-train`, never real-dev), through the daemon's own decision path, and
names the fastest one whose decisions match fp32's; `--choose` writes it into DIR/kws.json as
`streaming.precision`, with what was measured (kwsd.evaluation.precision).

`kwsd bench --streams N[,M...] [--device cuda] [--bundle DIR | --configs demo]` measures how
many simultaneous speaking real-time streams one process sustains, through the daemon's
pipelines and its cross-stream batching scheduler (kwsd.engine.capacity): windows per second,
latency p50/p95, batch sizes; `--max-batch 1` measures the same without batching.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HELP = "measure real-time factor, memory and load time"

TARGETS = {"real": 0.10, "demo": 0.02}
# A variant may be recommended only if it stays this close to the fp32 per-window computation.
MAX_POSTERIOR_DIFF = 1e-3
MAX_REL_STATE_DIFF = 0.02


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--configs", default="real,demo", help="comma list of real, demo")
    parser.add_argument("--seconds", type=float, default=4.0,
                        help="audio seconds streamed per measurement (after warm-up)")
    parser.add_argument("--threads", default="1,2", help="torch thread counts to measure")
    parser.add_argument("--variants", default="",
                        help="comma list (default: all); see kwsd.model.bench.VARIANTS")
    parser.add_argument("--accuracy-wav", action="append", default=[], metavar="WAV",
                        help="measure accuracy on this recording (repeatable; default: "
                             "synthetic speech-like audio)")
    streams = parser.add_argument_group(
        "capacity",
        "--streams N[,M...] runs N real-time speaking streams in this process (the daemon's "
        "pipelines and batching scheduler, no gRPC) for --seconds each (default 20 here) and "
        "reports whether real time held, windows per second and latency p50/p95")
    streams.add_argument("--streams", default="", metavar="N[,M...]",
                         help="stream counts to measure, in order; stops after the first "
                              "that does not hold")
    streams.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                         help="where the batches run (engine.device)")
    streams.add_argument("--max-batch", type=int, default=32,
                         help="engine.max_batch (1 = no batching on the CPU)")
    streams.add_argument("--max-wait-ms", type=float, default=20.0, help="engine.max_wait_ms")
    streams.add_argument("--batch-workers", type=int, default=2, help="engine.batch_workers")
    streams.add_argument("--precision", default="",
                         help="engine.precision (default: the bundle's)")
    choose = parser.add_argument_group(
        "a real bundle's precision",
        "--bundle DIR measures every precision of that bundle on real speech (speed: --seconds "
        "per run, 1 thread) and names the fastest whose decisions match fp32's; --choose "
        "writes it into DIR/kws.json (streaming.precision, and what was measured)")
    choose.add_argument("--bundle", type=Path, default=None, metavar="DIR",
                        help="measure this bundle's precisions (instead of random bundles)")
    choose.add_argument("--choose", action="store_true",
                        help="write the chosen precision and the measurements into "
                             "DIR/kws.json")
    choose.add_argument("--speech", type=Path, default=None, metavar="REAL_TRAIN",
                        help="recordings in real-train layout (default "
                             "../shared/data/real-train; absent: the bundle's demo.wav, else "
                             "synthetic speech). real-dev is refused: it is evaluation-only")
    choose.add_argument("--speech-seconds", type=float, default=None,
                        help="seconds of real-train speech the decisions are compared on "
                             "(default 180)")
    choose.add_argument("--repeats", type=int, default=3,
                        help="speed runs per precision, interleaved; the median counts (3)")
    choose.add_argument("--max-posterior-diff", type=float, default=None,
                        help="largest posterior difference from fp32 a precision may have "
                             "(default 0.02)")
    choose.add_argument("--cascade-only", action="store_true",
                        help="--bundle: measure only the cascade (off and on, pass rate), not "
                             "the precisions")
    parser.add_argument("--no-shipped", action="store_true",
                        help="skip the shipped demo bundle and the cascade figures")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _run_json(args: list[str]) -> dict[str, Any]:
    env = dict(os.environ)
    pkg_root = str(Path(__file__).resolve().parents[2])  # the folder holding `kwsd`
    env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "kwsd.model.bench", *args], env=env,
                          stdout=subprocess.PIPE, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"bench subprocess {args[0]} failed with exit code {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _recommend(variants: dict[str, Any]) -> str:
    def ok(v: dict[str, Any]) -> bool:
        acc = v["vs_window_fp32"]
        return (acc["max_abs_posterior_diff"] <= MAX_POSTERIOR_DIFF
                and acc["max_rel_last_state_diff"] <= MAX_REL_STATE_DIFF)

    def one_thread_cpu(v: dict[str, Any]) -> float:
        runs = [r for r in v["runs"] if r["threads"] == 1] or v["runs"]
        return runs[0]["cpu_rtf"]

    good = {k: v for k, v in variants.items() if ok(v)}
    return min(good, key=lambda k: one_thread_cpu(good[k]))


def run_bundle(args: argparse.Namespace) -> int:
    """`--bundle DIR [--choose]`: measure the bundle's precisions on real speech."""
    from kwsd.evaluation.precision import (
        DEFAULT_REAL_TRAIN,
        DEFAULT_SECONDS,
        MAX_POSTERIOR_DIFF,
        choose_for_bundle,
        format_choice,
    )

    command = ["kwsd", "bench", "--bundle", str(args.bundle)]
    if args.choose:
        command.append("--choose")
    if args.speech is not None:
        command += ["--speech", str(args.speech)]
    for flag, value in (("--speech-seconds", args.speech_seconds),
                        ("--max-posterior-diff", args.max_posterior_diff)):
        if value is not None:
            command += [flag, f"{value:g}"]
    command += ["--seconds", f"{args.seconds:g}", "--repeats", str(args.repeats)]
    if args.cascade_only:
        return _bundle_cascade(args)
    try:
        choice = choose_for_bundle(
            args.bundle, real_train=args.speech or DEFAULT_REAL_TRAIN,
            seconds=DEFAULT_SECONDS if args.speech_seconds is None else args.speech_seconds,
            speed_seconds=args.seconds, repeats=max(1, args.repeats),
            bound=MAX_POSTERIOR_DIFF if args.max_posterior_diff is None
            else args.max_posterior_diff,
            write=args.choose, command=" ".join(command))
    except (ValueError, OSError) as exc:  # a bad bundle, real-dev, unreadable audio
        print(f"kwsd bench: {exc}", file=sys.stderr)
        return 2
    cascade = _cascade_json(args.bundle, args) if _has_cascade(args.bundle) else None
    if cascade is not None:
        choice = {**choice, "cascade": cascade}
    if args.json:
        json.dump(choice, sys.stdout, indent=1)
        print()
    else:
        print(format_choice(choice))
        print(f"written to {args.bundle / 'kws.json'}: streaming.precision = "
              f"{choice['chosen']!r}" if args.choose else
              "(not written: add --choose to record it in the bundle)")
        if cascade is not None:
            print(_format_cascade(cascade))
    return 0


def _has_cascade(bundle: Path) -> bool:
    try:
        meta = json.loads((bundle / "kws.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return "cascade" in (meta.get("streaming") or {})


def _cascade_json(bundle: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The bundle's cascade on real speech, in its own process (kwsd.model.bench cascade)."""
    cmd = ["cascade", "--bundle", str(bundle), "--seconds", f"{args.seconds:g}",
           "--repeats", str(max(1, args.repeats))]
    if args.speech is not None:
        cmd += ["--real-train", str(args.speech)]
    return _run_json(cmd)


def _bundle_cascade(args: argparse.Namespace) -> int:
    if not _has_cascade(args.bundle):
        print(f"kwsd bench: {args.bundle}: no streaming.cascade in kws.json (kwsd cascade fit "
              "makes one)", file=sys.stderr)
        return 2
    result = _cascade_json(args.bundle, args)
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print(_format_cascade(result))
    return 0


def _format_cascade(c: dict[str, Any]) -> str:
    lines = [f"cascade of {c.get('model', c.get('bundle', ''))} ({c['precision']}, default "
             f"{c['default']}) on {c['audio']['seconds']} s of {c['audio']['source']}, "
             f"{c['runs']} x {c['audio_s_per_run']} s, 1 thread:"]
    for m in ("off", "on"):
        if m in c:
            r = c[m]
            extra = f", stage one passes {r['pass_rate']:.1%} of windows" if m == "on" else ""
            lines.append(f"  cascade {m:3}: {r['cpu_s_per_audio_s']:.4f} CPU-s per audio s"
                         f"{extra}")
    return "\n".join(lines)


def run_streams(args: argparse.Namespace) -> int:
    """`--streams N[,M...]`: real-time speaking streams through one process."""
    import torch

    from kwsd.config import ConfigError
    from kwsd.engine.capacity import measure_streams
    from kwsd.model.bundle import ModelBundleError, load_bundle, make_random_bundle
    from kwsd.model.config import EncoderConfig, demo_config

    try:
        counts = [int(x) for x in args.streams.split(",") if x]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        print(f"kwsd bench: --streams takes positive counts, e.g. 8,16,32; got "
              f"{args.streams!r}", file=sys.stderr)
        return 2
    torch.set_num_threads(int(args.threads.split(",")[0]))
    seconds = args.seconds if args.seconds != 4.0 else 20.0  # the speed default is too short
    results = []
    with tempfile.TemporaryDirectory(prefix="kwsd-bench-") as tmp:
        try:
            if args.bundle is not None:
                bundle = load_bundle(args.bundle)
            else:
                name = args.configs.split(",")[0]
                cfg = demo_config() if name == "demo" else EncoderConfig()
                bundle = load_bundle(make_random_bundle(Path(tmp) / name, cfg,
                                                        ["yes", "no", "stop", "go"]))
        except ModelBundleError as exc:
            print(f"kwsd bench: {exc}", file=sys.stderr)
            return 2
        for n in counts:
            try:
                r = measure_streams(bundle, n, seconds=seconds, max_batch=args.max_batch,
                                    max_wait_ms=args.max_wait_ms, device=args.device,
                                    batch_workers=args.batch_workers,
                                    precision=args.precision)
            except ConfigError as exc:
                print(f"kwsd bench: {exc}", file=sys.stderr)
                return 2
            results.append(r)
            if not args.json:
                b = r.get("batch") or {}
                print(f"{n:4d} streams {'held' if r['held'] else 'NOT held':8s} "
                      f"{r['windows_per_s']:7.1f} windows/s  latency p50 "
                      f"{r['latency_p50_ms']} ms p95 {r['latency_p95_ms']} ms  cpu "
                      f"{r['cpu_percent']}%  load {r['loadavg'][0]}"
                      + (f"  batch mean {b['mean_batch']} max {b['max_batch_seen']}"
                         if b else "  (no batching)"), flush=True)
            if not r["held"]:
                break
    held = [r["streams"] for r in results if r["held"]]
    summary = {"bundle": str(args.bundle or args.configs.split(",")[0]),
               "held_up_to": max(held) if held else 0, "runs": results}
    if args.json:
        json.dump(summary, sys.stdout, indent=1)
        print()
    else:
        print(f"real time held up to {summary['held_up_to']} speaking streams "
              f"({results[0]['device']}, max_batch {results[0]['max_batch']})")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.streams:
        return run_streams(args)
    if args.choose and args.bundle is None:
        print("kwsd bench: --choose needs --bundle DIR (the bundle to write the precision "
              "into)", file=sys.stderr)
        return 2
    if args.bundle is not None:
        return run_bundle(args)
    from kwsd.model.bench import VARIANTS
    from kwsd.model.bundle import make_random_bundle
    from kwsd.model.config import EncoderConfig, demo_config

    configs = [c for c in args.configs.split(",") if c]
    bad = sorted(set(configs) - set(TARGETS))
    if bad:
        print(f"kwsd bench: unknown configs {bad}; choose from {sorted(TARGETS)}",
              file=sys.stderr)
        return 2
    variants = args.variants or ",".join(VARIANTS)
    if "window-fp32" not in variants.split(","):
        variants = "window-fp32," + variants  # the reference every variant is compared with
    result: dict[str, Any] = {
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(),
                    "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
        "criteria": {"recommend_if_max_abs_posterior_diff_le": MAX_POSTERIOR_DIFF,
                     "recommend_if_max_rel_last_state_diff_le": MAX_REL_STATE_DIFF,
                     "rtf": "wall seconds per audio second while streaming",
                     "cpu_rtf": "process CPU seconds per audio second (robust to other load "
                                "at 1 thread)"},
        "configs": {},
    }
    import torch

    result["machine"]["torch"] = torch.__version__
    shipped = None
    if not args.no_shipped:
        from kwsd.config import default_model_path

        demo = default_model_path()
        if _has_cascade(demo):
            shipped = _cascade_json(demo, args)
            result["shipped_demo"] = shipped
    with tempfile.TemporaryDirectory(prefix="kwsd-bench-") as tmp:
        for name in configs:
            cfg = demo_config() if name == "demo" else EncoderConfig()
            path = make_random_bundle(Path(tmp) / name, cfg, ["yes", "no", "stop", "go"])
            wavs = [a for w in args.accuracy_wav for a in ("--accuracy-wav", w)]
            speed = _run_json(["speed", "--bundle", str(path), "--seconds", str(args.seconds),
                               "--threads", args.threads, "--variants", variants, *wavs])
            best = _recommend(speed["variants"])
            footprint = _run_json(["footprint", "--bundle", str(path), "--variant", best])
            runs = {r["threads"]: r for r in speed["variants"][best]["runs"]}
            one = runs.get(1)
            cascade = None
            if shipped is not None and shipped.get("pass_trace"):
                trace = Path(tmp) / "trace.txt"
                trace.write_text(shipped["pass_trace"])
                cascade = _run_json(["pattern", "--bundle", str(path), "--variant", best,
                                     "--trace-file", str(trace), "--seconds",
                                     str(args.seconds)])
                cascade["pattern"] = (f"stage one's pass pattern of the shipped demo bundle "
                                      f"on {shipped['audio']['source']} speech")
            result["configs"][name] = {
                "target_rtf_one_core": TARGETS[name], "recommended": best,
                "recommended_rtf": {t: r["rtf"] for t, r in runs.items()},
                "recommended_cpu_rtf": {t: r["cpu_rtf"] for t, r in runs.items()},
                "meets_target_cpu_rtf_one_thread":
                    None if one is None else one["cpu_rtf"] <= TARGETS[name],
                **({"cascade": cascade} if cascade is not None else {}),
                "footprint": footprint, **speed}
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        _print_table(result)
    return 0


def _print_table(result: dict[str, Any]) -> None:
    m = result["machine"]
    print(f"{m['cpu']} ({m['cores']} cores), torch {m['torch']}, load average "
          f"{m['loadavg_before'][0]} -> {m['loadavg_after'][0]}")
    if "shipped_demo" in result:
        print("\nshipped " + _format_cascade(result["shipped_demo"]))
    for name, c in result["configs"].items():
        fp = c["footprint"]
        if "cascade" in c:
            cc = c["cascade"]
            print(f"\n{name}: cascade at the shipped demo's pass pattern "
                  f"({cc['pass_rate']:.1%} of windows, {cc['precision']}, conv cache "
                  f"{cc['cache_conv']}): {cc['cpu_s_per_audio_s']:.4f} CPU-s per audio s")
        print(f"\n{name}: {c['params_m']}M params, {c['feat_extract_norm']} norm, window "
              f"{c['window_ms']} ms, hop {c['hop_ms']} ms; load {fp['load_bundle_s']} s, peak RSS "
              f"{fp['peak_rss_mib']} MiB ({c['recommended']}); target RTF "
              f"{c['target_rtf_one_core']}")
        print(f"  {'variant':22} {'thr':>3} {'rtf':>7} {'cpu_rtf':>7}  per audio s (ms): conv "
              "posconv transformer head   | diff vs window-fp32: posterior, rel state max/mean")
        for v, d in c["variants"].items():
            acc = d["vs_window_fp32"]
            for r in d["runs"]:
                p = r["per_part_ms_per_audio_s"]
                mark = "*" if v == c["recommended"] else " "
                print(f" {mark}{v:22} {r['threads']:>3} {r['rtf']:7.4f} {r['cpu_rtf']:7.4f}  "
                      f"{p['conv']:7.1f} {p['posconv']:7.1f} {p['transformer']:7.1f} "
                      f"{p['head']:6.1f}   | {acc['max_abs_posterior_diff']:.1e}, "
                      f"{acc['max_rel_last_state_diff']:.1e}/{acc['mean_rel_last_state_diff']:.1e}")
