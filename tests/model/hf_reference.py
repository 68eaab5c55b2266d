"""Builds the reference `transformers.HubertModel` (test-only dependency) with random weights."""

from __future__ import annotations

import torch
from kwsd.model.config import DISTILHUBERT, EncoderConfig, demo_config


def config_named(name: str) -> EncoderConfig:
    return DISTILHUBERT if name == "distilhubert" else demo_config()


def random_hf_model(cfg: EncoderConfig, seed: int = 0):
    """An eval-mode HubertModel whose every parameter is random (LayerNorm gains included)."""
    import transformers

    torch.manual_seed(seed)
    hf_cfg = transformers.HubertConfig(**cfg.to_hf_dict())
    model = transformers.HubertModel(hf_cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("original0"):  # weight-norm gain: keep it positive and sized
                p.copy_(p.abs() * (0.5 + torch.rand_like(p)))
            elif p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.mul_(1.0 + 0.1 * torch.randn_like(p))
    return model


def hf_hidden_states(model, wave: torch.Tensor) -> list[torch.Tensor]:
    with torch.inference_mode():
        out = model(wave, output_hidden_states=True)
    return list(out.hidden_states)
