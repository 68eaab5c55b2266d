"""The fingerprint of a rendering names exactly the voices and packages that differ."""

import json

import numpy as np
from kwsd.audio.audiofile import write_wav_16k
from kwsd.corpus.fingerprint import compare, fingerprint, main


def _corpus(root, seed):
    rng = np.random.default_rng(seed)
    for voice in ("espeak-a", "mbrola-b"):
        for n in range(2):
            (root / voice).mkdir(parents=True, exist_ok=True)
            write_wav_16k(root / voice / f"kw-{n}.wav",
                          (rng.standard_normal(1600) * 1000).astype(np.int16))
    (root / "manifest.csv").write_text("file,label\nespeak-a/kw-0.wav,computer\n")


def test_a_changed_clip_names_its_voice_and_nothing_else(tmp_path, capsys):
    _corpus(tmp_path / "one" / "corpus", 0)
    _corpus(tmp_path / "two" / "corpus", 0)
    a = fingerprint([tmp_path / "one" / "corpus"])
    assert a["folders"]["corpus"]["espeak-a"]["files"] == 2
    assert a["folders"]["corpus"]["."]["files"] == 1  # the manifest
    assert compare(a, fingerprint([tmp_path / "two" / "corpus"])) == []

    write_wav_16k(tmp_path / "two" / "corpus" / "mbrola-b" / "kw-1.wav",
                  np.zeros(1600, np.int16))
    b = fingerprint([tmp_path / "two" / "corpus"])
    b["packages"]["numpy"] = "0.0-other"
    assert compare(a, b) == [f"package numpy: {a['packages']['numpy']} -> 0.0-other",
                             "corpus/mbrola-b: differs (2 -> 2 files)"]

    (tmp_path / "a.json").write_text(json.dumps(a))
    (tmp_path / "b.json").write_text(json.dumps(b))
    assert main(["--compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    assert "corpus/mbrola-b: differs" in capsys.readouterr().out
    assert main(["--compare", str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0
    assert capsys.readouterr().out.strip() == "the same"


def test_bad_input_gets_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert main(["--compare", str(tmp_path / "bad.json"), str(tmp_path / "bad.json")]) == 2
    assert "cannot read a fingerprint" in capsys.readouterr().err
