"""The keyword head: encoder hidden states of one window -> class logits.

SUPERB-style learned softmax weights mix the encoder's layers (which layer carries keyword
information is learned, not guessed), a per-frame MLP adapts the features, mean+max pooling
over the window's frames makes the decision position-independent (max catches a short keyword
anywhere in the window, mean keeps the context), and a linear layer gives one logit per label.

Optional temporal layers (`temporal_layers` > 0) sit between the MLP and the pooling: residual
dilated 1-D convolutions over the frames (dilation 1, 2, 4, ...), so that a frame's features
see the sounds before and after it and the pooled vector knows their order ("voyager" is not
"a boy jaguar"). Zero layers is the original head, so older bundles load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

UNKNOWN = "_unknown_"
SILENCE = "_silence_"
HEAD_TYPE = "weighted-mlp-meanmax"


@dataclass(frozen=True)
class HeadConfig:
    num_states: int  # encoder hidden states per window (layers + 1)
    hidden_size: int  # encoder width
    num_labels: int  # keywords + _unknown_ + _silence_
    mlp_dim: int = 256
    dropout: float = 0.1  # training only (no-op in eval mode)
    temporal_layers: int = 0  # residual dilated convolutions over frames (0: none)
    temporal_kernel: int = 5

    def validate(self) -> None:
        for name in ("num_states", "hidden_size", "num_labels", "mlp_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"head {name} must be >= 1, got {getattr(self, name)}")
        if int(self.temporal_layers) < 0:
            raise ValueError(f"head temporal_layers must be >= 0, got {self.temporal_layers}")
        if int(self.temporal_kernel) < 1 or int(self.temporal_kernel) % 2 == 0:
            raise ValueError(f"head temporal_kernel must be odd and >= 1, got "
                             f"{self.temporal_kernel}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"head dropout must be in [0, 1), got {self.dropout}")


class KeywordHead(nn.Module):
    def __init__(self, cfg: HeadConfig) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.layer_weights = nn.Parameter(torch.zeros(cfg.num_states))
        self.norm = nn.LayerNorm(cfg.hidden_size)
        self.proj = nn.Linear(cfg.hidden_size, cfg.mlp_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        k = cfg.temporal_kernel
        self.temporal = nn.ModuleList(
            nn.Conv1d(cfg.mlp_dim, cfg.mlp_dim, k, dilation=2 ** i, padding=(k // 2) * 2 ** i)
            for i in range(cfg.temporal_layers))
        self.classifier = nn.Linear(2 * cfg.mlp_dim, cfg.num_labels)

    def mix(self, states: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """num_states x [B, frames, H] (or one [B, num_states, frames, H]) -> [B, frames, H]."""
        n = len(states) if isinstance(states, list | tuple) else states.shape[1]
        if n != self.config.num_states:
            raise ValueError(f"head expects {self.config.num_states} hidden states, got {n}")
        if not isinstance(states, list | tuple):
            states = states.unbind(dim=1)
        w = F.softmax(self.layer_weights, dim=0)
        mixed = w[0] * states[0]
        for i in range(1, n):
            mixed = mixed + w[i] * states[i]
        return mixed

    def forward(self, states: list[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """Hidden states of a batch of windows -> logits [B, num_labels]."""
        x = self.dropout(F.gelu(self.proj(self.norm(self.mix(states)))))
        if len(self.temporal):
            x = x.transpose(1, 2)  # [B, mlp_dim, frames]
            for conv in self.temporal:
                x = x + self.dropout(F.gelu(conv(x)))
            x = x.transpose(1, 2)
        pooled = torch.cat([x.mean(dim=1), x.amax(dim=1)], dim=-1)
        return self.classifier(self.dropout(pooled))
