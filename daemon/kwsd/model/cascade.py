"""Two-stage cascade: a cheap stage one on every hop, the full encoder only where it may matter.

Why a separate network and not the keyword head on the encoder's early features: on the demo
model the conv feature extractor alone costs about as much per audio second as the whole
cascade may (kwsd bench: conv ~0.013 of ~0.037 CPU-s per audio s), so anything computed from
encoder features cannot make the stream much cheaper. Stage one therefore reads log-mel
features of the window (one FFT, a matrix product) through a small 1-D CNN: about 4 M
multiply-adds per window, ~1-2 % of the full path. It is trained on the same labelled windows
as the head (kwsd.head_training.cascade) and says how likely the window holds any keyword.

Per stream, `CascadeGate.check(window)` decides each hop: the window passes when stage one's
keyword probability reaches the threshold, and the next `hold_hops` windows pass too (so the
decision sees the score rise and peak as the keyword moves through the window). The streaming
classifier runs the encoder and head only on windows that pass; for the others it emits
`no_keyword_probs` (all mass on `_unknown_`), which the decision treats like any window whose
keyword scores are far below threshold (it re-arms; with the default smoothing_ms = 0 nothing
else depends on it). With an exact conv cache, the first window that passes after rejected ones
recomputes its conv features in full (the context it needs), so every posterior the cascade
computes equals the plain path's.

kws.json `streaming.cascade` says whether and how (written by `kwsd cascade fit`):
`enabled` (bool), `stage_one` (file in the bundle), `threshold` (0..1), `hold_hops` (int >= 0),
plus what was measured (pass rate on real speech, recall loss). A stream follows `enabled`
unless the config (`engine.cascade = "on" | "off"`) or a caller says otherwise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

STAGE_ONE_FILE = "stage-one.safetensors"
STAGE_ONE_TYPE = "logmel-cnn"
SAMPLE_RATE = 16000
N_FFT = 400  # 25 ms
FFT_HOP = 320  # 20 ms (the encoder's frame rate): half the frames of the usual 10 ms, for a gate
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
CASCADE_MODES = ("", "on", "off")


class CascadeError(ValueError):
    """A cascade setting or stage-one file that cannot be used; the message says which."""


@dataclass(frozen=True)
class StageOneConfig:
    num_labels: int
    n_mels: int = 40
    channels: tuple[int, ...] = (64, 64, 96, 96)
    fft_hop: int = FFT_HOP

    def to_json(self) -> str:
        return json.dumps({"type": STAGE_ONE_TYPE, "num_labels": self.num_labels,
                           "n_mels": self.n_mels, "channels": list(self.channels),
                           "fft_hop": self.fft_hop})

    @classmethod
    def from_json(cls, text: str) -> StageOneConfig:
        d = json.loads(text)
        if d.get("type") != STAGE_ONE_TYPE:
            raise CascadeError(f"stage-one type {d.get('type')!r}, expected {STAGE_ONE_TYPE!r}")
        cfg = cls(num_labels=int(d["num_labels"]), n_mels=int(d["n_mels"]),
                  channels=tuple(int(c) for c in d["channels"]), fft_hop=int(d["fft_hop"]))
        if cfg.num_labels < 3 or cfg.n_mels < 8 or len(cfg.channels) != 4 or min(
                cfg.channels) < 1 or not 40 <= cfg.fft_hop <= N_FFT:
            raise CascadeError(f"stage-one config out of range: {d}")
        return cfg


def mel_filterbank(n_mels: int, n_fft: int = N_FFT, rate: int = SAMPLE_RATE) -> torch.Tensor:
    """HTK-style triangular filters [n_fft//2+1, n_mels] from 20 Hz to Nyquist."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    bins = np.linspace(0, rate / 2, n_fft // 2 + 1)
    edges = hz(np.linspace(mel(20.0), mel(rate / 2), n_mels + 2))
    fb = np.zeros((len(bins), n_mels), dtype=np.float32)
    for m in range(n_mels):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        up = (bins - lo) / max(mid - lo, 1e-6)
        down = (hi - bins) / max(hi - mid, 1e-6)
        fb[:, m] = np.clip(np.minimum(up, down), 0, None)
    return torch.from_numpy(fb)


class StageOne(nn.Module):
    """Window samples (float, int16 scale / 32768) -> logits over the bundle's labels."""

    def __init__(self, cfg: StageOneConfig) -> None:
        super().__init__()
        self.config = cfg
        self.register_buffer("window_fn", torch.hann_window(N_FFT), persistent=False)
        self.register_buffer("mel", mel_filterbank(cfg.n_mels), persistent=False)
        c1, c2, c3, c4 = cfg.channels
        self.convs = nn.ModuleList([
            nn.Conv1d(cfg.n_mels, c1, 5, padding=2),
            nn.Conv1d(c1, c2, 5, stride=2, padding=2),
            nn.Conv1d(c2, c3, 5, stride=2, padding=2),
            nn.Conv1d(c3, c4, 3, padding=1),
        ])
        self.norms = nn.ModuleList([nn.BatchNorm1d(c) for c in (c1, c2, c3, c4)])
        self.classifier = nn.Linear(2 * c4, cfg.num_labels)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """[B, samples] -> log-mel [B, n_mels, frames], mean-normalised per band and window
        (independent of the recording level and of a fixed channel colouring)."""
        spec = torch.stft(wave, N_FFT, self.config.fft_hop, window=self.window_fn,
                          center=False, return_complex=True)
        power = spec.real.square() + spec.imag.square()  # [B, bins, frames]
        logmel = torch.log(torch.matmul(self.mel.T, power) + 1e-9)
        return logmel - logmel.mean(dim=-1, keepdim=True)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.body(self.features(wave))

    def fold_batchnorm(self) -> StageOne:
        """Inference: each BatchNorm folded into its conv (fewer ops per window, same output
        to float rounding). The model is then for eval only."""
        with torch.no_grad():
            for i, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
                if isinstance(norm, nn.Identity):
                    continue
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                conv.weight.mul_(scale[:, None, None])
                conv.bias.copy_((conv.bias - norm.running_mean) * scale + norm.bias)
                self.norms[i] = nn.Identity()
        return self

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """Log-mel features [B, n_mels, frames] -> logits (training runs on cached features)."""
        for conv, norm in zip(self.convs, self.norms, strict=True):
            x = F.relu(norm(conv(x)))
        return self.classifier(torch.cat([x.mean(dim=-1), x.amax(dim=-1)], dim=-1))


def keyword_probability(logits: torch.Tensor, num_keywords: int) -> torch.Tensor:
    """P(the window holds some keyword): the softmax mass on the keyword labels."""
    return torch.softmax(logits, dim=-1)[..., :num_keywords].sum(dim=-1)


def save_stage_one(model: StageOne, path: Path) -> Path:
    from safetensors.torch import save_file

    state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"kwsd_stage_one": model.config.to_json()})
    return path


