"""Render the synthetic keyword corpus and the encoder-distillation audio (issue 7).

    python -m kwsd.corpus.render --out /work/kwsd-data/corpus --jobs 2
    python -m kwsd.corpus.render --set distill --out /work/kwsd-data/distill-audio --jobs 1

The job list is a pure function of the seed and the installed voices; each clip is written
atomically and recorded in a per-voice `_rows.csv`, so an interrupted run resumes where it
stopped (existing clips are skipped) and `manifest.csv` is rebuilt from the rows at the end (and
every few hundred clips). Validation = whole speakers held out (`VAL_SPEAKERS`), never rendered
for training. espeak-ng formant voices are capped to a share of the corpus.
"""

from __future__ import annotations

import argparse
import csv
import functools
import os
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

from kwsd.audio.audiofile import write_wav_16k
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.audio.convert import float_to_int16
from kwsd.corpus import align, augment, texts, tts
from kwsd.corpus.tts import stable_seed as _seed
from kwsd.corpus.voices import DEFAULT_VARIANTS, Variant, Voice, available_voices

MANIFEST_FIELDS = ("file", "label", "kw_start_s", "kw_end_s", "engine", "voice", "speaker",
                   "text", "kind", "variant", "duration_s", "split")
UNKNOWN, SILENCE = "_unknown_", "_silence_"

# Whole speakers held out for validation (~15 %, at least one per family that has several).
VAL_SPEAKERS = frozenset({
    "espeak-en-029", "mbrola-us3", "mbrola-de5", "mbrola-fr4", "mbrola-sw1", "flite-rms",
    "festival-ked_diphone", "pico-en-GB", "kokoro-gongitsune-tebukuro-50",
    "kokoro-tebukuro-kumo-60"})


@dataclass(frozen=True)
class Job:
    """One clip to render: parts are spoken separately and joined; part `kw_part` is the keyword."""

    file: str  # relative to the output directory
    voice: str
    parts: tuple[str, ...]
    kw_part: int  # -1: no keyword
    label: str
    kind: str
    variant: Variant
    seed: int


@dataclass
class Plan:
    """How much to render per voice (espeak-ng formant voices get `espeak_scale` of it)."""

    kw_variants: int = 5
    carriers_per_kw: int = 4
    continuous_per_kw: int = 2  # carrier sentences rendered in one go (natural co-articulation)
    confusables: int = 40
    partials: int = 20
    words: int = 60
    sentences: int = 70
    noise_clips: int = 1200
    # espeak-ng formant voices are picked for this share of the clips (the corpus as planned
    # ends at ~17 %: Kokoro was thinned afterwards, and changing this re-picks espeak voices)
    espeak_share: float = 0.15
    kokoro_scale: float = 0.5
    distill_minutes_per_speaker: float = 3.5


def split_of(voice: Voice) -> str:
    return "val" if voice.speaker in VAL_SPEAKERS else "train"


def _clip_name(kind: str, idx: int, variant: Variant) -> str:
    return f"{kind}-{idx:04d}-{variant.tag}.wav"


