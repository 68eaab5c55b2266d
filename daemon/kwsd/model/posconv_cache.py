"""Positional conv of overlapping windows from per-frame contributions computed once.

The positional conv is linear before its GELU: output frame t of a window is the bias plus a
sum over the window's frames s of W[s - t + K//2] applied to frame s (zero padding outside the
window). The contribution of frame s at relative offset s - t does not depend on where the
window starts, so each frame's contributions Z[s] (one per offset, computed by one batched
matmul when the frame first appears) are reused by every window containing it; a window then
needs only a strided sum over its frames. Mathematically identical to the conv (float sums
differ in order only), and much cheaper than oneDNN's grouped conv for these shapes.

Applies when every pair of frames in a window is within the kernel (window frames <= 64 for
DistilHuBERT's K=128, i.e. windows up to ~1.3 s); otherwise streaming uses the plain conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kwsd.model.distilhubert import PositionalConv


def applicable(num_frames: int, kernel: int) -> bool:
    c = kernel // 2
    return c - (num_frames - 1) >= 0 and c + num_frames - 1 <= kernel - 1


def contribution_weight(posconv: PositionalConv, frames: int) -> torch.Tensor:
    """[G, in, taps*out] matrix giving a frame's contribution at every offset; computed once
    per (encoder copy, window length) and shared by all streams (it is 14 MB at real size)."""
    store = posconv.__dict__.setdefault("_kwsd_contribution_weights", {})
    if frames not in store:
        conv = posconv.conv
        k, groups = conv.kernel_size[0], conv.groups
        d = conv.out_channels // groups
        taps = 2 * frames - 1
        k0 = k // 2 - (frames - 1)
        w = conv.weight.detach().float()  # [H_out, D_in, K]
        w = w.view(groups, d, d, k)[:, :, :, k0:k0 + taps]  # [G, out, in, taps]
        store[frames] = w.permute(0, 2, 3, 1).reshape(groups, d, taps * d).contiguous()
    return store[frames]


class PosConvCache:
    """Per-stream store of frame contributions for windows of `frames` frames."""

    def __init__(self, posconv: PositionalConv, frames: int, hidden: int, groups: int) -> None:
        k = posconv.conv.kernel_size[0]
        if not applicable(frames, k):
            raise ValueError(f"window of {frames} frames exceeds positional kernel {k}")
        self.frames, self.groups, self.dim = frames, groups, hidden // groups
        self.taps = 2 * frames - 1
        g, d, t = groups, self.dim, self.taps
        self.weight = contribution_weight(posconv, frames)
        self.bias = posconv.conv.bias.detach().float()
        self.capacity = 2 * frames
        self.z = torch.zeros(g, self.capacity, t, d)
        self.start = 0  # buffer index of the window's first frame
        self.end = 0  # buffer index after the last stored frame

    def reset(self) -> None:
        self.start = self.end = 0

    def push(self, frames: torch.Tensor) -> None:
        """Add the contributions of new frames [n, H] (the window then advances by n)."""
        n = frames.shape[0]
        if n > self.frames:
            raise ValueError(f"pushed {n} frames, more than a window ({self.frames})")
        if self.end + n > self.capacity:
            # Move the frames that stay in the window to the front. They start at or after
            # capacity - frames >= frames > keep, so source and destination never overlap.
            keep = min(self.end - self.start, self.frames - n)
            self.z[:, :keep].copy_(self.z[:, self.end - keep:self.end])
            self.start, self.end = 0, keep
        xg = frames.view(n, self.groups, self.dim).transpose(0, 1)  # [G, n, in]
        z = torch.bmm(xg, self.weight).view(self.groups, n, self.taps, self.dim)
        self.z[:, self.end:self.end + n].copy_(z)
        self.end += n
        self.start = max(self.start, self.end - self.frames)

    def output(self) -> torch.Tensor:
        """Positional-conv output [1, frames, H] (after GELU) for the last `frames` frames."""
        f, g, t, d = self.frames, self.groups, self.taps, self.dim
        if self.end - self.start != f:
            raise RuntimeError(f"cache holds {self.end - self.start} frames, window needs {f}")
        z = self.z
        view = z.as_strided((g, f, f, d), (z.stride(0), d, (t + 1) * d, 1),
                            z.storage_offset() + self.start * t * d)
        y = view.sum(dim=2).flip(1)  # [G, t, out]
        y = y.transpose(0, 1).reshape(f, g * d) + self.bias
        return F.gelu(y)[None]