def load_stage_one(path: Path, num_labels: int) -> StageOne:
    """Read a stage-one file (safetensors only, every shape checked); CascadeError if unusable."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise CascadeError(f"{path}: stage-one file missing (kws.json streaming.cascade."
                           "stage_one names it)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if "kwsd_stage_one" not in meta:
                raise CascadeError(f"{path}: not a kwsd stage-one file (no kwsd_stage_one "
                                   "metadata)")
            cfg = StageOneConfig.from_json(meta["kwsd_stage_one"])
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except CascadeError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CascadeError(f"{path}: unreadable stage-one file ({exc})") from None
    if cfg.num_labels != num_labels:
        raise CascadeError(f"{path}: stage one has {cfg.num_labels} labels, the bundle "
                           f"{num_labels}")
    model = StageOne(cfg)
    want = model.state_dict()
    missing = sorted(set(want) - set(state))
    extra = sorted(set(state) - set(want))
    if missing or extra:
        raise CascadeError(f"{path}: tensors missing {missing[:4]} / unexpected {extra[:4]}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise CascadeError(f"{path}: tensor {k} has shape {tuple(v.shape)}, expected "
                               f"{tuple(want[k].shape)}")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CascadeError(f"{path}: tensor {k} holds non-finite values")
    model.load_state_dict(state)
    return model.eval().requires_grad_(False).fold_batchnorm()


@dataclass(frozen=True)
class CascadeSettings:
    """kws.json `streaming.cascade`, checked."""

    enabled: bool
    stage_one: str
    threshold: float
    hold_hops: int

    @classmethod
    def parse(cls, value: Any, where: str = "kws.json streaming.cascade") -> CascadeSettings:
        if not isinstance(value, Mapping):
            raise CascadeError(f"{where} must be an object, got {type(value).__name__}")
        enabled = value.get("enabled", False)
        if not isinstance(enabled, bool):
            raise CascadeError(f"{where}.enabled must be true or false, got {enabled!r}")
        stage_one = value.get("stage_one", STAGE_ONE_FILE)
        if (not isinstance(stage_one, str) or not stage_one or "/" in stage_one
                or "\\" in stage_one or stage_one.startswith(".")):
            raise CascadeError(f"{where}.stage_one must be a file name inside the bundle, got "
                               f"{stage_one!r}")
        thr = value.get("threshold")
        if isinstance(thr, bool) or not isinstance(thr, int | float) or not (
                math.isfinite(thr) and 0.0 <= thr <= 1.0):
            raise CascadeError(f"{where}.threshold must be a number in [0, 1], got {thr!r}")
        hold = value.get("hold_hops", 2)
        if isinstance(hold, bool) or not isinstance(hold, int) or not 0 <= hold <= 50:
            raise CascadeError(f"{where}.hold_hops must be an integer in [0, 50], got {hold!r}")
        return cls(enabled, stage_one, float(thr), hold)


@dataclass
class Cascade:
    """A bundle's loaded cascade (shared, read-only): settings and the stage-one network."""

    settings: CascadeSettings
    model: StageOne
    num_keywords: int


