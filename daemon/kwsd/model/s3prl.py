"""s3prl distiller checkpoint contents -> HF-layout encoder config and state dict.

The key mapping is the reverse of transformers'
`convert_distilhubert_original_s3prl_checkpoint_to_pytorch.py`. This module only maps
already-loaded dicts; reading the (pickled) checkpoint file is the convert-s3prl command's job.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import torch

from kwsd.model.config import EncoderConfig

_LAYER_MAP = {
    "self_attn.k_proj": "attention.k_proj",
    "self_attn.v_proj": "attention.v_proj",
    "self_attn.q_proj": "attention.q_proj",
    "self_attn.out_proj": "attention.out_proj",
    "self_attn_layer_norm": "layer_norm",
    "fc1": "feed_forward.intermediate_dense",
    "fc2": "feed_forward.output_dense",
    "final_layer_norm": "final_layer_norm",
}
_IGNORED_PREFIXES = ("output_layer.",)  # distillation prediction heads: not part of the encoder


class S3prlConversionError(ValueError):
    """A distiller checkpoint this converter cannot map exactly."""


def _conv_layers(spec: str) -> list[tuple[int, int, int]]:
    """Evaluate s3prl's conv spec string ("[(512,10,5)] + [(512,3,2)] * 4 ...") without eval()."""

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.List | ast.Tuple):
            items = [ev(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
            a, b = ev(node.left), ev(node.right)
            return a + b if isinstance(node.op, ast.Add) else a * b
        raise S3prlConversionError(f"unsupported extractor_conv_feature_layers: {spec!r}")

    try:
        layers = ev(ast.parse(spec, mode="eval"))
    except SyntaxError as exc:
        raise S3prlConversionError(f"bad extractor_conv_feature_layers {spec!r}: {exc}") from exc
    if not isinstance(layers, list) or not all(isinstance(t, tuple) and len(t) == 3
                                               for t in layers):
        raise S3prlConversionError(f"extractor_conv_feature_layers {spec!r} is not a list of "
                                   "(dim, kernel, stride) tuples")
    return layers


def convert_config(distiller: dict[str, Any], has_mask_emb: bool) -> EncoderConfig:
    """DistillerConfig dict (ckpt["Config"]["distiller"]) -> EncoderConfig, s3prl defaults."""
    def get(name: str, default: Any) -> Any:
        return distiller.get(name, default)

    if get("layer_norm_first", False):
        raise S3prlConversionError("layer_norm_first=True (pre-LN) is not supported")
    if get("attention_type", "original") != "original":
        raise S3prlConversionError(f"attention_type {get('attention_type', '')!r} is not "
                                   "supported (only 'original')")
    if get("task_emb_type", "expand-last") not in ("expand-last", "self-hidden", "none"):
        raise S3prlConversionError(f"task_emb_type {get('task_emb_type', '')!r} changes the "
                                   "encoder input; not supported")
    if int(get("encoder_layers", 1)) < 1:
        raise S3prlConversionError("encoder_layers=0 is not supported")
    layers = _conv_layers(str(get("extractor_conv_feature_layers",
                                  "[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2")))
    return EncoderConfig(
        conv_dim=tuple(d for d, _, _ in layers),
        conv_kernel=tuple(k for _, k, _ in layers),
        conv_stride=tuple(s for _, _, s in layers),
        conv_bias=False,
        feat_extract_norm="layer" if get("extractor_mode", "default") == "layer_norm"
        else "group",
        hidden_size=int(get("encoder_embed_dim", 768)),
        num_hidden_layers=int(get("encoder_layers", 1)),
        num_attention_heads=int(get("encoder_attention_heads", 12)),
        intermediate_size=int(get("encoder_ffn_embed_dim", 3072)),
        hidden_act=str(get("activation_fn", "gelu")),
        feat_proj_layer_norm=False,
        num_conv_pos_embeddings=int(get("conv_pos", 128)),
        num_conv_pos_embedding_groups=int(get("conv_pos_groups", 16)),
        mask_time_prob=0.05 if has_mask_emb else 0.0,
        mask_feature_prob=0.0,
    )


def convert_state(state: dict[str, torch.Tensor],
                  cfg: EncoderConfig) -> tuple[dict[str, torch.Tensor], list[str]]:
    """s3prl DistillerModel state dict -> (HF state dict, ignored s3prl keys).

    Keys that map to nothing raise; only the distillation prediction heads are ignored.
    """
    out: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    unknown: list[str] = []
    conv = re.compile(r"feature_extractor\.conv_layers\.(\d+)\.(\d+)(?:\.1)?\.(weight|bias)$")
    layer = re.compile(r"encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$")
    for key, value in state.items():
        if key.startswith(_IGNORED_PREFIXES):
            ignored.append(key)
            continue
        new: str | None = None
        if m := conv.match(key):
            i, part, kind = int(m.group(1)), int(m.group(2)), m.group(3)
            if part == 0:
                new = f"feature_extractor.conv_layers.{i}.conv.{kind}"
            elif part == 2 and (cfg.feat_extract_norm == "layer" or i == 0):
                new = f"feature_extractor.conv_layers.{i}.layer_norm.{kind}"
        elif key.startswith("post_extract_proj."):
            new = "feature_projection.projection." + key.split(".", 1)[1]
        elif key.startswith("encoder.pos_conv.0."):
            new = "encoder.pos_conv_embed.conv." + key[len("encoder.pos_conv.0."):]
        elif key.startswith("encoder.layer_norm."):
            new = key
        elif key == "mask_emb":
            new = "masked_spec_embed"
        elif m := layer.match(key):
            mapped = _LAYER_MAP.get(m.group(2))
            if mapped is not None:
                new = f"encoder.layers.{m.group(1)}.{mapped}.{m.group(3)}"
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise S3prlConversionError(f"unmapped s3prl tensors ({len(unknown)}): "
                                   + ", ".join(sorted(unknown)))
    if "feature_projection.projection.weight" not in out and cfg.conv_dim[-1] == cfg.hidden_size:
        # s3prl drops post_extract_proj when the widths match: it is then an identity.
        out["feature_projection.projection.weight"] = torch.eye(cfg.hidden_size)
        out["feature_projection.projection.bias"] = torch.zeros(cfg.hidden_size)
    return out, ignored