def _voice_jobs(voice: Voice, plan: Plan, words: list[str], sents: list[str],
                scale: float, keep_keywords: bool = False,
                vocab: texts.Vocabulary | None = None) -> list[Job]:
    """Every clip for one voice; `scale` < 1 thins it out (espeak formant voices; slow Kokoro
    voices with `keep_keywords`, which keeps every isolated-keyword variant)."""
    rng = np.random.default_rng(_seed("plan", voice.name))
    variants = list(DEFAULT_VARIANTS)

    def var() -> Variant:
        return variants[int(rng.integers(len(variants)))]

    def n(x: int) -> int:
        return max(1, int(round(x * scale)))

    jobs: list[Job] = []
    d = voice.name
    vocab = vocab or texts.demo_vocabulary()
    kws = list(vocab.keywords.items())
    for ki, (label, spellings) in enumerate(kws):
        chosen = (variants[: plan.kw_variants] if scale >= 1 or keep_keywords
                  else [var() for _ in range(n(plan.kw_variants))])
        for vi, v in enumerate(chosen):
            text = spellings[vi % len(spellings)]
            jobs.append(Job(f"{d}/{_clip_name('kw', ki * 10 + vi, v)}", d, (text,), 0, label,
                            "keyword", v, _seed(d, "kw", ki, vi)))
        for ci in range(n(plan.carriers_per_kw)):
            pre, suf = texts.CARRIERS[int(rng.integers(len(texts.CARRIERS)))]
            text = spellings[int(rng.integers(len(spellings)))]
            parts = tuple(p for p in (pre, text, suf) if p)
            v = var()
            jobs.append(Job(f"{d}/{_clip_name('kwsent', ki * 10 + ci, v)}", d, parts,
                            parts.index(text), label, "keyword_sentence", v,
                            _seed(d, "kws", ki, ci)))
    conf = list(vocab.confusables)
    for i in rng.choice(len(conf), size=min(len(conf), n(plan.confusables)), replace=False):
        v = var()
        jobs.append(Job(f"{d}/{_clip_name('conf', int(i), v)}", d, (conf[int(i)],), -1, UNKNOWN,
                        "confusable", v, _seed(d, "conf", i)))
    for i in rng.choice(len(vocab.partials), size=min(len(vocab.partials), n(plan.partials)),
                        replace=False):
        v = var()
        jobs.append(Job(f"{d}/{_clip_name('part', int(i), v)}", d, (vocab.partials[int(i)],),
                        -1, UNKNOWN, "partial", v, _seed(d, "part", i)))
    for i in rng.choice(len(words), size=n(plan.words), replace=False):
        v = var()
        jobs.append(Job(f"{d}/{_clip_name('word', int(i), v)}", d, (words[int(i)],), -1, UNKNOWN,
                        "word", v, _seed(d, "word", i)))
    for i in rng.choice(len(sents), size=n(plan.sentences), replace=False):
        v = var()
        jobs.append(Job(f"{d}/{_clip_name('sent', int(i), v)}", d, (sents[int(i)],), -1, UNKNOWN,
                        "sentence", v, _seed(d, "sent", i)))
    # Whole-sentence renders (no joins): keyword span estimated from prefix renders. Own rng, so
    # adding them left every earlier job of the plan unchanged.
    crng = np.random.default_rng(_seed("cont", voice.name))
    for ki, (label, spellings) in enumerate(kws):
        for ci in range(n(plan.continuous_per_kw)):
            pre, suf = texts.CARRIERS[int(crng.integers(len(texts.CARRIERS)))]
            text = spellings[int(crng.integers(len(spellings)))]
            parts = tuple(p for p in (pre, text, suf) if p)
            v = variants[int(crng.integers(len(variants)))]
            jobs.append(Job(f"{d}/{_clip_name('kwcont', ki * 10 + ci, v)}", d, parts,
                            parts.index(text), label, "keyword_sentence", v,
                            _seed(d, "kwc", ki, ci)))
    return jobs


def _espeak_voices_to_use(voices: list[Voice], plan: Plan) -> tuple[list[Voice], float]:
    """Pick espeak voices and a per-voice scale so their clips stay <= espeak_share."""
    esp = [v for v in voices if v.engine == "espeak"]
    others = len(voices) - len(esp)
    if not esp:
        return [], 1.0
    # (continuous sentences are left out of this sum on purpose: the espeak selection predates
    # them and must stay the same for resumed runs)
    per_full = len(texts.KEYWORDS) * (plan.kw_variants + plan.carriers_per_kw) + (
        plan.confusables + plan.partials + plan.words + plan.sentences)
    budget = plan.espeak_share / (1 - plan.espeak_share) * max(others, 4) * per_full
    scale = 0.3
    keep = max(1, min(len(esp), int(budget / (per_full * scale))))
    rng = np.random.default_rng(_seed("espeak-pick"))
    by_speaker: dict[str, list[Voice]] = defaultdict(list)
    for v in esp:
        by_speaker[v.speaker].append(v)
    order = []  # round-robin over accents so every accent is represented
    lists = [list(rng.permutation(len(vs))) for vs in by_speaker.values()]
    keys = list(by_speaker)
    while len(order) < keep:
        for k, idx in zip(keys, lists, strict=True):
            if idx and len(order) < keep:
                order.append(by_speaker[k][int(idx.pop())])
    return order, scale


