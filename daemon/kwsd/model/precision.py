"""The encoder precisions a stream can run, and which one it runs.

Names only (no torch), so the config can check `engine.precision` without loading torch;
runtime.py builds the encoder copies. Which precision a stream runs is decided in one place,
`resolve_precision`: the config's `engine.precision` when set, else the bundle's kws.json
`streaming.precision` (written by `kwsd bench --bundle DIR --choose`, which measures every
precision on real speech), else fp32. A bundle's bfloat16 choice was measured on a CPU that
computes bfloat16 natively; where this CPU does not, oneDNN emulates it, slower than fp32, so
the bundle's choice falls back to its bfloat16-free twin (an explicit `engine.precision` is
obeyed as given).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_PRECISION = "fp32"

PRECISIONS: dict[str, tuple[str, str]] = {
    # name: (conv stack dtype, transformer layers: "fp32" | "bf16" | "int8")
    "fp32": ("float32", "fp32"),
    "bf16-conv": ("bfloat16", "fp32"),
    "bf16": ("bfloat16", "bf16"),
    "bf16-conv-int8": ("bfloat16", "int8"),
    "int8": ("float32", "int8"),
}


BF16_FALLBACK = {"bf16-conv": "fp32", "bf16": "fp32", "bf16-conv-int8": "int8"}
"""A bundle precision that uses bfloat16 -> what runs instead on a CPU without native bf16."""


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU runs bfloat16 kernels natively (oneDNN's own check: AVX-512 or AMX)."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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
    if not override and precision in BF16_FALLBACK and not native_bf16():
        _warn_fallback(precision)
        return BF16_FALLBACK[precision]
    return precision


@functools.cache
def _warn_fallback(precision: str) -> None:
    log.warning("the model asks for %s, but this CPU has no native bfloat16: running %s "
                "(set engine.precision to force a precision)", precision,
                BF16_FALLBACK[precision])
