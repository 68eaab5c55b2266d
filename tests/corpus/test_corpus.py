"""Render a tiny real corpus with espeak-ng: manifest, keyword timing, resumability, split."""

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from kwsd.audio.audiofile import read_audio
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.corpus import render as corpus
from kwsd.corpus import texts
from kwsd.corpus.voices import available_voices

pytestmark = pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed")

TINY = corpus.Plan(kw_variants=1, carriers_per_kw=1, confusables=2, partials=2, words=2,
                   sentences=2, noise_clips=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, list[dict]]:
    out = tmp_path_factory.mktemp("corpus")
    assert corpus.run(out, "corpus", 1, ["espeak", "noise"], TINY, limit_voices=2) == 0
    with open(out / "manifest.csv", newline="") as f:
        return out, list(csv.DictReader(f))


def test_manifest_lists_every_clip_with_columns(tiny) -> None:
    out, rows = tiny
    assert set(corpus.MANIFEST_FIELDS) <= set(rows[0])
    labels = {r["label"] for r in rows}
    assert set(texts.KEYWORDS) <= labels and {"_unknown_", "_silence_"} <= labels
    wavs = {p.relative_to(out).as_posix() for p in out.rglob("*.wav")}
    assert wavs == {r["file"] for r in rows}


def test_clips_are_16k_speech_with_keyword_inside_its_span(tiny) -> None:
    out, rows = tiny
    for r in rows:
        x, rate = read_audio(out / r["file"])
        assert rate == SAMPLE_RATE
        assert float(r["duration_s"]) == pytest.approx(len(x) / SAMPLE_RATE, abs=1e-3)
        if r["label"] == "_silence_":
            continue
        assert np.sqrt(np.mean(x ** 2)) > 0.01, r["file"]
        if r["label"] != "_unknown_":
            start, end = float(r["kw_start_s"]), float(r["kw_end_s"])
            assert 0 < start < end <= len(x) / SAMPLE_RATE
            a, b = int(start * SAMPLE_RATE), int(end * SAMPLE_RATE)
            inside = np.sqrt(np.mean(x[a:b] ** 2))
            assert inside > 0.02, r["file"]
            if "/kwcont-" in r["file"]:
                continue  # spoken in one go: speech runs right up to the keyword
            # joined renders: a pause precedes the keyword, so the span starts at its onset
            before = np.sqrt(np.mean(x[max(0, a - 800):a] ** 2)) if a >= 800 else 0.0
            assert inside > 3 * before, r["file"]


def test_in_sentence_keywords_have_speech_around_them(tiny) -> None:
    _, rows = tiny
    sent = [r for r in rows if r["kind"] == "keyword_sentence"]
    assert sent
    for r in sent:
        kw = texts.KEYWORDS[r["label"]]
        assert any(s in r["text"] for s in kw) and len(r["text"].split()) > len(kw[0].split())


def test_negatives_never_contain_a_keyword(tiny) -> None:
    _, rows = tiny
    for r in rows:
        if r["label"] == "_unknown_":
            assert not texts.contains_keyword(r["text"]), r["text"]


def test_second_run_renders_nothing_new(tiny, capsys) -> None:
    out, rows = tiny
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    assert corpus.run(out, "corpus", 1, ["espeak", "noise"], TINY, limit_voices=2) == 0
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before
    assert "0 new" in capsys.readouterr().out


def test_split_holds_out_whole_speakers() -> None:
    voices = list(available_voices())
    by_speaker: dict[str, set[str]] = {}
    for v in voices:
        by_speaker.setdefault(v.speaker, set()).add(corpus.split_of(v))
    assert all(len(s) == 1 for s in by_speaker.values())
    val = sum(1 for s in by_speaker.values() if s == {"val"})
    assert 0.05 <= val / len(by_speaker) <= 0.35


def test_espeak_formant_voices_are_capped() -> None:
    voices = list(available_voices())
    if len({v.engine for v in voices}) < 2:
        pytest.skip("only espeak-ng installed")
    jobs = corpus.corpus_jobs(voices, corpus.Plan())
    engine = {v.name: v.engine for v in voices}
    counts: dict[str, int] = {}
    for j in jobs:
        counts[engine[j.voice]] = counts.get(engine[j.voice], 0) + 1
    # the espeak voices are picked for a 15 % share; Kokoro's thinning lifts it a little
    assert counts["espeak"] / len(jobs) <= 0.2
    assert counts["espeak"] < max(counts.values()) or len(counts) == 1


def test_contains_keyword() -> None:
    assert texts.contains_keyword("hey Computer, lights")
    assert texts.contains_keyword("say on-word now") and texts.contains_keyword("on word")
    assert texts.contains_keyword("the think engine")
    assert not texts.contains_keyword("the commuter thinks about the engine")
    assert not texts.contains_keyword("onward and upward")


def test_forced_alignment_finds_a_joined_keyword() -> None:
    pytest.importorskip("pocketsphinx")
    from kwsd.corpus import align

    voices = [v for v in available_voices() if v.engine in ("flite", "pico", "mbrola")]
    if not voices:
        pytest.skip("needs flite, pico or mbrola (espeak-ng formant speech aligns poorly)")
    job = corpus.Job("x.wav", voices[0].name, ("good morning", "computer", "start the day"), 1,
                     "computer", "keyword_sentence", corpus.Variant(), 3)
    samples, start, end = corpus._render_job(job, voices[0])  # joined: exact span known
    span = align.keyword_span(samples, job.parts, 1)
    assert span is not None
    assert span[0] == pytest.approx(start, abs=0.12) and span[1] == pytest.approx(end, abs=0.12)
    assert align.keyword_span(np.zeros(16000, np.int16), job.parts, 1) is None


def test_custom_keywords_get_their_own_negatives() -> None:
    words = ["light", "lighter", "lightning", "sunlight", "kiwi", "kiwis", "table", "on"]
    vocab = texts.custom_vocabulary(["Lights on", "hey-kiwi"], words)
    assert set(vocab.keywords) == {"lights on", "hey-kiwi"}
    assert vocab.contains("please turn the lights on now") and vocab.contains("hey kiwi")
    assert not vocab.contains("the light is on")
    assert {"light", "lighter", "lightning", "kiwi", "kiwis"} <= set(vocab.confusables)
    assert "sunlight" not in vocab.confusables
    assert vocab.partials and not any(vocab.contains(p) for p in vocab.partials)
    voices = [v for v in available_voices() if v.engine == "espeak"][:1]
    jobs = corpus.corpus_jobs(voices, TINY, keywords=["lights on", "hey-kiwi"])
    assert {j.label for j in jobs} == {"lights on", "hey-kiwi", "_unknown_"}
    assert not any(vocab.contains(" ".join(j.parts)) for j in jobs if j.label == "_unknown_")


def test_bad_custom_keyword_is_a_clear_error(tmp_path, capsys) -> None:
    assert corpus.main(["--out", str(tmp_path), "--keywords", "caf\u00e9 2000"]) == 2
    assert "plain English letters" in capsys.readouterr().err