def corpus_jobs(voices: list[Voice], plan: Plan, seed: int = 7,
                keywords: list[str] | None = None) -> list[Job]:
    """The keyword corpus plan: the demo vocabulary, or the user's own `keywords`."""
    words = texts.word_list()
    if keywords:
        vocab = texts.custom_vocabulary(keywords, words)
        words = [w for w in words if not vocab.contains(w)]
    else:
        vocab = texts.demo_vocabulary()
    sents = texts.sentences(5000, seed=seed, words=words, vocab=vocab)
    esp, scale = _espeak_voices_to_use(voices, plan)
    jobs: list[Job] = []
    for v in voices:
        if v.engine == "kokoro":  # ~1-4 s per phrase here: fewer negatives, all keywords
            jobs += _voice_jobs(v, plan, words, sents, plan.kokoro_scale, keep_keywords=True,
                                vocab=vocab)
        elif v.engine != "espeak":
            jobs += _voice_jobs(v, plan, words, sents, 1.0, vocab=vocab)
    for v in esp:
        jobs += _voice_jobs(v, plan, words, sents, scale, vocab=vocab)
    return jobs


def distill_jobs(voices: list[Voice], plan: Plan, seed: int = 11) -> list[Job]:
    """Several minutes of varied generic speech per speaker (clips of 2-4 sentences)."""
    words = texts.word_list()
    sents = texts.sentences(20000, seed=seed, words=words)
    by_speaker: dict[str, list[Voice]] = defaultdict(list)
    for v in voices:
        by_speaker[v.speaker].append(v)
    jobs: list[Job] = []
    per_clip_s = 6.0
    for speaker, vs in sorted(by_speaker.items()):
        minutes = plan.distill_minutes_per_speaker * (0.5 if vs[0].engine == "espeak" else 1.0)
        n_clips = int(minutes * 60 / per_clip_s)
        rng = np.random.default_rng(_seed("distill", speaker))
        for i in range(n_clips):
            v = vs[int(rng.integers(len(vs)))]
            variant = DEFAULT_VARIANTS[int(rng.integers(len(DEFAULT_VARIANTS)))]
            k = int(rng.integers(2, 5))
            parts = tuple(sents[int(j)] for j in rng.integers(0, len(sents), size=k))
            jobs.append(Job(f"{v.name}/distill-{i:04d}-{variant.tag}.wav", v.name, parts, -1,
                            UNKNOWN, "distill", variant, _seed(v.name, "distill", i)))
    return jobs


@functools.lru_cache(maxsize=512)
def _render_part(voice: Voice, text: str, variant: Variant) -> np.ndarray:
    """Carrier prefixes/suffixes repeat across clips: render each (voice, text, variant) once."""
    audio = tts.render(voice, text, variant)
    audio.flags.writeable = False
    return audio


def _render_continuous(job: Job, voice: Voice) -> tuple[np.ndarray, float, float]:
    """Render the whole sentence at once; the keyword span comes from forced alignment
    (pocketsphinx), or if that fails is estimated from the durations of the prefix and of
    prefix+keyword rendered alone (sentence-final lengthening makes that ~0.1 s late)."""
    rng = np.random.default_rng(job.seed)
    pad = tts.TRIM_PAD_S
    full = _render_part(voice, " ".join(job.parts), job.variant)
    k = job.kw_part

    def speech_s(parts: tuple[str, ...]) -> float:
        if not parts:
            return 0.0
        return max(0.0, len(_render_part(voice, " ".join(parts), job.variant)) / SAMPLE_RATE
                   - 2 * pad)
    lead = int(rng.uniform(0.1, 0.4) * SAMPLE_RATE)
    tail = int(rng.uniform(0.1, 0.4) * SAMPLE_RATE)
    samples = np.concatenate([np.zeros(lead, np.int16), full, np.zeros(tail, np.int16)])
    span = align.keyword_span(samples, job.parts, k)  # forced alignment beats the estimate
    if span is not None:
        return samples, span[0], span[1]
    total_s = len(full) / SAMPLE_RATE - 2 * pad
    start = lead / SAMPLE_RATE + pad + min(speech_s(job.parts[:k]), total_s)
    end = (lead / SAMPLE_RATE + pad + total_s if k == len(job.parts) - 1
           else lead / SAMPLE_RATE + pad + min(speech_s(job.parts[: k + 1]), total_s))
    return samples, start, max(end, start + 0.1)


