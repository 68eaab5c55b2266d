#!/usr/bin/env python3
"""Soak: hours of synthesised audio (keywords at known times inside long non-keyword speech,
noise and silence) through one Pipeline, faster than real time, next to a reference pass with
another chunking. Prints whether the detections are identical and the RSS growth after warm-up.

    nice -n 15 .venv/bin/python scripts/soak-test.py --hours 2 --out /work/kwsd-data/logs/soak
    (default bundle: a random-weight demo-size one; --bundle models/demo for the demo model)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "tests" / "reliability"))

from soak_run import soak  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--bundle", help="model bundle (default: random weights, demo size)")
    ap.add_argument("--threshold", type=float, default=None,
                    help="per-keyword threshold (default 0.3 for random weights, else the "
                    "bundle's)")
    ap.add_argument("--warmup-s", type=float, default=300.0)
    ap.add_argument("--out", type=Path, default=Path("/tmp/kwsd-soak"))
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    threshold = a.threshold
    bundle = a.bundle
    if bundle is None:
        from kwsd.model.bundle import make_random_bundle
        bundle = str(make_random_bundle(a.out / "random-bundle", "demo", ("yes", "no"), seed=0))
        threshold = 0.3 if threshold is None else threshold
    t0 = time.time()
    r = soak(bundle, a.hours * 3600, a.out, seed=a.seed, threshold=threshold,
             warmup_s=a.warmup_s, rss_every_s=60.0)
    s, ref = r["soak"], r["reference"]
    print(f"audio: {s['audio_s'] / 3600:.2f} h in {s['wall_s']:.0f} s wall, {s['cpu_s']:.0f} s CPU "
          f"(soak pass, {s['chunk']}-sample chunks; reference {ref['chunk']}-sample chunks)")
    print(f"events: {r['events']} ({r['detections']} detections); identical to reference: "
          f"{r['identical']}" + ("" if r["identical"] else f" first diff {r['first_difference']}"))
    print(f"keywords scheduled: {r['keywords_scheduled']}, found at their time: "
          f"{r['keywords_found']} (meaningful with a trained model only)")
    print(f"RSS: start {s['rss_start_mb']} MB, after {s['warmup_s']:.0f} s warm-up "
          f"{s['rss_warm_mb']} MB, max after {s['rss_max_after_warmup_mb']} MB, end "
          f"{s['rss_end_mb']} MB: growth {s['rss_growth_after_warmup_mb']} MB")
    print(f"VAD duty cycle {s['vad_duty_cycle']}; total {time.time() - t0:.0f} s; "
          f"details in {a.out}/result.json")
    print(json.dumps({"identical": r["identical"],
                      "rss_growth_mb": s["rss_growth_after_warmup_mb"]}))
    return 0 if r["identical"] and s["rss_growth_after_warmup_mb"] <= 5.0 else 1


if __name__ == "__main__":
    sys.exit(main())
