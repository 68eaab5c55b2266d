"""Inference copies of the encoder: weight norm folded, parts converted to faster dtypes.

Measured on this project's CPU (AVX-512 BF16, no AMX; `kwsd bench`): the conv stack runs about
twice as fast with bf16 weights, the transformer layers 2-3x as fast with bf16 weights or with
dynamically quantized int8 Linear layers. Each precision changes the numbers a little; bench
reports by how much, and the precision a stream uses is a choice, never silent: fp32 unless
kws.json `streaming.precision` (measured and written by `kwsd bench --bundle DIR --choose`) or
the config's `engine.precision` asks for another (precision.py decides which).
"""

from __future__ import annotations

import threading
import warnings

import torch
from torch import nn
from torch.nn.utils import parametrize

from kwsd.model.distilhubert import DistilHubert
from kwsd.model.precision import PRECISIONS


def fold_weight_norm(model: nn.Module) -> None:
    """Replace weight-norm parametrizations by their current value (no per-call recompute)."""
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)


def fuse_qkv(model: DistilHubert) -> None:
    """One Linear for q, k and v (one matmul, and one input quantisation in int8, per layer)."""
    for layer in model.encoder.layers:
        att = layer.attention
        h = att.q_proj.in_features
        fused = nn.Linear(h, 3 * h)
        with torch.no_grad():
            fused.weight.copy_(torch.cat([att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]))
            fused.bias.copy_(torch.cat([att.q_proj.bias, att.k_proj.bias, att.v_proj.bias]))
        att.qkv = fused
        del att.q_proj, att.k_proj, att.v_proj


def _quantize_int8(layer: nn.Module) -> nn.Module:
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notice
        return quantize_dynamic(layer, {nn.Linear}, dtype=torch.qint8)


def inference_encoder(encoder: DistilHubert, precision: str = "fp32") -> DistilHubert:
    """A converted eval-mode copy (the original, with its HF-layout state dict, is untouched)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {sorted(PRECISIONS)}")
    conv_dtype_name, layers = PRECISIONS[precision]
    conv_dtype = getattr(torch, conv_dtype_name)
    # A fresh module, not a deepcopy: removing a parametrization edits the module's class,
    # which a deepcopy would share with the original.
    model = DistilHubert(encoder.config).eval()
    model.load_state_dict(encoder.state_dict())
    fold_weight_norm(model)
    fuse_qkv(model)
    model.requires_grad_(False)
    # The first conv (one input channel, GroupNorm) is cheap and no faster in bf16: keep fp32.
    for layer in model.feature_extractor.conv_layers[1:]:
        layer.to(conv_dtype)
    for i, layer in enumerate(model.encoder.layers):
        if layers == "bf16":
            layer.to(torch.bfloat16)
        elif layers == "int8":
            model.encoder.layers[i] = _quantize_int8(layer)
    return model


_LOCK = threading.Lock()


def shared_inference_encoder(bundle, precision: str) -> DistilHubert:
    """One converted copy per (bundle, precision), shared by every stream of that bundle
    (streams may open concurrently, e.g. gRPC Detect calls: built once under a lock)."""
    with _LOCK:
        cache = bundle.inference_encoders
        if precision not in cache:
            cache[precision] = inference_encoder(bundle.encoder, precision)
        return cache[precision]
