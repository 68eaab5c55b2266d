"""Enrolled keywords on disk: one folder per keyword in the user's or the service's data
directory, with the encoder they were made for.

    <dir>/<name with spaces as _>/keyword.json        name, threshold, encoder id, calibration
    <dir>/<...>/templates.safetensors                  the frame-feature templates
    <dir>/<...>/examples/1.wav ...                     the examples (unless --no-keep-audio)

The templates only make sense for the encoder that computed them; after a model change the
keyword is refused with a message that says how to re-enroll (from the kept examples).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from kwsd.audio.audiofile import read_audio_16k, write_wav_16k
from kwsd.config import is_system_service
from kwsd.enrollment.detector import SCORER, EnrolledKeyword

FORMAT = 1
LEGACY_SCORER = "dtw-min-p0.03"  # keywords saved before the scorer was recorded
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9' -]{0,38}[a-z0-9])?$")
RESERVED = {"_unknown_", "_silence_"}


class StoreError(ValueError):
    """A bad keyword name, a missing keyword, or an unreadable / mismatched stored keyword."""


def keywords_dir() -> Path:
    """$KWSD_KEYWORDS_DIR, else the service's state directory (/var/lib/kwsd/keywords), else
    $XDG_DATA_HOME/kwsd/keywords."""
    if os.environ.get("KWSD_KEYWORDS_DIR"):
        return Path(os.environ["KWSD_KEYWORDS_DIR"])
    if os.environ.get("STATE_DIRECTORY"):           # systemd StateDirectory=kwsd
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0]) / "keywords"
    if is_system_service():
        return Path("/var/lib/kwsd/keywords")
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "kwsd" / "keywords"


def check_name(name: str, model_keywords: list[str] | tuple[str, ...] = ()) -> str:
    """The name as stored (lower case, single spaces), or StoreError saying what is wrong."""
    norm = " ".join(str(name).lower().split())
    if not NAME_RE.match(norm):
        raise StoreError(f"bad keyword name {name!r}: 1-40 characters, letters a-z, digits, "
                         "spaces, - and ', starting and ending with a letter or digit")
    if norm in model_keywords or norm in RESERVED:
        raise StoreError(f"{norm!r} is already a keyword of the model; choose another name")
    return norm


def _folder(root: Path, name: str) -> Path:
    return root / name.replace(" ", "_")


def save(kw: EnrolledKeyword, examples: list[np.ndarray] | None, root: Path | None = None
         ) -> Path:
    """Write atomically (a temporary folder renamed into place), replacing an older version."""
    from safetensors.numpy import save_file

    root = Path(root or keywords_dir())
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".enroll-", dir=root))
    try:
        meta = {"format": FORMAT, "name": kw.name, "threshold": kw.threshold,
                "encoder_id": kw.encoder_id, "scorer": kw.scorer,
                "fa_target_per_h": kw.fa_target_per_h,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "templates": len(kw.templates),
                "examples_kept": bool(examples), "info": kw.info}
        (tmp / "keyword.json").write_text(json.dumps(meta, indent=2) + "\n")
        save_file({f"t{i}": np.ascontiguousarray(t, dtype=np.float32)
                   for i, t in enumerate(kw.templates)}, str(tmp / "templates.safetensors"))
        if examples:
            (tmp / "examples").mkdir()
            for i, x in enumerate(examples):
                write_wav_16k(tmp / "examples" / f"{i + 1}.wav", x)
        final = _folder(root, kw.name)
        old = None
        if final.exists():
            old = root / f".old-{final.name}-{os.getpid()}"
            final.rename(old)
        tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load(folder: Path) -> EnrolledKeyword:
    from safetensors.numpy import load_file

    try:
        meta = json.loads((folder / "keyword.json").read_text())
        tensors = load_file(str(folder / "templates.safetensors"))
        templates = [tensors[f"t{i}"] for i in range(int(meta["templates"]))]
        return EnrolledKeyword(name=str(meta["name"]), templates=templates,
                               threshold=float(meta["threshold"]),
                               encoder_id=str(meta["encoder_id"]),
                               scorer=str(meta.get("scorer", LEGACY_SCORER)),
                               fa_target_per_h=float(meta.get("fa_target_per_h", 1.0)),
                               info=dict(meta.get("info") or {}))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreError(f"{folder}: unreadable enrolled keyword ({exc})") from None


def list_keywords(root: Path | None = None) -> list[EnrolledKeyword]:
    root = Path(root or keywords_dir())
    if not root.is_dir():
        return []
    out = []
    for f in sorted(root.iterdir()):
        if f.is_dir() and not f.name.startswith(".") and (f / "keyword.json").is_file():
            out.append(load(f))
    return out


def load_for_encoder(encoder: str, root: Path | None = None
                     ) -> tuple[list[EnrolledKeyword], list[str]]:
    """(keywords made for this encoder, one message per keyword that is not usable)."""
    root = Path(root or keywords_dir())
    usable, problems = [], []
    if not root.is_dir():
        return usable, problems
    for f in sorted(root.iterdir()):
        if not f.is_dir() or f.name.startswith(".") or not (f / "keyword.json").is_file():
            continue
        try:
            kw = load(f)
        except StoreError as exc:
            problems.append(str(exc))
            continue
        again = (f"`kwsd enroll {kw.name!r} --again` re-enrolls it from its kept examples"
                 if (f / "examples").is_dir() else "enroll it again (no examples were kept)")
        if kw.encoder_id != encoder:
            problems.append(f"enrolled keyword {kw.name!r} was made for encoder "
                            f"{kw.encoder_id}, the model's encoder is {encoder}: {again}")
            continue
        if kw.scorer != SCORER:
            problems.append(f"enrolled keyword {kw.name!r} was calibrated for the scoring rule "
                            f"{kw.scorer}, this kwsd scores with {SCORER}: {again}")
            continue
        usable.append(kw)
    return usable, problems


def kept_examples(name: str, root: Path | None = None) -> list[np.ndarray]:
    folder = _folder(Path(root or keywords_dir()), name)
    files = sorted((folder / "examples").glob("*.wav"), key=lambda p: int(p.stem))
    if not files:
        raise StoreError(f"{name!r}: no kept examples in {folder / 'examples'}")
    return [read_audio_16k(p) for p in files]


def remove(name: str, root: Path | None = None) -> None:
    folder = _folder(Path(root or keywords_dir()), " ".join(name.lower().split()))
    if not (folder / "keyword.json").is_file():
        raise StoreError(f"no enrolled keyword {name!r} in {folder.parent}")
    shutil.rmtree(folder)
