"""DistilHuBERT in plain torch, numerically the same network as `transformers.HubertModel`.

Parameter names equal HF HubertModel's state-dict keys, so HF-layout safetensors load with a
plain `load_state_dict`. The forward pass is split into parts (conv features -> projection ->
positional conv + transformer) because streaming caches conv features across overlapping
windows and the benchmark times each part. There is no dropout anywhere: this module computes
what HF computes in eval mode, in training mode too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kwsd.model.config import EncoderConfig


class ConvLayer(nn.Module):
    """One conv of the feature extractor: conv -> (GroupNorm | LayerNorm | nothing) -> GELU.

    norm "group": GroupNorm with one group per channel, i.e. each channel normalised over the
    whole input's time axis (so the output depends on the input's extent). norm "layer":
    LayerNorm over channels per frame (strictly local). Both use eps 1e-5 as HF does.
    """

    def __init__(self, in_dim: int, out_dim: int, kernel: int, stride: int, bias: bool,
                 norm: str | None) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_dim, out_dim, kernel_size=kernel, stride=stride, bias=bias)
        self.norm = norm
        if norm == "group":
            self.layer_norm: nn.Module = nn.GroupNorm(out_dim, out_dim, affine=True)
        elif norm == "layer":
            self.layer_norm = nn.LayerNorm(out_dim, elementwise_affine=True)

    def forward(self, x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """`reference` (group norm only): normalise with the per-channel statistics of the conv
        output of `reference` instead of `x`'s own (streaming's approximate conv cache)."""
        x = self.conv(x)
        if self.norm == "group" and reference is not None:
            mean, var = self._reference_stats(reference)
            gn = self.layer_norm
            x = ((x.float() - mean) * torch.rsqrt(var + gn.eps) * gn.weight[:, None].float()
                 + gn.bias[:, None].float()).to(x.dtype)
        elif self.norm == "group":
            x = self.layer_norm(x)
        elif self.norm == "layer":
            x = self.layer_norm(x.transpose(-2, -1)).transpose(-2, -1)
        return F.gelu(x)


    def _reference_stats(self, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and variance over time of conv(reference), [B, C, 1] each.

        For the first layer (one input channel) the conv is W @ frame, so the statistics
        follow from the frames' mean and 10x10 Gram matrix without computing the conv output:
        far cheaper than convolving a whole window, and the same numbers up to rounding.
        """
        if self.conv.in_channels != 1:
            ref = self.conv(reference).float()
            mean = ref.mean(dim=-1, keepdim=True)
            return mean, (ref * ref).mean(dim=-1, keepdim=True) - mean * mean
        k, s = self.conv.kernel_size[0], self.conv.stride[0]
        frames = reference[:, 0].float().unfold(-1, k, s)  # [B, n, k]
        mu = frames.mean(dim=1)  # [B, k]
        gram = frames.transpose(1, 2) @ frames / frames.shape[1]  # [B, k, k]
        w = self.conv.weight[:, 0, :].float()  # [C, k]
        mean = mu @ w.t()  # [B, C]
        var = ((w @ gram) * w).sum(dim=-1) - mean * mean
        if self.conv.bias is not None:
            mean = mean + self.conv.bias.float()
        return mean[..., None], var.clamp_min(0.0)[..., None]


