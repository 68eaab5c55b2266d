#!/usr/bin/env python3
"""Measure few-shot enrollment on real callers and print one table (issue 12's protocol).

Evaluation data: ../shared/data/real-dev (wuw-dev.csv and speech/) - evaluation only.
Enrollment examples: ../shared/data/real-train/wuw-train.csv (the "alone" utterances) for the
speaker-independent rows; for personal 1-shot, each dev caller's own "alone" utterance enrolls
and that caller's sentence utterance is searched (the protocol's definition).

Rows:
- 3-shot: each of the five WUW keywords enrolled from 3 random wuw-train callers (5 draws; mean
  and spread), thresholds set automatically (negative bank, --fa-target per hour), detections
  counted on wuw-dev, false alarms on wuw-dev + real-dev/speech;
- text-only: each keyword enrolled from 4 synthetic renderings (kwsd.enrollment.text: flite,
  Pico, ... voices), thresholds as above;
- personal 1-shot: recall on the caller's own sentences, false alarms of each caller's set on
  every keyword-free wuw-dev file + real-dev/speech;
- the same two with a Raven-style MFCC + DTW baseline (evaluation only): 13 MFCCs per 10 ms,
  mean-normalised, the same subsequence DTW, thresholds from the same negative bank and target.

Choosing the detector's settings (detector.AGREE, dtw.OFF_SPEED_PENALTY) is done with
`--select DIR` instead: the same protocol with real-train only, its held-out callers (the rule
kwsd.corpus.real uses, one in eight) and 5 minutes of its held-out other speech as the
evaluation side, the remaining callers as enrollment examples; real-dev stays unseen until the
settings are fixed. `--select-fold K` makes another eighth of the callers the evaluation side
(more hours: one fold gives ~0.2 h, a false alarm per draw is ~5/h); the negative bank's own
files are never on that side.

Each dev file is run once through the daemon's Pipeline (VAD gate, streaming windows) and its
window features cached (/work/kwsd-data/enroll-eval-cache, keyed by the encoder's hash); every
enrollment is then replayed through the daemon's Decision.

The model's default false-alarm targets (kws.json `enrollment`) are chosen with the same
protocol on real-train: `--select DIR/fK --select-fold K --fa-target T --json DIR/fK-tT.json`
for the 8 folds and a few targets, then `--choose-from DIR/f*-t*.json`: pooled over the folds,
the largest target at which 3-shot keywords fire at most CHOOSE_MAX_PER_H (issue 12's bound;
used for two or more examples) and the largest at which personal 1-shot keywords do (used for
one example); the last stage of scripts/make-demo-model.sh.

    nice -n 10 .venv/bin/python scripts/eval-enroll.py [--draws 5] [--fa-target 0.2]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from pathlib import Path

import numpy as np
from kwsd.audio.audiofile import read_audio_16k
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.config import DecisionConfig
from kwsd.engine.decision import model_decision
from kwsd.enrollment import negatives
from kwsd.enrollment.detector import EnrolledKeyword, EnrolledSet
from kwsd.enrollment.enroll import default_fa_target, enroll
from kwsd.enrollment.features import encoder_id, normalise
from kwsd.enrollment.recording import StreamRecord, recorded_files, replay, window_scores
from kwsd.enrollment.trim import trim
from kwsd.evaluation.manifest import read_eval_manifest
from kwsd.evaluation.scoring import Detection, score

KEYWORDS = ["operator", "think engine", "onword", "wildfire", "voyager"]


# ---------------------------------------------------------------------------------------------
# Raven-style MFCC baseline (evaluation only)

def _mel_filters(n_fft: int = 512, n_mels: int = 26) -> np.ndarray:
    def mel(f):
        return 2595 * np.log10(1 + f / 700)

    def hz(m):
        return 700 * (10 ** (m / 2595) - 1)

    pts = hz(np.linspace(mel(0), mel(SAMPLE_RATE / 2), n_mels + 2))
    bins = np.floor((n_fft + 1) * pts / SAMPLE_RATE).astype(int)
    fb = np.zeros((n_mels, n_fft // 2 + 1))
    for i in range(n_mels):
        a, b, c = bins[i], bins[i + 1], bins[i + 2]
        fb[i, a:b] = (np.arange(a, b) - a) / max(b - a, 1)
        fb[i, b:c] = (c - np.arange(b, c)) / max(c - b, 1)
    return fb


_FB = _mel_filters()
_DCT = np.cos(np.pi / 26 * (np.arange(26)[None] + 0.5) * np.arange(13)[:, None])


def mfcc(samples: np.ndarray) -> np.ndarray:
    """13 MFCCs per 10 ms (25 ms frames, pre-emphasis, Hamming), like python_speech_features."""
    x = samples.astype(np.float64) / 32768.0
    x = np.append(x[0], x[1:] - 0.97 * x[:-1])
    n = max(0, 1 + (len(x) - 400) // 160)
    if n == 0:
        return np.zeros((0, 13), np.float32)
    idx = np.arange(400)[None] + 160 * np.arange(n)[:, None]
    frames = x[idx] * np.hamming(400)
    power = np.abs(np.fft.rfft(frames, 512)) ** 2 / 512
    return (np.log(power @ _FB.T + 1e-10) @ _DCT.T).astype(np.float32)


def mfcc_frames(m: np.ndarray) -> np.ndarray:
    return normalise(m - m.mean(axis=0, keepdims=True))


def mfcc_windows(samples: np.ndarray, rec: StreamRecord) -> np.ndarray:
    """MFCC frames [N, 98, 13] of each recorded window (the same audio the encoder saw)."""
    m = mfcc(np.concatenate([samples, np.zeros(SAMPLE_RATE * 2, np.int16)]))
    n = 1 + (rec.window - 400) // 160
    out = np.zeros((len(rec.starts), n, 13), np.float32)
    for i, s in enumerate(rec.starts):
        f = int(s) // 160
        w = m[f: f + n]
        out[i, : len(w)] = mfcc_frames(w) if len(w) else 0
    return out


# ---------------------------------------------------------------------------------------------

DECISION = DecisionConfig()  # the model's decision settings (main: model_decision), as live


def detections_for(records: dict[str, StreamRecord], feats: dict[str, np.ndarray] | None,
                   kws: list[EnrolledKeyword], files: list[str], shift: float = 0.0,
                   scores: dict[str, np.ndarray] | None = None) -> list[Detection]:
    """Detections with every threshold raised by `shift`; `scores` (filled on the first call)
    keeps the window scores so a threshold sweep costs only the replays."""
    enrolled = EnrolledSet(kws)
    thresholds = {k: min(v + shift, 1.0) for k, v in enrolled.thresholds.items()}
    out = []
    for name in files:
        rec = records[name]
        if scores is not None and name in scores:
            s = scores[name]
        elif feats is None:
            s = window_scores(rec, enrolled)
        else:
            s = enrolled.scores(feats[name]) if len(rec.starts) else np.zeros((0, len(kws)))
        if scores is not None:
            scores[name] = s
        for d in replay(rec, enrolled.names, thresholds, s, DECISION):
            out.append(Detection(name, d.keyword, d.confidence, d.start_sample / SAMPLE_RATE,
                                 d.end_sample / SAMPLE_RATE))
    return out


def mfcc_keyword(name: str, examples: list[np.ndarray], bank_recs, bank_feats,
                 target: float) -> EnrolledKeyword | None:
    phrases = [trim(x) for x in examples]
    phrases = [p for p in phrases if len(p) >= 4000]     # as the encoder path's checks refuse
    if not phrases:
        return None
    temps = [mfcc_frames(mfcc(p)) for p in phrases]
    kw = EnrolledKeyword(name, temps, 0.5, "mfcc")
    one = EnrolledSet([kw])
    scores = [one.scores(f)[:, 0] if len(f) else np.zeros(0) for f in bank_feats]
    kw.threshold = negatives.calibrate(scores, bank_recs, target)["threshold"]
    return kw


def selection_set(train: Path, out: Path, fold: int = 0,
                  speech_s: float = 300.0) -> tuple[Path, Path]:
    """real-train split by caller into a dev-like side (one eighth of the callers: fold 0 is
    the held-out callers of kwsd.corpus.real, folds 1-7 the other eighths by the same hash,
    for more hours) + held-out speech, and an enrollment side (the other callers); returns
    (dev dir, train dir) with manifests of absolute paths. Files of the shipped negative bank
    (its sources.csv) are never on the dev side: thresholds are set on them."""
    from kwsd.corpus.real import SPEECH_VAL_PERCENT, WUW_VAL_PERCENT
    from kwsd.corpus.texts import KEYWORDS as ALL_KEYWORDS
    from kwsd.evaluation.manifest import count_keyword
    from kwsd.head_training.dataset import speaker_held_out, speaker_percentile

    folds = round(100 / WUW_VAL_PERCENT)
    if not 0 <= fold < folds:
        raise SystemExit(f"--select-fold must be 0..{folds - 1}, got {fold}")

    in_bank = negatives.bank_source_files()

    def in_fold(row: dict) -> bool:
        return int(speaker_percentile(row["speaker"]) // WUW_VAL_PERCENT) == fold

    train = train.resolve()
    dev_dir, train_dir = out / "dev", out / "train"
    dev_dir.mkdir(parents=True, exist_ok=True)
    train_dir.mkdir(parents=True, exist_ok=True)

    def write(path: Path, rows: list[dict], fields: list[str]) -> None:
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fields, extrasaction="ignore")
            w.writeheader()
            w.writerows({**r, "file": str(train / r["file"])} for r in rows)

    with open(train / "wuw-train.csv", newline="", encoding="utf-8") as f:
        wuw_rows = [r for r in csv.DictReader(f) if r["file"] not in in_bank]
    fields = list(wuw_rows[0])
    write(dev_dir / "wuw-dev.csv", [r for r in wuw_rows if in_fold(r)], fields)
    write(train_dir / "wuw-train.csv", [r for r in wuw_rows if not in_fold(r)], fields)
    with open(train / "speech.csv", newline="", encoding="utf-8") as f:
        speech_rows = [r for r in csv.DictReader(f) if r["file"] not in in_bank]
    pool = [r for r in speech_rows
            if speaker_held_out(r.get("speaker") or r["file"], SPEECH_VAL_PERCENT)]
    random.Random(0).shuffle(pool)
    chosen, total = [], 0.0
    for r in pool:
        if total > speech_s:
            break
        chosen.append(r)
        total += float(r["duration_s"])
    chosen = [r for r in chosen if not r.get("keyword")    # speech and noise, no keyword
              and not any(count_keyword(r.get("text", ""), k) for k in ALL_KEYWORDS)]
    write(dev_dir / "speech.csv", chosen, list(speech_rows[0]))
    return dev_dir, train_dir


CHOOSE_MAX_PER_H = 5.0  # 3-shot false alarms per hour on the held-out callers (issue 12's bound)


def choose_target(model: str, results: list[Path]) -> int:
    """Write the model's default targets into kws.json `enrollment`: for two or more examples
    the largest target whose 3-shot keywords fire at most CHOOSE_MAX_PER_H, for one example
    the largest whose personal 1-shot keywords do; false alarms and hours are pooled over the
    --select folds given (every fold must be measured at every target)."""
    from kwsd.model.bundle import load_bundle, write_meta

    bundle = load_bundle(model)
    rows: dict[float, dict[str, list[dict]]] = {}   # target -> protocol -> one row per fold
    folds: dict[float, set[int]] = {}
    for path in results:
        r = json.loads(path.read_text(encoding="utf-8"))
        if not r["select"] or r["encoder"] != encoder_id(bundle):
            raise SystemExit(f"{path}: not a --select result for this model's encoder")
        if "fa_hours" not in r["rows"][0]:
            raise SystemExit(f"{path}: written by an older eval-enroll.py (no fa_hours): "
                             "measure again")
        folds.setdefault(r["fa_target"], set()).add(r.get("select_fold", 0))
        for row in r["rows"]:
            name = ("shots" if "-shot," in row["protocol"] else
                    "personal" if row["protocol"].startswith("personal") else None)
            if name and row["protocol"].endswith("(encoder)"):
                rows.setdefault(r["fa_target"], {}).setdefault(name, []).append(row)
    if len({frozenset(f) for f in folds.values()}) != 1:
        raise SystemExit(f"targets measured on different folds: {folds}")

    def pooled(fold_rows: list[dict]) -> dict:
        fa, hours = sum(x["false_alarms"] for x in fold_rows), sum(x["fa_hours"] for x in fold_rows)
        out = {"fa_per_h": round(fa / hours, 3), "false_alarms": round(fa, 1),
               "fa_hours": round(hours, 3)}
        for k in ("recall_alone", "recall_in_sentences"):
            vals = [x[k] for x in fold_rows if x[k] is not None]
            if vals:
                out[k] = round(float(np.mean(vals)), 4)
        return out

    measured = {t: {name: pooled(v) for name, v in by.items()} for t, by in sorted(rows.items())}
    chosen = {}
    for name in ("shots", "personal"):
        ok = [t for t, m in measured.items() if name in m and
              m[name]["fa_per_h"] <= CHOOSE_MAX_PER_H]
        if not ok:
            print(f"no target keeps {name} enrolled keywords at <= {CHOOSE_MAX_PER_H:g} per "
                  "hour: kws.json not changed", file=sys.stderr)
            return 1
        chosen[name] = max(ok)
    meta = dict(bundle.meta)
    meta["enrollment"] = {
        "fa_target_per_h": chosen["shots"],
        "fa_target_per_h_one_example": chosen["personal"],
        "method": (f"largest bank targets at which enrolled keywords fire at most "
                   f"{CHOOSE_MAX_PER_H:g} times per hour on real-train callers who did not "
                   f"enroll: 3-shot (for two or more examples) and personal 1-shot (for one), "
                   f"pooled over {len(next(iter(folds.values())))} folds of callers "
                   "(issue 12's protocol: scripts/eval-enroll.py --select --select-fold K, "
                   "--choose-from)"),
        "measured": {f"{t:g}": m for t, m in measured.items()}}
    print(f"chose {chosen['shots']:g} (two or more examples), {chosen['personal']:g} (one): "
          f"{write_meta(bundle.path, meta)}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/demo")
    ap.add_argument("--dev", default="../shared/data/real-dev")
    ap.add_argument("--train", default="../shared/data/real-train")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--shots", type=int, default=3)
    ap.add_argument("--fa-target", type=float, default=None,
                    help="false alarms per hour on the bank (default: kwsd enroll's for the "
                         "model)")
    ap.add_argument("--cache", default="/work/kwsd-data/enroll-eval-cache")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--select", metavar="DIR", default=None,
                    help="evaluate on real-train's held-out callers instead of real-dev "
                         "(manifests written to DIR): for choosing settings")
    ap.add_argument("--select-fold", type=int, default=0, metavar="K",
                    help="with --select: which eighth of real-train's callers is the evaluation "
                         "side (0: the callers held out from training; 1-7: more hours)")
    ap.add_argument("--protocols", default="shots,text,personal",
                    help="comma-separated: shots (speaker-independent), text, personal")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--choose-from", type=Path, nargs="+", default=None, metavar="JSON",
                    help="only choose the model's default target from --select results")
    args = ap.parse_args()
    if args.choose_from:
        return choose_target(args.model, args.choose_from)

    import torch

    torch.set_num_threads(1)
    from kwsd.model.bundle import load_bundle

    bundle = load_bundle(args.model)

    def target(examples: int) -> float:
        """--fa-target, else the model's default for this many examples."""
        return args.fa_target or default_fa_target(bundle, examples)

    global DECISION
    DECISION = model_decision(bundle, DecisionConfig())
    eid = encoder_id(bundle)
    cache = Path(args.cache) / eid.split(":")[-1]
    cache.mkdir(parents=True, exist_ok=True)
    dev = Path(args.dev)
    if args.select:
        dev, args.train = selection_set(Path(args.train), Path(args.select), args.select_fold)
    skipped: list[str] = []
    wuw = read_eval_manifest(dev / "wuw-dev.csv", skipped)   # broken labels are left out
    speech = read_eval_manifest(dev / "speech.csv", skipped)
    for why in skipped:
        print(f"skipped: {why}", file=sys.stderr)
    wuw_files = {i.file: i.path for i in wuw}
    speech_files = {i.file: i.path for i in speech}
    recs = recorded_files(bundle, wuw_files, cache, "wuw-dev")
    recs.update(recorded_files(bundle, speech_files, cache, "speech"))
    speech_files = {n: p for n, p in speech_files.items() if n in recs}
    speech = [i for i in speech if i.file in recs]
    bank_recs = negatives.bank_records(bundle)
    want_mfcc = not args.no_baseline
    if want_mfcc:
        mf = {n: mfcc_windows(read_audio_16k(p), recs[n])
              for n, p in {**wuw_files, **speech_files}.items()}
        bank_files = sorted(negatives.default_bank_path().glob("*.ogg"))
        bank_mf = [mfcc_windows(read_audio_16k(f), r)
                   for f, r in zip(bank_files, bank_recs, strict=True)]
    durations = {n: r.duration_s for n, r in recs.items()}
    speech_h = sum(durations[n] for n in speech_files) / 3600

    train = Path(args.train)
    alone_train: dict[str, list[dict]] = {k: [] for k in KEYWORDS}
    for r in csv.DictReader(open(train / "wuw-train.csv")):
        if r["keyword"] in alone_train and r["in_sentence"] == "False":
            alone_train[r["keyword"]].append(r)

    rows = []
    fa_hours: dict[str, float] = {}  # row -> the hours its false alarms are counted on

    def fa_total(dets_wuw, res, dets_speech):
        n = res.false_alarms + len(dets_speech)
        return n, n / (res.negative_hours + speech_h)

    protocols = set(args.protocols.split(","))
    # --- speaker-independent N-shot --------------------------------------------------------
    for method in (["encoder"] + (["mfcc"] if want_mfcc else [])) * ("shots" in protocols):
        per_draw, t_enroll, rejected = [], [], 0
        for d in range(args.draws):
            rng = random.Random(1000 + d)
            kws = []
            for k in KEYWORDS:
                pool = list(alone_train[k])
                rng.shuffle(pool)
                chosen = [read_audio_16k(train / r["file"]) for r in pool[: args.shots]]
                if method == "encoder":
                    res = enroll(bundle, k, chosen, fa_target_per_h=target(len(chosen)))
                    rest = pool[args.shots:]
                    while not res.ok and rest:     # a refused example is replaced, as a user would
                        rejected += 1
                        bad = [c.index for c in res.checks if not c.ok]
                        for i in bad:
                            chosen[i] = read_audio_16k(train / rest.pop(0)["file"])
                        res = enroll(bundle, k, chosen, fa_target_per_h=target(len(chosen)))
                    t_enroll.append(res.seconds)
                    kws.append(res.keyword)
                else:
                    kw = mfcc_keyword(k, chosen, bank_recs, bank_mf, target(len(chosen)))
                    if kw is not None:
                        kws.append(kw)
            feats = None if method == "encoder" else mf
            cache_scores: dict[str, np.ndarray] = {}
            point = None
            for shift in [0.0] + list(np.arange(-0.15, 0.1501, 0.01)):
                dw = detections_for(recs, feats, kws, list(wuw_files), shift, cache_scores)
                ds = detections_for(recs, feats, kws, list(speech_files), shift, cache_scores)
                res = score(wuw, dw, {n: durations[n] for n in wuw_files}, KEYWORDS)
                n_fa, fa_h = fa_total(dw, res, ds)
                if point is None:
                    point = [res.recall(False), res.recall(True), n_fa, fa_h]
                    oracle = [0.0, 0.0]
                elif fa_h <= 5.0 and oracle == [0.0, 0.0]:
                    oracle = [res.recall(False), res.recall(True)]   # lowest shift within 5/h
            per_draw.append(point + oracle)
        a = np.array(per_draw, dtype=np.float64)
        rows.append((f"{args.shots}-shot, {args.shots} train callers ({method})", a, t_enroll,
                     rejected))
        fa_hours[rows[-1][0]] = res.negative_hours + speech_h
        print(f"done: {rows[-1][0]}: {a.tolist()}", file=sys.stderr, flush=True)

    # --- text-only: synthetic renderings by offline voices ------------------------------
    if "text" in protocols:
        from kwsd.enrollment.text import synthetic_examples

        kws, t_enroll, rejected = [], [], 0
        for k in KEYWORDS:
            examples = synthetic_examples({"onword": "on word"}.get(k, k))
            res = enroll(bundle, k, examples, fa_target_per_h=target(len(examples)),
                         check_alike=False)     # as `kwsd enroll --text`
            if not res.ok:                      # drop refused renderings, keep the rest
                rejected += sum(not c.ok for c in res.checks)
                keep = [x for x, c in zip(examples, res.checks, strict=True) if c.ok]
                res = (enroll(bundle, k, keep, fa_target_per_h=target(len(keep)), check_alike=False)
                       if keep else res)
            t_enroll.append(res.seconds)
            if res.ok:
                kws.append(res.keyword)
        cache_scores = {}
        point, oracle = None, [np.nan, np.nan]
        for shift in [0.0] + list(np.arange(-0.15, 0.1501, 0.01)):
            dw = detections_for(recs, None, kws, list(wuw_files), shift, cache_scores)
            ds = detections_for(recs, None, kws, list(speech_files), shift, cache_scores)
            res = score(wuw, dw, {n: durations[n] for n in wuw_files}, KEYWORDS)
            n_fa, fa_h = fa_total(dw, res, ds)
            if point is None:
                point = [res.recall(False), res.recall(True), n_fa, fa_h]
            elif fa_h <= 5.0 and np.isnan(oracle[0]):
                oracle = [res.recall(False), res.recall(True)]
        rows.append(("text-only, 4 synthetic voices (encoder)", np.array([point + oracle]),
                     t_enroll, rejected))
        fa_hours[rows[-1][0]] = res.negative_hours + speech_h
        print(f"done: {rows[-1][0]}: {rows[-1][1].tolist()}", file=sys.stderr, flush=True)

    # --- personal 1-shot -------------------------------------------------------------------
    callers: dict[str, dict] = {}
    for it in wuw:
        c = Path(it.file).parent.name
        callers.setdefault(c, {"alone": {}, "sentence": [], "free": []})
        if it.keyword and not it.in_sentence:
            callers[c]["alone"][it.keyword] = it
        elif it.keyword:
            callers[c]["sentence"].append(it)
    free_files = [i.file for i in wuw if not i.keyword] + list(speech_files)
    free_h = sum(durations[f] for f in free_files) / 3600
    for method in (["encoder"] + (["mfcc"] if want_mfcc else [])) * ("personal" in protocols):
        hits = n = fas = 0
        t_enroll = []
        refused = 0
        for _caller, info in sorted(callers.items()):
            kws = []
            for k in KEYWORDS:
                it = info["alone"].get(k)
                if it is None:
                    continue
                x = read_audio_16k(it.path)
                if method == "encoder":
                    res = enroll(bundle, k, [x], fa_target_per_h=target(1))
                    t_enroll.append(res.seconds)
                    if not res.ok:
                        refused += 1
                        continue
                    kws.append(res.keyword)
                else:
                    kw = mfcc_keyword(k, [x], bank_recs, bank_mf, target(1))
                    if kw is None:
                        refused += 1
                        continue
                    kws.append(kw)
            sent = info["sentence"]
            feats = None if method == "encoder" else mf
            dets = detections_for(recs, feats, kws, [s.file for s in sent]) if kws else []
            res = score(sent, dets, {s.file: durations[s.file] for s in sent}, KEYWORDS)
            hits += sum(s.sentence_hits for s in res.per_keyword.values())
            n += sum(s.sentence for s in res.per_keyword.values())
            fas += res.false_alarms
            if kws:
                fas += len(detections_for(recs, feats, kws, free_files))
        fa_h = fas / (len(callers) * free_h)
        rows.append((f"personal 1-shot ({method})",
                     np.array([[np.nan, hits / n, fas, fa_h, np.nan, np.nan]]),
                     t_enroll, refused))
        fa_hours[rows[-1][0]] = len(callers) * free_h
        print(f"done: {rows[-1][0]}: {rows[-1][1].tolist()}", file=sys.stderr, flush=True)

    # --- the table ------------------------------------------------------------------------
    def pct(col):
        if np.all(np.isnan(col)):
            return "-"
        m, s = np.nanmean(col) * 100, np.nanstd(col) * 100
        return f"{m:.1f} %" + (f" ± {s:.1f}" if len(col) > 1 else "")

    print(f"\nmodel {bundle.model_id} (encoder {eid}), threshold target {target(args.shots):g} "
          f"({target(1):g} for one example) "
          f"false alarms/h on the negative bank, {args.draws} draws")
    print("| protocol | recall alone | recall in sentences | false alarms/h (count) "
          "| at ≤ 5 FA/h on dev: alone / sentences | enroll s/keyword | examples refused |")
    print("|---|---|---|---|---|---|---|")
    for label, a, t, rej in rows:
        fa = f"{np.mean(a[:, 3]):.1f} ({np.mean(a[:, 2]):.1f})"
        ts = f"{np.median(t):.2f}" if t else "-"
        print(f"| {label} | {pct(a[:, 0])} | {pct(a[:, 1])} | {fa} | "
              f"{pct(a[:, 4])} / {pct(a[:, 5])} | {ts} | {rej} |")
    if args.json is not None:
        def mean(col):
            return None if np.all(np.isnan(col)) else float(np.nanmean(col))

        args.json.write_text(json.dumps({
            "model": bundle.model_id, "encoder": eid, "fa_target": target(args.shots),
            "fa_target_one_example": target(1),
            "select": bool(args.select), "select_fold": args.select_fold, "draws": args.draws,
            "rows": [{"protocol": label, "recall_alone": mean(a[:, 0]),
                      "recall_in_sentences": mean(a[:, 1]), "fa_per_h": float(np.mean(a[:, 3])),
                      "false_alarms": float(np.mean(a[:, 2])), "fa_hours": fa_hours[label]}
                     for label, a, _, _ in rows]}, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