def _render_job(job: Job, voice: Voice) -> tuple[np.ndarray, float, float]:
    """Render the parts, join with short random pauses; return samples, kw start/end (s)."""
    if Path(job.file).name.startswith("kwcont-"):
        return _render_continuous(job, voice)
    rng = np.random.default_rng(job.seed)
    pieces: list[np.ndarray] = []
    pos = int(rng.uniform(0.1, 0.4) * SAMPLE_RATE)
    pieces.append(np.zeros(pos, np.int16))
    kw_start = kw_end = -1.0
    for i, text in enumerate(job.parts):
        audio = _render_part(voice, text, job.variant)
        if i == job.kw_part:
            kw_start, kw_end = pos / SAMPLE_RATE, (pos + len(audio)) / SAMPLE_RATE
        pieces.append(audio)
        pos += len(audio)
        gap = int(rng.uniform(0.05, 0.25) * SAMPLE_RATE) if i < len(job.parts) - 1 else int(
            rng.uniform(0.1, 0.4) * SAMPLE_RATE)
        pieces.append(np.zeros(gap, np.int16))
        pos += gap
    samples = np.concatenate(pieces)
    return samples, kw_start, kw_end


def _row(job: Job, voice: Voice, kw_start: float, kw_end: float, duration: float) -> dict:
    return {"file": job.file, "label": job.label,
            "kw_start_s": f"{kw_start:.3f}" if job.kw_part >= 0 else "",
            "kw_end_s": f"{kw_end:.3f}" if job.kw_part >= 0 else "",
            "engine": voice.engine, "voice": voice.name, "speaker": voice.speaker,
            "text": " ".join(job.parts), "kind": job.kind, "variant": job.variant.tag,
            "duration_s": f"{duration:.3f}", "split": split_of(voice)}


def _open_rows(path: Path) -> TextIO:
    """A voice's `_rows.csv` for appending, its header first, written by whoever creates it.

    A voice's keyword and negative jobs run in two workers at once. The file appears with its
    header already in it (written beside it, then hard-linked into place, which fails if the
    other worker won): a file created empty and filled afterwards let the other worker append
    rows that the header then overwrote."""
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            csv.DictWriter(f, fieldnames=MANIFEST_FIELDS).writeheader()
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return open(path, "a", newline="", encoding="utf-8")


def _read_rows(path: Path) -> list[dict]:
    """The complete rows of a `_rows.csv` that workers may be appending to right now: a file
    still without its header, or a line still being written, is skipped (the manifest is
    rewritten once every worker is done)."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if "file" not in (reader.fieldnames or []):
            return []
        return [r for r in reader if r.get("file") and None not in r.values()]


def _done_files(out: Path, voice_name: str) -> set[str]:
    return {r["file"] for r in _read_rows(out / voice_name / "_rows.csv")
            if (out / r["file"]).exists()}


def render_voice(out: str, voice: Voice, jobs: list[Job]) -> tuple[str, int, int, list[str]]:
    """Worker: render one voice's jobs not done yet -> (voice, rendered, failed, errors)."""
    outp = Path(out)
    (outp / voice.name).mkdir(parents=True, exist_ok=True)
    done = _done_files(outp, voice.name)
    n_ok, n_fail, errors = 0, 0, []
    with _open_rows(outp / voice.name / "_rows.csv") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
        for job in jobs:
            if job.file in done:
                continue
            try:
                samples, ks, ke = _render_job(job, voice)
            except tts.TTSError as exc:
                n_fail += 1
                if len(errors) < 5:
                    errors.append(str(exc))
                continue
            path = outp / job.file
            tmp = path.with_suffix(".tmp")
            write_wav_16k(tmp, samples)
            os.replace(tmp, path)
            writer.writerow(_row(job, voice, ks, ke, len(samples) / SAMPLE_RATE))
            f.flush()
            n_ok += 1
    return voice.name, n_ok, n_fail, errors


