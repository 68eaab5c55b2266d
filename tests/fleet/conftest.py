"""Fixtures of the fleet suite: the reliability suite's synthesised speech, and a folder with a
short path (Unix sockets must fit in 108 bytes)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability.conftest import clip_pool  # noqa: F401  (fixture)


@pytest.fixture
def fleet_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="kwsd-f-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)