def load_cascade(bundle_dir: Path, meta: Mapping[str, Any], labels: list[str]
                 ) -> Cascade | None:
    """The bundle's cascade, or None when kws.json has no `streaming.cascade`."""
    streaming = meta.get("streaming") or {}
    if not isinstance(streaming, Mapping) or "cascade" not in streaming:
        return None
    settings = CascadeSettings.parse(streaming["cascade"])
    model = load_stage_one(bundle_dir / settings.stage_one, len(labels))
    return Cascade(settings, model, len(labels) - 2)


def cascade_active(cascade: Cascade | None, mode: str | bool | None) -> bool:
    """Whether a stream runs the cascade: `mode` "on"/"off"/True/False (config engine.cascade,
    a caller) wins, else kws.json `enabled`. "on" without a stage one is an error."""
    if mode in ("", None):
        return bool(cascade is not None and cascade.settings.enabled)
    if mode not in ("on", "off", True, False):
        raise CascadeError(f"cascade mode must be 'on', 'off' or '' (the bundle's), got "
                           f"{mode!r}")
    on = mode in ("on", True)
    if on and cascade is None:
        raise CascadeError("the cascade was asked for, but the model has no stage one "
                           "(kws.json streaming.cascade; `kwsd cascade fit` makes one)")
    return on


def no_keyword_probs(labels: list[str]) -> np.ndarray:
    """The posterior of a window stage one rejected: everything on `_unknown_`."""
    probs = np.zeros(len(labels), dtype=np.float32)
    probs[labels.index(UNKNOWN) if UNKNOWN in labels else len(labels) - 2] = 1.0
    return probs


class CascadeGate:
    """Per-stream stage one: which windows go on to the encoder (see the module docstring).

    `threshold` None: pass every window but still compute stage one's score (fitting records
    scores and full posteriors of the same windows). `schedule`: a fixed pass/reject sequence
    (bench: another model's measured pattern at this model's cost).
    """

    def __init__(self, cascade: Cascade, threshold: float | None = -1.0,
                 hold_hops: int | None = None) -> None:
        self.model = cascade.model
        self.num_keywords = cascade.num_keywords
        self.threshold = cascade.settings.threshold if threshold == -1.0 else threshold
        self.hold_hops = cascade.settings.hold_hops if hold_hops is None else int(hold_hops)
        self.schedule: list[bool] | None = None
        self.trace: list[bool] | None = None  # set to a list to record every decision
        self.last_score = 0.0
        self.windows = 0
        self.passed = 0
        self.reset()

    def reset(self) -> None:
        self._hold = 0

    @property
    def pass_rate(self) -> float:
        return self.passed / self.windows if self.windows else 0.0

    def check(self, window: torch.Tensor) -> bool:
        """`window`: float samples [samples] of one full window. True: run the encoder."""
        self.last_score = float(keyword_probability(self.model(window[None]),
                                                    self.num_keywords)[0])
        if self.schedule is not None:
            ok = self.schedule[self.windows % len(self.schedule)]
        elif self.threshold is None or self.last_score >= self.threshold:
            self._hold = self.hold_hops
            ok = True
        elif self._hold > 0:
            self._hold -= 1
            ok = True
        else:
            ok = False
        self.windows += 1
        self.passed += ok
        if self.trace is not None:
            self.trace.append(ok)
        return ok
