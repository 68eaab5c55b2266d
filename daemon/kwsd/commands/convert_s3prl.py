"""`kwsd convert-s3prl IN.ckpt OUT_DIR`: s3prl distiller checkpoint -> HF safetensors folder.

This is the one place in kwsd that unpickles a file, because s3prl checkpoints exist only as
pickles. It says so before it does, tries torch's weights-only loader first, and only with
--allow-unknown-objects falls back to an unpickler that turns every unknown class (old
checkpoints pickle their optimizer and scheduler) into an inert placeholder instead of
importing it. Convert once, then only ever load the safetensors output.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import types
from pathlib import Path
from typing import Any

HELP = "convert an s3prl DistilHuBERT checkpoint to an HF safetensors folder"

_TORCH_MODULES = {"torch", "torch._utils", "torch._tensor", "torch.storage", "torch.serialization"}
_NUMPY_NAMES = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
                for n in ("_reconstruct", "scalar")} | {("numpy", "ndarray"), ("numpy", "dtype")}
_BUILTINS = {"set", "frozenset", "list", "dict", "tuple", "slice", "complex", "bytearray"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", type=Path, help="s3prl distiller checkpoint (.ckpt)")
    parser.add_argument("out_dir", type=Path, help="output folder (config.json, model.safetensors)")
    parser.add_argument("--allow-unknown-objects", action="store_true",
                        help="if the weights-only loader refuses the file, unpickle it again with "
                             "unknown classes replaced by inert placeholders")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output")


class _Placeholder:
    """Stands in for a class the checkpoint names but kwsd never imports."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


class _PlaceholderUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in _TORCH_MODULES and (name.startswith("_rebuild") or name.endswith("Storage")
                                         or name in {"Size", "device", "dtype"}
                                         or name.startswith(("float", "int", "bfloat"))):
            return super().find_class(module, name)
        if module == "collections" and name in {"OrderedDict", "defaultdict"}:
            return super().find_class(module, name)
        if (module, name) in _NUMPY_NAMES or (module == "builtins" and name in _BUILTINS):
            return super().find_class(module, name)
        return type(name, (_Placeholder,), {"__module__": "kwsd.placeholder." + module})


_placeholder_pickle = types.ModuleType("kwsd_placeholder_pickle")
_placeholder_pickle.Unpickler = _PlaceholderUnpickler  # type: ignore[attr-defined]
# torch's legacy (non-zip) format reads its header records with pickle_module.load: that must
# be the restricted unpickler too, or a crafted file runs code before any check.
_placeholder_pickle.load = (  # type: ignore[attr-defined]
    lambda file, **kwargs: _PlaceholderUnpickler(file, **kwargs).load())
_placeholder_pickle.__name__ = "pickle"


def read_checkpoint(path: Path, allow_unknown_objects: bool) -> dict[str, Any]:
    import torch

    print(f"kwsd convert-s3prl: about to UNPICKLE {path}. Pickles can run code: convert only "
          "checkpoints from a source you trust (this is the only place kwsd unpickles).",
          file=sys.stderr)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not allow_unknown_objects:
            raise SystemExit(f"kwsd convert-s3prl: the weights-only loader refused {path}:\n"
                             f"  {str(exc).splitlines()[0]}\n"
                             "Rerun with --allow-unknown-objects to load it with unknown classes "
                             "replaced by placeholders (they are not imported).") from exc
        print("kwsd convert-s3prl: weights-only load refused; unpickling with placeholders for "
              "unknown classes", file=sys.stderr)
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=False,
                              pickle_module=_placeholder_pickle)
        except Exception as exc:  # not a torch checkpoint at all: say so, no traceback
            raise SystemExit(f"kwsd convert-s3prl: cannot read {path} as a checkpoint: "
                             f"{exc}") from exc
    if not isinstance(ckpt, dict):
        raise SystemExit(f"kwsd convert-s3prl: {path}: expected a dict, got {type(ckpt).__name__}")
    return ckpt


def convert(ckpt: dict[str, Any], out_dir: Path) -> list[str]:
    """Checkpoint dict -> HF folder; returns the s3prl keys that were deliberately dropped."""
    import torch

    from kwsd.model.checkpoint import load_state_strict, save_encoder
    from kwsd.model.distilhubert import DistilHubert
    from kwsd.model.s3prl import convert_config, convert_state

    state = ckpt.get("Distiller")
    config = ckpt.get("Config")
    if not isinstance(state, dict) or not isinstance(config, dict) \
            or not isinstance(config.get("distiller"), dict):
        raise SystemExit("kwsd convert-s3prl: not an s3prl distiller checkpoint (needs "
                         f"'Distiller' and 'Config'['distiller']; has {sorted(map(str, ckpt))})")
    bad = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        raise SystemExit(f"kwsd convert-s3prl: non-tensor entries in 'Distiller': {bad}")
    cfg = convert_config(config["distiller"], has_mask_emb="mask_emb" in state)
    hf_state, ignored = convert_state(state, cfg)
    model = DistilHubert(cfg)
    load_state_strict(model, hf_state, "converted s3prl checkpoint")
    save_encoder(model, out_dir)
    return ignored


def run(args: argparse.Namespace) -> int:
    from kwsd.model.checkpoint import CheckpointError
    from kwsd.model.s3prl import S3prlConversionError

    if not args.checkpoint.is_file():
        print(f"kwsd convert-s3prl: {args.checkpoint}: no such file", file=sys.stderr)
        return 2
    if args.out_dir.exists() and any(args.out_dir.iterdir()) and not args.force:
        print(f"kwsd convert-s3prl: {args.out_dir} is not empty (use --force)", file=sys.stderr)
        return 2
    ckpt = read_checkpoint(args.checkpoint, args.allow_unknown_objects)
    try:
        ignored = convert(ckpt, args.out_dir)
    except (CheckpointError, S3prlConversionError, ValueError) as exc:
        print(f"kwsd convert-s3prl: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.out_dir}/config.json and model.safetensors"
          + (f" (dropped {len(ignored)} distillation-head tensors)" if ignored else ""))
    return 0
