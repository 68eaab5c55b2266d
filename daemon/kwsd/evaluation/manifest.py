"""Evaluation manifests: which keyword each WAV file holds, and where.

The format is the one of `../shared/data/real-dev/wuw-dev.csv`: columns `file`, `keyword`
(empty: no keyword), `kw_start_s`, `kw_end_s`, `in_sentence`; other columns are kept in `extra`
(a `transcription` column lets the scorer recognise unlabelled keyword occurrences).
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED_COLUMNS = ("file", "keyword", "kw_start_s", "kw_end_s", "in_sentence")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file, the line and the problem."""


@dataclass(frozen=True)
class EvalItem:
    """One row of an evaluation manifest. `path` is resolved; `file` is as written."""

    file: str
    path: Path
    keyword: str
    kw_start_s: float | None
    kw_end_s: float | None
    in_sentence: bool
    transcription: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def _parse_bool(text: str, where: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "y", "t"):
        return True
    if value in ("false", "0", "no", "n", "f", ""):
        return False
    raise ManifestError(f"{where}: in_sentence must be true/false, got {text!r}")


def _parse_time(text: str, column: str, where: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ManifestError(f"{where}: {column} must be a number of seconds, got {text!r}"
                            ) from None
    if value < 0:
        raise ManifestError(f"{where}: {column} is negative ({value})")
    return value


def read_eval_manifest(path: str | Path, problems: list[str] | None = None) -> list[EvalItem]:
    """Read and check a manifest; file paths are relative to the manifest's folder.

    A bad row raises ManifestError, unless a `problems` list is given: then the row's message
    is appended there and the row (and its file) is left out, so one mislabelled row does not
    stop an evaluation.
    """
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"{path}: cannot open manifest ({exc.strerror or exc})") from None
    with handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ManifestError(f"{path}: missing column(s) {', '.join(missing)} "
                                f"(need {', '.join(REQUIRED_COLUMNS)})")
        items = []
        for line, row in enumerate(reader, start=2):
            try:
                items.append(_parse_row(row, f"{path}:{line}", path))
            except ManifestError as exc:
                if problems is None:
                    raise
                problems.append(str(exc))
    if not items:
        raise ManifestError(f"{path}: no usable rows")
    return items


def _parse_row(row: dict, where: str, path: Path) -> EvalItem:
    file = (row.get("file") or "").strip()
    if not file:
        raise ManifestError(f"{where}: empty file column")
    keyword = (row.get("keyword") or "").strip()
    start = _parse_time(row.get("kw_start_s") or "", "kw_start_s", where)
    end = _parse_time(row.get("kw_end_s") or "", "kw_end_s", where)
    if keyword and (start is None or end is None):
        raise ManifestError(f"{where}: keyword {keyword!r} needs kw_start_s and kw_end_s")
    if start is not None and end is not None and (end < start or (keyword and end == start)):
        # 0 / 0 in WUW-II means "not time-labelled": scored at 0 s, the keyword said later
        # would count as a miss and its detection as a false alarm
        raise ManifestError(f"{where}: kw_end_s {end} is not after kw_start_s {start} (a "
                            "keyword label needs the time it is said)")
    extra = {k: v for k, v in row.items() if k not in REQUIRED_COLUMNS and k}
    return EvalItem(
        file=file, path=(path.parent / file), keyword=keyword,
        kw_start_s=start if keyword else None, kw_end_s=end if keyword else None,
        in_sentence=_parse_bool(row.get("in_sentence") or "", where),
        transcription=(row.get("transcription") or "").strip(), extra=extra)


_WORD = re.compile(r"[a-z]+")


def strip_noise_tags(text: str) -> str:
    """A transcription without its bracketed noise tags ([click], {breath}, <noise>)."""
    return re.sub(r"\[[^\]]*\]|\{[^}]*\}|<[^>]*>", " ", text)


def _words(text: str) -> list[str]:
    # Transcriptions carry markup such as [click], {breath}, _Onword, ^Startrek: keep letters only,
    # and drop bracketed noise tags so "[voices]" never counts as a word.
    return _WORD.findall(strip_noise_tags(text.lower()))


def count_keyword(transcription: str, keyword: str) -> int:
    """How often `keyword` occurs in `transcription` ("ThinkEngine" and "think engine" alike).

    A word counts when it starts with the keyword's letters ("computers" counts as "computer"),
    and multi-word keywords also match when written as consecutive words.
    """
    target = "".join(_WORD.findall(keyword.lower()))
    if not target:
        return 0
    words = _words(transcription)
    count, i = 0, 0
    while i < len(words):
        joined, j = "", i
        while j < len(words) and len(joined) < len(target):
            joined += words[j]
            j += 1
        if joined.startswith(target):
            count += 1
            i = j
        else:
            i += 1
    return count
