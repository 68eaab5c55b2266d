"""`python -m kwsd.head_training.voice_set`: voices no head trained on, as an eval set."""

import csv

import pytest
from kwsd.head_training.voice_set import VoiceSetError, main, write_voice_set


def _split_off(corpus, tmp_path, voice):
    """A training manifest of the tiny corpus without `voice` (paths made absolute)."""
    with corpus.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if r["voice"] != voice]
        fields = reader.fieldnames
    for r in rows:
        r["file"] = str(corpus.parent / r["file"])
    out = tmp_path / "train.csv"
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return out


def test_the_set_holds_only_the_voices_asked_for_written_like_the_test_set(tiny_corpus,
                                                                           tmp_path):
    train = _split_off(tiny_corpus, tmp_path, "en-gb-scotland")
    manifest = write_voice_set(tiny_corpus, train, ["en-gb-scotland"], tmp_path / "val")
    with manifest.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["voice"] for r in rows} == {"en-gb-scotland"}
    keyword_rows = [r for r in rows if r["keyword"]]
    assert {r["keyword"] for r in keyword_rows} == {"computer", "voyager"}
    assert all(float(r["kw_end_s"]) > float(r["kw_start_s"]) for r in keyword_rows)
    assert all((manifest.parent / r["file"]).is_file() for r in rows)
    # the same call again reuses the finished set
    before = manifest.stat().st_mtime_ns
    assert write_voice_set(tiny_corpus, train, ["en-gb-scotland"], tmp_path / "val") == manifest
    assert manifest.stat().st_mtime_ns == before


def test_a_voice_of_the_training_manifest_or_an_unknown_one_is_refused(tiny_corpus, tmp_path,
                                                                       capsys):
    train = _split_off(tiny_corpus, tmp_path, "en-gb-scotland")
    with pytest.raises(VoiceSetError, match="en-us: in .*train.csv, so trained on"):
        write_voice_set(tiny_corpus, train, ["en-us", "en-gb-scotland"], tmp_path / "a")
    with pytest.raises(VoiceSetError, match="no clips of nobody"):
        write_voice_set(tiny_corpus, train, ["nobody"], tmp_path / "b")
    code = main(["--corpus", str(tiny_corpus), "--train-manifest", str(train),
                 "--voices", "en-gb", "--out", str(tmp_path / "c")])
    assert code == 2
    assert "en-gb: in" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()
