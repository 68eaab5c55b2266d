"""`kwsd enroll` / `kwsd keywords` refusals and listing through the real CLI dispatcher."""

from __future__ import annotations

from kwsd.cli import main
from recordings import WUW_8KHZ_WAV


def test_enroll_refuses_a_model_keyword_and_a_bad_name(tmp_path, capsys):
    d = str(tmp_path / "kw")
    assert main(["enroll", "Operator", "--wav", str(WUW_8KHZ_WAV), "--dir", d]) == 2
    assert "already a keyword of the model" in capsys.readouterr().out
    assert main(["enroll", "hey/op", "--wav", str(WUW_8KHZ_WAV), "--dir", d]) == 2
    assert "bad keyword name" in capsys.readouterr().out
    assert main(["enroll", "hey op", "--wav", str(tmp_path / "missing.wav"), "--dir", d]) == 2
    assert "missing.wav" in capsys.readouterr().out


def test_keywords_list_and_remove_on_an_empty_directory(tmp_path, capsys):
    d = str(tmp_path / "kw")
    assert main(["keywords", "list", "--dir", d]) == 0
    assert "no enrolled keywords" in capsys.readouterr().out
    assert main(["keywords", "remove", "hey op", "--dir", d]) == 1
    assert "no enrolled keyword 'hey op'" in capsys.readouterr().out


def test_again_takes_the_new_models_default_target_but_keeps_an_asked_one(tmp_path, monkeypatch,
                                                                        capsys):
    """After a model change `--again` re-enrolls from the kept examples: a target the user
    asked for stays, the old model's default does not (defaults are per encoder)."""
    import json
    import shutil

    from kwsd.config import default_model_path
    from kwsd.enrollment import store
    from recordings import DATA, SPEECH_WAV

    bank = tmp_path / "bank"
    bank.mkdir()
    shutil.copy(SPEECH_WAV, bank / "speech.wav")   # a small bank keeps the test quick
    monkeypatch.setenv("KWSD_NEGATIVES_DIR", str(bank))
    monkeypatch.setenv("KWSD_CACHE_DIR", str(tmp_path / "cache"))
    model = tmp_path / "model"
    shutil.copytree(default_model_path(), model)

    def set_default(per_h: float) -> None:
        meta = json.loads((model / "kws.json").read_text())
        meta["enrollment"] = {"fa_target_per_h": per_h, "fa_target_per_h_one_example": per_h}
        (model / "kws.json").write_text(json.dumps(meta))

    def target(name: str) -> float:
        return store.load(store._folder(tmp_path / "kw", name)).fa_target_per_h

    example = str(DATA / "wuw-dev" / "00017" / "WUWII00017_001.wav")
    common = ["--model", str(model), "--dir", str(tmp_path / "kw")]
    set_default(0.2)
    assert main(["enroll", "hey op", "--wav", example, *common]) == 0
    assert main(["enroll", "hey there", "--wav", example, "--fa-target", "1.5", *common]) == 0
    assert (target("hey op"), target("hey there")) == (0.2, 1.5)
    set_default(2.0)                                 # "a new model" with another default
    assert main(["enroll", "hey op", "--again", *common]) == 0
    assert main(["enroll", "hey there", "--again", *common]) == 0
    assert (target("hey op"), target("hey there")) == (2.0, 1.5)
    capsys.readouterr()
