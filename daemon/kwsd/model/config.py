"""The encoder's architecture, read from (and written back to) an HF HubertConfig `config.json`.

One dataclass describes both the real DistilHuBERT and the scaled-down demo encoder, so a
single code path runs both. Only the fields that change the computation are kept; anything the
plain-torch encoder cannot reproduce exactly is refused with a message naming the field.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUPPORTED_ACTIVATIONS = ("gelu",)


class EncoderConfigError(ValueError):
    """A config.json that describes a network this encoder does not implement."""


@dataclass(frozen=True)
class EncoderConfig:
    conv_dim: tuple[int, ...] = (512, 512, 512, 512, 512, 512, 512)
    conv_kernel: tuple[int, ...] = (10, 3, 3, 3, 3, 2, 2)
    conv_stride: tuple[int, ...] = (5, 2, 2, 2, 2, 2, 2)
    conv_bias: bool = False
    feat_extract_norm: str = "group"
    feat_extract_activation: str = "gelu"
    hidden_size: int = 768
    num_hidden_layers: int = 2
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-5
    feat_proj_layer_norm: bool = False
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    do_stable_layer_norm: bool = False
    # Not part of the computation, but HF creates a `masked_spec_embed` parameter when either is
    # > 0; keeping them makes our state dict match HF's key for key.
    mask_time_prob: float = 0.05
    mask_feature_prob: float = 0.0
    # Unknown HF fields are carried through untouched so a round trip loses nothing.
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.validate()

    # -- derived -----------------------------------------------------------------------------
    @property
    def hop_samples(self) -> int:
        """Samples per output frame (320 for DistilHuBERT: 20 ms at 16 kHz)."""
        hop = 1
        for s in self.conv_stride:
            hop *= s
        return hop

    @property
    def receptive_field(self) -> int:
        """Samples seen by one conv output frame (400 for DistilHuBERT)."""
        rf, jump = 1, 1
        for k, s in zip(self.conv_kernel, self.conv_stride, strict=True):
            rf += (k - 1) * jump
            jump *= s
        return rf

    @property
    def has_masked_spec_embed(self) -> bool:
        return self.mask_time_prob > 0.0 or self.mask_feature_prob > 0.0

    def num_frames(self, num_samples: int) -> int:
        """Conv output frames for `num_samples` input samples (0 when too short)."""
        n = num_samples
        for k, s in zip(self.conv_kernel, self.conv_stride, strict=True):
            n = (n - k) // s + 1
            if n <= 0:
                return 0
        return n

    # -- checks ------------------------------------------------------------------------------
    def validate(self) -> None:
        def bad(name: str, why: str) -> EncoderConfigError:
            return EncoderConfigError(f"config field {name!r}: {why}")

        n = len(self.conv_dim)
        if n == 0:
            raise bad("conv_dim", "needs at least one conv layer")
        if len(self.conv_kernel) != n or len(self.conv_stride) != n:
            raise bad("conv_dim", f"conv_dim, conv_kernel and conv_stride must have the same "
                      f"length, got {n}, {len(self.conv_kernel)}, {len(self.conv_stride)}")
        for name in ("conv_dim", "conv_kernel", "conv_stride"):
            if any(int(v) < 1 for v in getattr(self, name)):
                raise bad(name, f"all values must be >= 1, got {list(getattr(self, name))}")
        if self.feat_extract_norm not in ("group", "layer"):
            raise bad("feat_extract_norm", f"must be 'group' or 'layer', got "
                      f"{self.feat_extract_norm!r}")
        if self.feat_extract_activation not in SUPPORTED_ACTIVATIONS:
            raise bad("feat_extract_activation", f"only {SUPPORTED_ACTIVATIONS} supported, got "
                      f"{self.feat_extract_activation!r}")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise bad("hidden_act", f"only {SUPPORTED_ACTIVATIONS} supported, got "
                      f"{self.hidden_act!r}")
        if self.do_stable_layer_norm:
            raise bad("do_stable_layer_norm", "pre-LN (stable layer norm) encoders are not "
                      "supported; DistilHuBERT is post-LN (false)")
        for name in ("hidden_size", "num_attention_heads", "intermediate_size",
                     "num_conv_pos_embeddings", "num_conv_pos_embedding_groups"):
            if int(getattr(self, name)) < 1:
                raise bad(name, f"must be >= 1, got {getattr(self, name)}")
        if self.num_hidden_layers < 0:
            raise bad("num_hidden_layers", f"must be >= 0, got {self.num_hidden_layers}")
        if self.hidden_size % self.num_attention_heads:
            raise bad("num_attention_heads", f"hidden_size {self.hidden_size} is not divisible "
                      f"by {self.num_attention_heads} heads")
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise bad("num_conv_pos_embedding_groups", f"hidden_size {self.hidden_size} is not "
                      f"divisible by {self.num_conv_pos_embedding_groups} groups")
        if not self.layer_norm_eps > 0:
            raise bad("layer_norm_eps", f"must be > 0, got {self.layer_norm_eps}")

    # -- HF config.json ----------------------------------------------------------------------
    @classmethod
    def from_hf_dict(cls, data: dict[str, Any]) -> EncoderConfig:
        """Build from a HubertConfig dict; HF defaults fill absent fields."""
        if not isinstance(data, dict):
            raise EncoderConfigError(f"config must be a JSON object, got {type(data).__name__}")
        model_type = data.get("model_type", "hubert")
        if model_type != "hubert":
            raise EncoderConfigError(f"config field 'model_type': expected 'hubert', got "
                                     f"{model_type!r}")
        if data.get("conv_pos_batch_norm", False):
            raise EncoderConfigError("config field 'conv_pos_batch_norm': batch-norm positional "
                                     "conv is not supported (weight norm only)")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        # HF's own defaults for fields a DistilHuBERT config.json might leave out.
        hf_defaults: dict[str, Any] = {"num_hidden_layers": 12, "feat_proj_layer_norm": True}
        kwargs: dict[str, Any] = {}
        for name in names:
            if name in data:
                kwargs[name] = data[name]
            elif name in hf_defaults:
                kwargs[name] = hf_defaults[name]
        for name in ("conv_dim", "conv_kernel", "conv_stride"):
            if name in kwargs:
                if not isinstance(kwargs[name], list | tuple):
                    raise EncoderConfigError(f"config field {name!r}: expected a list, got "
                                             f"{kwargs[name]!r}")
                kwargs[name] = tuple(int(v) for v in kwargs[name])
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "num_conv_pos_embeddings",
                     "num_conv_pos_embedding_groups"):
            if name in kwargs and (isinstance(kwargs[name], bool)
                                   or not isinstance(kwargs[name], int)):
                raise EncoderConfigError(f"config field {name!r}: expected an integer, got "
                                         f"{kwargs[name]!r}")
        extra = {k: v for k, v in data.items() if k not in names}
        return cls(**kwargs, extra=extra)

    @classmethod
    def from_json_file(cls, path: str | Path) -> EncoderConfig:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise EncoderConfigError(f"{path}: no such file") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EncoderConfigError(f"{path}: not readable JSON ({exc})") from exc
        try:
            return cls.from_hf_dict(data)
        except (EncoderConfigError, TypeError, ValueError) as exc:
            raise EncoderConfigError(f"{path}: {exc}") from exc

    def to_hf_dict(self) -> dict[str, Any]:
        """A config.json dict that `transformers.HubertModel.from_pretrained` accepts."""
        out: dict[str, Any] = dict(self.extra)
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        out["model_type"] = "hubert"
        out.setdefault("architectures", ["HubertModel"])
        out["num_feat_extract_layers"] = len(self.conv_dim)
        out["conv_pos_batch_norm"] = False
        return out

    def to_json_file(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_hf_dict(), indent=2, sort_keys=True) + "\n",
                              encoding="utf-8")


DISTILHUBERT = EncoderConfig()
"""The published `ntu-spml/distilhubert` architecture."""


def demo_config_path() -> Path:
    return Path(__file__).with_name("demo_config.json")


def demo_config() -> EncoderConfig:
    """The scaled-down demo encoder (same architecture, layer-norm convs so caching is exact)."""
    return EncoderConfig.from_json_file(demo_config_path())
