#!/usr/bin/env python3
"""How often enrolled keywords fire per hour, for several bank targets (real-train only).

How channel and bank differ for enrolled keywords (until session 15 the default target was
chosen on this; now `scripts/eval-enroll.py --select ... --choose-from` chooses it with issue
12's own protocol on real-train's held-out callers: this measure could not tell 0.1 from 0.3
with kwsd-demo-11's encoder). The five WUW keywords are enrolled from real-train
callers (3-shot: 3 draws of 3 callers; 1-shot: 5 callers each), callers of kwsd.corpus.real's
held-out split excluded; each keyword's threshold is calibrated on the negative bank for every
target, and its detections are counted on two kinds of speech the bank does not hold:
- telephone: the other real-train callers' recordings (their names, the other keywords alone
  and in sentences that do not say this keyword): speech from the examples' own channel;
- other: real-train's other speech and noise (speech.csv).
real-dev is never read. Window features are cached (--cache, keyed by the encoder's hash).

    nice .venv/bin/python scripts/enroll-fa-rates.py [--model models/demo] [--targets 0.1,0.2,0.5,1]
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import numpy as np
from kwsd.audio.audiofile import read_audio_16k
from kwsd.config import DecisionConfig
from kwsd.corpus.real import WUW_VAL_PERCENT
from kwsd.engine.decision import model_decision
from kwsd.enrollment import negatives
from kwsd.enrollment.detector import EnrolledSet
from kwsd.enrollment.enroll import bank_scores, enroll
from kwsd.enrollment.features import encoder_id
from kwsd.enrollment.recording import recorded_files, replay, window_scores
from kwsd.evaluation.manifest import count_keyword
from kwsd.head_training.dataset import speaker_held_out

KEYWORDS = ["operator", "think engine", "onword", "wildfire", "voyager"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--train", default="../shared/data/real-train")
    ap.add_argument("--targets", default="0.05,0.1,0.2,0.3,0.5,1,2")
    ap.add_argument("--cache", default="/work/kwsd-data/enroll-fa-rates-cache")
    args = ap.parse_args()
    if "real-dev" in str(Path(args.train).resolve()):
        raise SystemExit("real-dev is evaluation only")
    import torch

    torch.set_num_threads(1)
    from kwsd.model.bundle import load_bundle

    bundle = load_bundle(args.model)
    decision = model_decision(bundle, DecisionConfig())
    targets = [float(t) for t in args.targets.split(",")]
    train = Path(args.train).resolve()
    cache = Path(args.cache) / encoder_id(bundle).split(":")[-1]
    cache.mkdir(parents=True, exist_ok=True)
    in_bank = negatives.bank_source_files()
    wuw = [r for r in csv.DictReader(open(train / "wuw-train.csv"))
           if not speaker_held_out(r["speaker"], WUW_VAL_PERCENT) and r["file"] not in in_bank]
    other = [r for r in csv.DictReader(open(train / "speech.csv")) if r["file"] not in in_bank]
    recs = recorded_files(bundle, {r["file"]: train / r["file"] for r in wuw}, cache,
                          "telephone")
    recs.update(recorded_files(bundle, {r["file"]: train / r["file"] for r in other}, cache,
                               "other"))
    other_files = [r["file"] for r in other]

    def rates(examples: list[dict], keyword: str) -> dict | None:
        res = enroll(bundle, keyword, [read_audio_16k(train / r["file"]) for r in examples])
        if not res.ok:
            return None
        one = EnrolledSet([res.keyword])
        speakers = {r["speaker"] for r in examples}
        tel = [r["file"] for r in wuw if r["speaker"] not in speakers and r["keyword"] != keyword
               and count_keyword(r["transcription"], keyword) == 0]
        out = {}
        bank = bank_scores(bundle, res.keyword)     # once; each target only refits the tail
        thresholds = {t: negatives.calibrate(*bank, t)["threshold"] for t in targets}
        for kind, files in (("telephone", tel), ("other", other_files)):
            hours = sum(recs[f].duration_s for f in files) / 3600
            scores = {f: window_scores(recs[f], one) for f in files}
            for t, th in thresholds.items():
                n = sum(len(replay(recs[f], one.names, {keyword: th}, scores[f], decision))
                        for f in files)
                out[(kind, t)] = n / hours
        return out

    alone = {k: [r for r in wuw if r["keyword"] == k and r["in_sentence"] == "False"]
             for k in KEYWORDS}
    found: dict[str, list[dict]] = {"3": [], "1": []}
    for d in range(3):
        rng = random.Random(1000 + d)
        for k in KEYWORDS:
            pool = list(alone[k])
            rng.shuffle(pool)
            if (r := rates(pool[:3], k)) is not None:
                found["3"].append(r)
        print(f"3-shot draw {d + 1}/3 done", file=sys.stderr, flush=True)
    rng = random.Random(7)
    for k in KEYWORDS:
        pool = list(alone[k])
        rng.shuffle(pool)
        for r in pool[:5]:
            if (x := rates([r], k)) is not None:
                found["1"].append(x)
        print(f"1-shot {k} done", file=sys.stderr, flush=True)

    print(f"\nmodel {bundle.model_id} (encoder {encoder_id(bundle)}); false alarms per hour and "
          "keyword, mean over enrolled keywords")
    print("| bank target | 3-shot: telephone | 3-shot: other speech | 1-shot: telephone "
          "| 1-shot: other speech |")
    print("|---|---|---|---|---|")
    for t in targets:
        cells = [f"{np.mean([x[(kind, t)] for x in found[n]]):.2f}"
                 for n in ("3", "1") for kind in ("telephone", "other")]
        print(f"| {t:g} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
