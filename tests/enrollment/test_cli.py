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
