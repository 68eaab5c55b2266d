"""Real recordings become corpus-manifest rows only when their labels can be trusted, and whole
speakers are held out."""

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile
from kwsd.corpus import real
from kwsd.head_training.dataset import read_corpus_manifest

WUW_FIELDS = ["file", "keyword", "kw_start_s", "kw_end_s", "in_sentence", "duration_s",
              "speaker", "gender", "dialect", "phone", "transcription"]
SPEECH_FIELDS = ["file", "keyword", "kw_start_s", "kw_end_s", "in_sentence", "kind", "text",
                 "speaker", "sample_rate", "duration_s", "source", "license"]


def _flac(path: Path, seconds: float = 1.0, rate: int = 8000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, 0.1 * np.sin(np.arange(int(seconds * rate)) / 7), rate)


@pytest.fixture
def real_train(tmp_path) -> Path:
    root = tmp_path / "real-train"
    wuw = [  # file, keyword, start, end, in_sentence, transcription
        ("a/0.flac", "", "", "", "False", "{smack} Veton Kepuska"),
        ("a/1.flac", "operator", "0.5", "1.1", "False", "[click] Operator"),
        ("a/2.flac", "think engine", "0.6", "1.2", "True", "please ThinkEngine wake up"),
        ("a/3.flac", "operator", "0.6", "1.2", "True", "hello computer, Operator please"),
        ("a/4.flac", "onword", "1.2", "0.9", "False", "Onword"),
        ("a/5.flac", "onword", "0.5", "1.0", "False", "I'm done now"),
        ("a/6.flac", "", "", "", "False", "wake up the computer"),
    ]
    rows = []
    for speaker in range(40):
        for f, kw, a, b, sent, text in wuw:
            name = f"wuw-train/{speaker:05d}/{f}"
            _flac(root / name, 2.0)
            rows.append(dict(zip(WUW_FIELDS, [name, kw, a, b, sent, "2.0", f"wuw-{speaker:05d}",
                                              "male", "native", "cell", text], strict=True)))
    with (root / "wuw-train.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=WUW_FIELDS)
        w.writeheader()
        w.writerows(rows)
    speech = [("speech/x/0.flac", "speech", "hello there", "s1"),
              ("speech/x/1.flac", "speech", "my computer is slow", "s2"),
              ("noise/0.flac", "noise", "", "")]
    with (root / "speech.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=SPEECH_FIELDS)
        w.writeheader()
        for name, kind, text, speaker in speech:
            _flac(root / name, 1.5, 16000)
            w.writerow(dict(zip(SPEECH_FIELDS, [name, "", "", "", "False", kind, text, speaker,
                                                "16000", "1.5", "test", "CC0"], strict=True)))
    return root


def test_only_trustworthy_clips_are_kept(real_train, tmp_path):
    corpus = real.build(real_train, tmp_path / "out")
    by_file = {Path(r["file"]).name: r for r in corpus.rows if "00000" in r["file"]}
    assert set(by_file) == {"0.flac", "1.flac", "2.flac"}  # 3: computer, 4: end<start, 5, 6
    assert by_file["1.flac"]["label"] == "operator" and by_file["1.flac"]["kind"] == "keyword"
    assert by_file["2.flac"]["kind"] == "keyword_sentence"
    assert by_file["0.flac"]["label"] == "_unknown_"
    assert corpus.skipped == {"transcription disagrees with the label": 80,
                              "broken keyword times": 40, "negative says a keyword": 41}
    split = real.build(real_train, tmp_path / "out2", split_second_keyword=True)
    assert split.skipped["second keyword not aligned"] == 40  # 3: a tone, no words to align
    labels = {(Path(r["file"]).name, r["label"]) for r in corpus.rows if "speech" in r["file"]
              or "noise" in r["file"]}
    assert labels == {("0.flac", "_unknown_"), ("0.flac", "_silence_")}


def test_speakers_are_held_out_whole_and_the_manifest_trains(real_train, tmp_path):
    corpus = real.build(real_train, tmp_path / "out")
    split_of: dict[str, set] = {}
    for r in corpus.rows:
        split_of.setdefault(r["speaker"], set()).add(r["split"])
    assert all(len(s) == 1 for s in split_of.values())
    wuw_val = sum(1 for s, sp in split_of.items() if s.startswith("wuw") and sp == {"val"})
    assert 1 <= wuw_val <= 12  # about one caller in eight of 40
    path = real.write(corpus, tmp_path / "out")
    clips, keywords = read_corpus_manifest(path)
    assert sorted(keywords) == ["operator", "think engine"]
    assert all(c.path.is_file() and c.engine == real.REAL_ENGINE for c in clips)
    assert {c.split for c in clips} == {"train", "heldout"}


def test_evaluation_data_is_refused(tmp_path):
    dev = tmp_path / "real-dev"
    dev.mkdir()
    (dev / "speech.csv").write_text(",".join(SPEECH_FIELDS) + "\n")
    with pytest.raises(SystemExit, match="evaluation only"):
        real.build(dev, tmp_path / "out")


def test_a_sentence_that_also_says_computer_becomes_two_keyword_clips(tmp_path):
    """The sentences that say "computer" unlabelled are cut between the two keywords, and only
    when the forced alignment agrees with the hand label of the other one."""
    pytest.importorskip("pocketsphinx")
    from kwsd.audio.audiofile import read_audio_16k
    from kwsd.corpus import render
    from kwsd.corpus.voices import available_voices

    voices = [v for v in available_voices() if v.engine in ("flite", "pico", "mbrola")]
    if not voices:
        pytest.skip("needs flite, pico or mbrola (espeak-ng formant speech aligns poorly)")
    job = render.Job("x.wav", voices[0].name, ("hello", "computer", "how are you today",
                                               "operator"), 3, "operator", "keyword_sentence",
                     render.Variant(), 3)
    samples, start, end = render._render_job(job, voices[0])  # joined: operator's span exact
    root = tmp_path / "real-train"
    rows = []
    for speaker, shift in (("wuw-00007", 0.0), ("wuw-00008", 1.0)):  # 1 s off: not trusted
        name = f"wuw-train/{speaker}/s.flac"
        (root / name).parent.mkdir(parents=True)
        soundfile.write(root / name, samples, 16000)
        rows.append(dict(zip(WUW_FIELDS, [name, "operator", f"{start + shift:.3f}",
                                          f"{end + shift:.3f}", "True", "3.0", speaker, "male",
                                          "native", "cell",
                                          "[click] hello Computer how are you today Operator"],
                             strict=True)))
    with (root / "wuw-train.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=WUW_FIELDS)
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "out"
    assert real.build(root, out).rows == []  # off by default: the shipped head's data
    corpus = real.build(root, out, split_second_keyword=True)
    assert corpus.skipped == {"second keyword not aligned": 1}
    first, second = corpus.rows
    assert (first["label"], second["label"]) == ("computer", "operator")
    assert first["text"].split()[:2] == ["hello", "computer"] and "operator" in second["text"]
    a, b = (read_audio_16k(out / r["file"]) for r in (first, second))
    assert len(a) + len(b) == len(samples)  # cut, nothing lost
    cut = len(a) / 16000
    assert float(second["kw_start_s"]) == pytest.approx(start - cut, abs=0.002)
    assert 0.0 < float(first["kw_start_s"]) < float(first["kw_end_s"]) <= cut
    assert 0.3 < float(first["kw_end_s"]) - float(first["kw_start_s"]) < 1.2
