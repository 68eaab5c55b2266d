"""The per-voice `_rows.csv` files while workers append to them (no TTS needed).

A render crashed with KeyError: 'file' when the progress manifest read a voice's rows file
that a worker had just created; these pin the fix.
"""

import csv
from multiprocessing import Pool
from pathlib import Path

from kwsd.corpus import render as corpus


def _row(file: str) -> dict:
    return {name: "" for name in corpus.MANIFEST_FIELDS} | {"file": file, "label": "_unknown_"}


def _append_rows(args: tuple[str, int, int]) -> None:
    path, first, count = args
    with corpus._open_rows(Path(path)) as f:
        writer = csv.DictWriter(f, fieldnames=corpus.MANIFEST_FIELDS)
        for i in range(first, first + count):
            writer.writerow(_row(f"v/clip-{i}.wav"))
            f.flush()


def test_two_workers_on_one_voice_write_one_header_first(tmp_path) -> None:
    # The race is between creating the file and writing its header: run it on many files.
    for voice in range(20):
        (tmp_path / f"v{voice}").mkdir()
    with Pool(2) as pool:
        pool.map(_append_rows, [(str(tmp_path / f"v{voice}" / "_rows.csv"), first, 50)
                                for voice in range(20) for first in (0, 1000)], chunksize=1)
    for voice in range(20):
        rows_path = tmp_path / f"v{voice}" / "_rows.csv"
        lines = rows_path.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("file,label,"), rows_path
        assert sum(line.startswith("file,") for line in lines) == 1, rows_path
        with rows_path.open(newline="", encoding="utf-8") as f:
            files = [r["file"] for r in csv.DictReader(f)]
        assert sorted(files) == sorted([f"v/clip-{i}.wav" for i in range(50)]
                                       + [f"v/clip-{i}.wav" for i in range(1000, 1050)]), rows_path
    assert not list(tmp_path.glob("v*/.*.tmp"))


def test_manifest_skips_a_rows_file_being_written(tmp_path) -> None:
    for voice in ("ready", "starting", "writing"):
        (tmp_path / voice).mkdir()
    (tmp_path / "ready" / "a.wav").write_bytes(b"x")
    (tmp_path / "writing" / "b.wav").write_bytes(b"x")
    _append_rows((str(tmp_path / "ready" / "_rows.csv"), 0, 0))
    with (tmp_path / "ready" / "_rows.csv").open("a", newline="", encoding="utf-8") as f:
        csv.DictWriter(f, fieldnames=corpus.MANIFEST_FIELDS).writerow(_row("ready/a.wav"))
    (tmp_path / "starting" / "_rows.csv").write_text("file,lab", encoding="utf-8")
    header = ",".join(corpus.MANIFEST_FIELDS)
    (tmp_path / "writing" / "_rows.csv").write_text(f"{header}\nwriting/b.wav,_unkn",
                                                    encoding="utf-8")
    rows = corpus.write_manifest(tmp_path)
    assert [r["file"] for r in rows] == ["ready/a.wav"]
    with (tmp_path / "manifest.csv").open(newline="", encoding="utf-8") as f:
        assert [r["file"] for r in csv.DictReader(f)] == ["ready/a.wav"]
