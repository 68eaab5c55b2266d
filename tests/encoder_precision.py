"""What an encoder copy really runs, read from its modules and weights (not from kws.json or
the config): the precision tests check the daemon's streams with it."""

from __future__ import annotations

import torch
from kwsd.model.precision import PRECISIONS
from torch.ao.nn.quantized.dynamic import Linear as DynamicInt8Linear

_CONV = {torch.float32: "float32", torch.bfloat16: "bfloat16"}
_LAYERS = {torch.float32: "fp32", torch.bfloat16: "bf16"}


def running_precision(encoder) -> str:
    """The precision name whose recipe (runtime.inference_encoder) gives these modules."""
    convs = {_CONV[layer.conv.weight.dtype] for layer in encoder.feature_extractor.conv_layers[1:]}
    kinds = set()
    for layer in encoder.encoder.layers:
        if any(isinstance(m, DynamicInt8Linear) for m in layer.modules()):
            assert not any(type(m) is torch.nn.Linear for m in layer.modules())
            kinds.add("int8")
        else:
            kinds.add(_LAYERS[layer.attention.qkv.weight.dtype])
    assert len(convs) == 1 and len(kinds) == 1, (convs, kinds)
    spec = (convs.pop(), kinds.pop())
    [name] = [n for n, s in PRECISIONS.items() if s == spec]
    return name
