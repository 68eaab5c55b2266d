"""The recordings committed in tests/data: small, each one described in tests/data/README.md,
and (when ../shared is beside the clone) still byte-identical to the evaluation files they were
copied from; the shared real-dev set itself reads the way its manifests say."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from kwsd.audio.audiofile import AudioFileError, read_audio_16k
from recordings import BROKEN_WAVS, DATA, SPEECH_WAV, WUW_8KHZ_WAV, WUW_CSV

MAX_BYTES = 2 * 1024 * 1024
AUDIO = sorted(p for p in DATA.rglob("*") if p.suffix in {".wav", ".flac"})


def test_data_is_small_and_every_recording_is_described():
    assert sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file()) <= MAX_BYTES
    readme = (DATA / "README.md").read_text()
    assert AUDIO and all(p.name in readme for p in AUDIO), "README: source and licence per file"
    for p in [*BROKEN_WAVS, SPEECH_WAV, WUW_8KHZ_WAV, WUW_CSV]:
        assert p.is_file()


def test_wuw_manifest_names_committed_recordings():
    with open(WUW_CSV, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for r in rows:
        samples = read_audio_16k(DATA / r["file"])
        assert len(samples) / 16000 == pytest.approx(float(r["duration_s"]), abs=0.01)
        assert 0 < float(r["kw_start_s"]) < float(r["kw_end_s"]) <= float(r["duration_s"])


@pytest.mark.shared_data
def test_committed_recordings_equal_their_source(shared_data):
    real_dev = shared_data / "real-dev"
    for p in AUDIO:
        rel = p.relative_to(DATA)
        assert p.read_bytes() == (real_dev / rel).read_bytes(), f"{rel} differs from real-dev"
    with open(WUW_CSV, newline="") as fh, open(real_dev / "wuw-dev.csv", newline="") as src:
        source = list(csv.DictReader(src))
        assert all(r in source for r in csv.DictReader(fh))


@pytest.mark.shared_data
def test_every_real_dev_recording_reads_as_its_manifest_says(shared_data):
    """All of wuw-dev (8 kHz telephone) and speech (8 to 48 kHz) into 16 kHz mono at the listed
    duration; every file of broken/ refused with an error that names it."""
    real_dev = shared_data / "real-dev"
    rows = []
    for name in ("wuw-dev.csv", "speech.csv"):
        with open(real_dev / name, newline="") as fh:
            rows += list(csv.DictReader(fh))
    assert len(rows) > 300
    for r in rows:
        path = real_dev / r["file"]
        if r["file"].startswith("broken/"):
            with pytest.raises(AudioFileError, match=Path(r["file"]).name):
                read_audio_16k(path)
            continue
        samples = read_audio_16k(path)
        assert len(samples) / 16000 == pytest.approx(float(r["duration_s"]), abs=0.01), r["file"]
