"""Fingerprint a folder of rendered audio, so two machines' renderings can be told apart.

The synthetic test voices measure the five synthetic-only keywords to +-10-40 hits from one
machine's rendering to the next (docs/TEAM-NOTES.md, sessions 26-28), while each renderer
gives the same bytes twice on one machine. A fingerprint (a digest per voice folder or test
composition, and the versions of the renderers and audio libraries) saved on one machine and
compared on another says which voices, compositions or packages differ:

    python -m kwsd.corpus.fingerprint CORPUS_DIR HELDOUT_TEST_DIR --out here.json
    python -m kwsd.corpus.fingerprint --compare there.json here.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PYTHON_PACKAGES = ("numpy", "scipy", "soxr", "soundfile", "torch", "piper-tts", "onnxruntime")
APT_PACKAGES = ("espeak-ng", "mbrola", "flite", "festival", "libttspico-utils", "sox",
                "libsndfile1")
SUFFIXES = (".wav", ".flac", ".ogg", ".csv")  # the audio, and the manifests that place it


def folder_digests(root: Path) -> dict[str, dict]:
    """Per folder directly under `root` (a voice of the corpus, a composition of a held-out set):
    its number of files (audio and manifests) and one sha256 over their relative paths and
    bytes; files at the top are the group "."."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    groups: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() in SUFFIXES and path.is_file():
            rel = path.relative_to(root)
            groups.setdefault(rel.parts[0] if len(rel.parts) > 1 else ".", []).append(path)
    out = {}
    for group, paths in groups.items():
        digest = hashlib.sha256()
        for path in paths:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        out[group] = {"files": len(paths), "sha256": digest.hexdigest()}
    return out


def package_versions() -> dict[str, str]:
    """The versions of the Python and Debian packages that render and augment the audio
    ("absent" where one is not installed)."""
    versions = {}
    for name in PYTHON_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    for name in APT_PACKAGES:
        try:
            res = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name],
                                 capture_output=True, text=True, timeout=30)
            versions[f"apt:{name}"] = res.stdout.strip() if res.returncode == 0 else "absent"
        except (OSError, subprocess.TimeoutExpired):
            versions[f"apt:{name}"] = "unknown (no dpkg-query)"
    return versions


def fingerprint(folders: list[Path]) -> dict:
    return {"packages": package_versions(),
            "folders": {Path(f).name: folder_digests(Path(f)) for f in folders}}


def compare(a: dict, b: dict) -> list[str]:
    """Lines naming every package version, folder and group that differs between two
    fingerprints (empty: the same)."""
    lines = []
    for name in sorted(set(a["packages"]) | set(b["packages"])):
        va, vb = a["packages"].get(name, "-"), b["packages"].get(name, "-")
        if va != vb:
            lines.append(f"package {name}: {va} -> {vb}")
    for folder in sorted(set(a["folders"]) | set(b["folders"])):
        ga, gb = a["folders"].get(folder, {}), b["folders"].get(folder, {})
        for group in sorted(set(ga) | set(gb)):
            if ga.get(group) != gb.get(group):
                fa = ga.get(group, {}).get("files", 0)
                fb = gb.get(group, {}).get("files", 0)
                lines.append(f"{folder}/{group}: differs ({fa} -> {fb} files)")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kwsd.corpus.fingerprint", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folders", nargs="*", type=Path,
                    help="folders of audio (a corpus, a held-out set) to fingerprint")
    ap.add_argument("--out", type=Path, help="write the fingerprint here (default: stdout)")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                    help="print what differs between two saved fingerprints (exit 1 if any)")
    args = ap.parse_args(argv)
    if args.compare:
        try:
            a, b = (json.loads(p.read_text()) for p in args.compare)
        except (OSError, ValueError) as exc:
            print(f"error: cannot read a fingerprint: {exc}", file=sys.stderr)
            return 2
        lines = compare(a, b)
        print("\n".join(lines) if lines else "the same")
        return 1 if lines else 0
    if not args.folders:
        ap.error("give folders to fingerprint, or --compare A B")
    try:
        text = json.dumps(fingerprint(args.folders), indent=1, sort_keys=True) + "\n"
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