class FeatureExtractor(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        layers = []
        for i, (dim, k, s) in enumerate(zip(cfg.conv_dim, cfg.conv_kernel, cfg.conv_stride,
                                            strict=True)):
            in_dim = cfg.conv_dim[i - 1] if i else 1
            if cfg.feat_extract_norm == "layer":
                norm: str | None = "layer"
            else:
                norm = "group" if i == 0 else None
            layers.append(ConvLayer(in_dim, dim, k, s, cfg.conv_bias, norm))
        self.conv_layers = nn.ModuleList(layers)

    def forward(self, wave: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T] -> [B, C, frames] float32 (each conv computes in its own dtype: runtime.py)."""
        x = wave[:, None].contiguous()  # oneDNN is slower on strided input
        ref = None if reference is None else reference[:, None]
        for i, layer in enumerate(self.conv_layers):
            x = x.to(layer.conv.weight.dtype)
            x = layer(x, ref) if i == 0 else layer(x)
        return x.float()


class FeatureProjection(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.feat_proj_layer_norm = cfg.feat_proj_layer_norm
        if cfg.feat_proj_layer_norm:
            self.layer_norm = nn.LayerNorm(cfg.conv_dim[-1], eps=cfg.layer_norm_eps)
        self.projection = nn.Linear(cfg.conv_dim[-1], cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.feat_proj_layer_norm:
            x = self.layer_norm(x)
        return self.projection(x)


class PositionalConv(nn.Module):
    """Grouped, weight-normed conv over time; 'same' padding, minus the last frame if K is even."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        k = cfg.num_conv_pos_embeddings
        conv = nn.Conv1d(cfg.hidden_size, cfg.hidden_size, kernel_size=k, padding=k // 2,
                         groups=cfg.num_conv_pos_embedding_groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)
        self.num_pad_remove = 1 if k % 2 == 0 else 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, frames, H] -> [B, frames, H]"""
        y = self.conv(x.transpose(1, 2))
        if self.num_pad_remove:
            y = y[:, :, : -self.num_pad_remove]
        return F.gelu(y).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.num_heads = cfg.num_attention_heads
        self.head_dim = h // self.num_heads
        self.k_proj = nn.Linear(h, h)
        self.v_proj = nn.Linear(h, h)
        self.q_proj = nn.Linear(h, h)
        self.out_proj = nn.Linear(h, h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        shape = (b, t, self.num_heads, self.head_dim)
        qkv = getattr(self, "qkv", None)  # fused by runtime.fuse_qkv in inference copies
        if qkv is not None:
            q, k, v = (y.reshape(shape).transpose(1, 2) for y in qkv(x).split(h, dim=-1))
        else:
            q = self.q_proj(x).view(shape).transpose(1, 2)
            k = self.k_proj(x).view(shape).transpose(1, 2)
            v = self.v_proj(x).view(shape).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(y.transpose(1, 2).reshape(b, t, h))


class FeedForward(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.output_dense = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_dense(F.gelu(self.intermediate_dense(x)))


class EncoderLayer(nn.Module):
    """Post-LN transformer layer (HF HubertEncoderLayer without its dropouts)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.attention = Attention(cfg)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.feed_forward = FeedForward(cfg)
        self.final_layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(x + self.attention(x))
        return self.final_layer_norm(x + self.feed_forward(x))


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.pos_conv_embed = PositionalConv(cfg)
        self.layer_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.num_hidden_layers))

    def embed_positions(self, x: torch.Tensor) -> torch.Tensor:
        """Projected features -> HF's hidden_states[0] (x + posconv(x), layer-normed)."""
        return self.layer_norm(x + self.pos_conv_embed(x))

    def run_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """hidden_states[0] -> [hidden_states[0], layer 1 output, ...], all float32.

        A layer converted to another dtype (runtime.py) computes in it; its output is float32.
        """
        states = [x]
        for layer in self.layers:
            x = layer(x.to(layer.layer_norm.weight.dtype)).float()
            states.append(x)
        return states

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.run_layers(self.embed_positions(x))


class DistilHubert(nn.Module):
    """waveform [B, T] float (HF input_values) -> hidden states, one [B, frames, H] per stage."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        self.config = cfg
        self.feature_extractor = FeatureExtractor(cfg)
        self.feature_projection = FeatureProjection(cfg)
        if cfg.has_masked_spec_embed:
            # Unused at inference (SpecAugment masking); present so keys match HF's.
            self.masked_spec_embed = nn.Parameter(torch.zeros(cfg.hidden_size))
        self.encoder = Encoder(cfg)

    @property
    def num_states(self) -> int:
        """Hidden states returned by forward(): input to the first layer, then one per layer."""
        return self.config.num_hidden_layers + 1

    def extract_conv_features(self, wave: torch.Tensor,
                              reference: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T] float -> conv features [B, frames, C] (HF's extract_features).

        `reference` [B, T'] (group-norm encoders only): take the first layer's GroupNorm
        statistics from this audio instead of `wave` - used to compute a piece of a longer
        window with (approximately) the window's normalisation. Ignored for layer norm.
        """
        if wave.dim() != 2:
            raise ValueError(f"waveform must be [batch, samples], got shape {tuple(wave.shape)}")
        if self.config.num_frames(wave.shape[1]) < 1:
            raise ValueError(f"waveform of {wave.shape[1]} samples is shorter than the "
                             f"receptive field ({self.config.receptive_field} samples)")
        return self.feature_extractor(wave, reference).transpose(1, 2)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        """[B, frames, C] -> [B, frames, H]"""
        return self.feature_projection(features)

    def transform(self, projected: torch.Tensor) -> list[torch.Tensor]:
        """Positional conv + transformer: [B, frames, H] -> num_states tensors [B, frames, H]."""
        return self.encoder(projected)

    def forward(self, wave: torch.Tensor) -> list[torch.Tensor]:
        return self.transform(self.project(self.extract_conv_features(wave)))


def build_encoder(cfg: EncoderConfig) -> DistilHubert:
    """A randomly initialised encoder in eval mode (HF-like init is not needed: load weights)."""
    return DistilHubert(cfg).eval()
