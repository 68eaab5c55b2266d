"""Encoder checkpoints in HF layout: load (safetensors, or a weights-only torch file) and save.

A model file is untrusted input: safetensors needs no unpickling, and `pytorch_model.bin` is
read with `torch.load(weights_only=True)`, which refuses anything but tensors and plain
containers. Loading is all or nothing: any missing, unexpected or mis-shaped tensor raises a
`CheckpointError` that lists every one of them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kwsd.model.config import EncoderConfig, EncoderConfigError
from kwsd.model.distilhubert import DistilHubert

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
TORCH_FILE = "pytorch_model.bin"

# HF checkpoints name the weight-normed positional conv either way, depending on the torch
# version that wrote them; ours uses the parametrization names (as HF does in memory).
_WEIGHT_NORM_ALIASES = {".weight_g": ".parametrizations.weight.original0",
                        ".weight_v": ".parametrizations.weight.original1"}


class CheckpointError(ValueError):
    """A checkpoint that does not describe exactly the encoder it is loaded into."""


def canonical_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename old-style weight-norm keys (weight_g/weight_v) to parametrization keys."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for old, new in _WEIGHT_NORM_ALIASES.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
                break
        if key in out:
            raise CheckpointError(f"tensor {key!r} appears twice (old and new weight-norm names)")
        out[key] = value
    return out


def check_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor],
                     source: str) -> None:
    """Raise CheckpointError listing every missing, unexpected and mis-shaped tensor."""
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    misshaped = sorted(f"{k}: file {tuple(state[k].shape)}, model {tuple(want[k].shape)}"
                       for k in set(want) & set(state) if state[k].shape != want[k].shape)
    not_float = sorted(k for k in set(want) & set(state)
                       if not torch.is_floating_point(state[k]))
    problems = []
    if missing:
        problems.append(f"missing tensors ({len(missing)}): " + ", ".join(missing))
    if unexpected:
        problems.append(f"unexpected tensors ({len(unexpected)}): " + ", ".join(unexpected))
    if misshaped:
        problems.append(f"mis-shaped tensors ({len(misshaped)}): " + "; ".join(misshaped))
    if not_float:
        problems.append(f"non-float tensors ({len(not_float)}): " + ", ".join(not_float))
    if problems:
        raise CheckpointError(f"{source} does not match the encoder config:\n  "
                              + "\n  ".join(problems))


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor],
                      source: str) -> None:
    """Check, then copy every tensor (as float32) into `model`."""
    state = canonical_keys(state)
    check_state_dict(model, state, source)
    model.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)


def read_weights(folder: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """The folder's weights: model.safetensors if present, else pytorch_model.bin (weights only)."""
    st = folder / SAFETENSORS_FILE
    if st.is_file():
        try:
            return load_file(str(st)), st
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{st}: not a readable safetensors file ({exc})") from exc
    pt = folder / TORCH_FILE
    if pt.is_file():
        try:
            state = torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
            raise CheckpointError(f"{pt}: refused by the weights-only loader (it may hold "
                                  f"pickled code; never unpickled): {exc}") from exc
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                                  for v in state.values()):
            raise CheckpointError(f"{pt}: expected a dict of tensors")
        return state, pt
    raise CheckpointError(f"{folder}: no {SAFETENSORS_FILE} or {TORCH_FILE}")


def load_encoder(folder: str | Path) -> DistilHubert:
    """An eval-mode encoder from an HF folder (config.json + weights)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a directory")
    try:
        cfg = EncoderConfig.from_json_file(folder / CONFIG_FILE)
    except EncoderConfigError as exc:
        raise CheckpointError(str(exc)) from exc
    state, path = read_weights(folder)
    model = DistilHubert(cfg)
    load_state_strict(model, state, str(path))
    return model.eval()


def save_encoder(model: DistilHubert, folder: str | Path) -> None:
    """Write config.json + model.safetensors; `HubertModel.from_pretrained` reads the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.config.to_json_file(folder / CONFIG_FILE)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / SAFETENSORS_FILE), metadata={"format": "pt"})