def render_noise(out: Path, n: int, seed: int = 5) -> int:
    """`_silence_` clips: coloured noise at random levels, near-silence and mixtures (1-2 s)."""
    d = out / "noise"
    d.mkdir(parents=True, exist_ok=True)
    done = _done_files(out, "noise")
    made = 0
    with _open_rows(d / "_rows.csv") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
        for i in range(n):
            rel = f"noise/noise-{i:05d}.wav"
            if rel in done:
                continue
            rng = np.random.default_rng(_seed("noise", seed, i))
            length = int(rng.uniform(1.0, 2.0) * SAMPLE_RATE)
            kinds = list(augment.NOISE_KINDS)
            kind = kinds[int(rng.integers(len(kinds)))]
            x = augment.NOISE_KINDS[kind](rng, length)
            if rng.random() < 0.3:
                other = kinds[int(rng.integers(len(kinds)))]
                x = x + float(rng.uniform(0.2, 1.0)) * augment.NOISE_KINDS[other](rng, length)
                kind += "+" + other
            if rng.random() < 0.4:
                x = augment.telephone(x / (np.max(np.abs(x)) + 1e-9) * 0.5, rng)
                kind += "+phone"
            level_db = float(rng.uniform(-70, -15))
            x = x / (np.sqrt(np.mean(x ** 2)) + 1e-12) * 10 ** (level_db / 20)
            samples = float_to_int16(np.clip(x, -1, 1))
            write_wav_16k(out / rel, samples)
            split = "val" if rng.random() < 0.15 else "train"
            writer.writerow({"file": rel, "label": SILENCE, "kw_start_s": "", "kw_end_s": "",
                             "engine": "noise", "voice": "noise", "speaker": "noise",
                             "text": f"{kind} {level_db:.0f}dBFS", "kind": "noise",
                             "variant": "", "duration_s": f"{length / SAMPLE_RATE:.3f}",
                             "split": split})
            made += 1
    return made


def write_manifest(out: Path, name: str = "manifest.csv") -> list[dict]:
    rows: list[dict] = []
    for rows_path in sorted(out.glob("*/_rows.csv")):
        seen = {r["file"]: r for r in _read_rows(rows_path) if (out / r["file"]).exists()}
        rows += seen.values()
    tmp = out / f"{name}.{os.getpid()}.tmp"  # two renderers may share one output directory
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out / name)
    return rows


def summarize(rows: list[dict]) -> str:
    by_engine: Counter = Counter()
    secs: Counter = Counter()
    labels: Counter = Counter()
    splits: Counter = Counter()
    for r in rows:
        by_engine[r["engine"]] += 1
        secs[r["engine"]] += float(r["duration_s"] or 0)
        labels[r["label"]] += 1
        splits[r["split"]] += 1
    total_h = sum(secs.values()) / 3600
    lines = [f"{len(rows)} clips, {total_h:.2f} h; splits {dict(splits)}",
             "per engine: " + ", ".join(f"{e} {by_engine[e]} ({secs[e] / 3600:.2f} h)"
                                        for e in sorted(by_engine)),
             "labels: " + ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))]
    return "\n".join(lines)


