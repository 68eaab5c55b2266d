"""The real recordings the tests use, committed in tests/data so that a lone clone passes its tests
(sources and licences: tests/data/README.md). They keep the relative paths they have in
../shared/data/real-dev, the evaluation set they were copied from (tests/test_data.py checks that
they are still byte-identical when ../shared is beside the clone)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"

BROKEN_WAVS = sorted((DATA / "broken").glob("*.wav"))
"""Malformed WAVs (truncated, empty, corrupt headers) from the PocketSphinx test suite."""

SPEECH_WAV = DATA / "speech" / "alif_ml-embedded-evaluation-kit-yes_no_go_stop.wav"
"""Real speech without the demo keywords: four Speech Commands clips, 16 kHz, 4 s."""

WUW_CSV = DATA / "wuw-dev.csv"
"""Six Wake-Up-Word II utterances of the demo keywords said alone (8 kHz telephone speech), in
the format of real-dev/wuw-dev.csv: hand-labelled keyword start and end; `file` is relative to
DATA."""

WUW_8KHZ_WAV = DATA / "wuw-dev" / "00007" / "WUWII00007_001.wav"
"""One of them: "operator", 8 kHz, 2.1 s."""
