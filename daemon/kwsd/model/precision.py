"""The encoder precisions a stream can run, and which one it runs.

Names only (no torch), so the config can check `engine.precision` without loading torch;
runtime.py builds the encoder copies. Which precision a stream runs is decided in one place,
`resolve_precision`: the config's `engine.precision` when set, else the bundle's kws.json
`streaming.precision` (written by `kwsd bench --bundle DIR --choose`, which measures every
precision on real speech), else fp32.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_PRECISION = "fp32"

PRECISIONS: dict[str, tuple[str, str]] = {
    # name: (conv stack dtype, transformer layers: "fp32" | "bf16" | "int8")
    "fp32": ("float32", "fp32"),
    "bf16-conv": ("bfloat16", "fp32"),
    "bf16": ("bfloat16", "bf16"),
    "bf16-conv-int8": ("bfloat16", "int8"),
    "int8": ("float32", "int8"),
}


def bundle_precision(meta: Mapping[str, Any] | None) -> str:
    """The precision kws.json asks for (`streaming.precision`), else fp32."""
    streaming = (meta or {}).get("streaming") or {}
    return str(streaming.get("precision") or DEFAULT_PRECISION)


def resolve_precision(meta: Mapping[str, Any] | None, override: str | None = None) -> str:
    """The precision a stream runs: `override` (engine.precision, a caller) when given, else
    the bundle's. Raises ValueError for a name that is not in PRECISIONS."""
    precision = override or bundle_precision(meta)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
    return precision