def run(out: Path, which: str, jobs_n: int, engines: list[str] | None, plan: Plan,
        limit_voices: int | None = None, keywords: list[str] | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    voices = list(available_voices())
    if limit_voices:
        voices = voices[:limit_voices]
    if not voices:
        print("no voices available: run scripts/install-tts.sh", file=sys.stderr)
        return 2
    # The plan is made from ALL voices (so --engines only selects a part of the same plan,
    # and separate runs per engine add up to one corpus).
    all_jobs = (corpus_jobs(voices, plan, keywords=keywords) if which == "corpus"
                else distill_jobs(voices, plan))
    vmap = {v.name: v for v in voices}
    all_jobs = [j for j in all_jobs if not engines or vmap[j.voice].engine in engines]
    by_voice: dict[str, list[Job]] = defaultdict(list)
    for j in all_jobs:
        by_voice[j.voice].append(j)
    # fast engines first, so a usable corpus exists early; slow neural/festival voices last
    order = {"mbrola": 0, "flite": 1, "pico": 2, "espeak": 3, "piper": 4, "festival": 5,
             "kokoro": 6}
    names = sorted(by_voice, key=lambda n: (order.get(vmap[n].engine, 9), n))
    # Two stages: every voice's keyword clips first, then the negatives, so that a run cut short
    # (slow Kokoro) still has keywords from all its voices.
    tasks = [(n, stage, [j for j in by_voice[n] if (j.label == UNKNOWN) == bool(stage)])
             for stage in (0, 1) for n in names]
    tasks = [t for t in tasks if t[2]]
    total = len(all_jobs)
    print(f"[corpus] {which}: {len(names)} voices, {total} clips planned -> {out}", flush=True)
    if which == "corpus" and plan.noise_clips and (not engines or "noise" in engines):
        made = render_noise(out, plan.noise_clips)
        print(f"[corpus] noise clips: {made} new", flush=True)
    t0 = time.time()
    finished = 0
    with ProcessPoolExecutor(max_workers=max(1, jobs_n)) as pool:
        futs = {pool.submit(render_voice, str(out), vmap[n], jobs): (n, stage, len(jobs))
                for n, stage, jobs in tasks}
        for fut in as_completed(futs):
            name, stage, count = futs[fut]
            finished += count
            what = f"{name} ({'keywords' if stage == 0 else 'negatives'})"
            try:
                _, ok, fail, errs = fut.result()
            except Exception as exc:  # one broken voice must not stop the corpus
                print(f"[corpus] {what}: FAILED {type(exc).__name__}: {exc}", flush=True)
                continue
            rate = finished / max(1e-6, time.time() - t0)
            print(f"[corpus] {finished}/{total} ({100 * finished / total:.0f} %) {what}: "
                  f"{ok} new, {fail} failed{'; ' + errs[0] if errs else ''} "
                  f"[{rate:.1f} clips/s]", flush=True)
            write_manifest(out)
    rows = write_manifest(out)
    print(summarize(rows), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kwsd.corpus.render", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--set", choices=("corpus", "distill"), default="corpus")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (<= 2 here)")
    p.add_argument("--engines", default="",
                   help="comma list of engines (and 'noise') to render (default: all)")
    p.add_argument("--keywords", default="",
                   help="comma list of your own keywords (default: the demo vocabulary)")
    p.add_argument("--limit-voices", type=int, default=None, help="first N voices (smoke test)")
    p.add_argument("--noise-clips", type=int, default=Plan.noise_clips)
    p.add_argument("--distill-minutes", type=float, default=Plan.distill_minutes_per_speaker,
                   help="minutes of audio per speaker for the distillation set")
    p.add_argument("--print-plan", action="store_true", help="list voices and counts, render none")
    a = p.parse_args(argv)
    plan = Plan(noise_clips=a.noise_clips, distill_minutes_per_speaker=a.distill_minutes)
    engines = [e for e in a.engines.split(",") if e] or None
    if a.print_plan:
        voices = [v for v in available_voices() if not engines or v.engine in engines]
        kws = [k.strip() for k in a.keywords.split(",") if k.strip()] or None
        jobs = (corpus_jobs(voices, plan, keywords=kws) if a.set == "corpus"
                else distill_jobs(voices, plan))
        c = Counter(j.voice.split("-")[0] for j in jobs)
        print(f"{len(jobs)} clips: {dict(c)}; speakers "
              f"{len({v.speaker for v in voices})}; val speakers "
              f"{sorted({v.speaker for v in voices if split_of(v) == 'val'})}")
        print(asdict(plan))
        return 0
    keywords = [k.strip() for k in a.keywords.split(",") if k.strip()] or None
    try:
        return run(a.out, a.set, a.jobs, engines, plan, a.limit_voices, keywords)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
