"""Small building blocks, after rosinality/stylegan2-pytorch ``model.py``.

Equalised learning rate (weights stored at N(0, 1), scaled at use) keeps every layer's
effective step size alike, which matters when one optimiser trains mapping, modulation
and convolution weights together on a short schedule.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LRELU_GAIN = math.sqrt(2.0)  # keeps activations' second moment through leaky ReLU(0.2)


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def effective(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (out, in), bias (out,)) as the forward pass uses them — what kernels receive."""
        return self.weight * self.scale, self.bias * self.lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.effective()
        y = F.linear(x, w, b)
        return F.leaky_relu(y, 0.2) * LRELU_GAIN if self.activate else y


class EqualConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1 / math.sqrt(cin * k * k)
        self.stride, self.pad = stride, k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.pad)


class ConvAct(nn.Module):
    """conv -> leaky ReLU(0.2)·√2; stride 2 halves the resolution."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1):
        super().__init__()
        self.conv = EqualConv2d(cin, cout, k, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.conv(x), 0.2) * LRELU_GAIN


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated convolution, in its activation-scaling form.

    Scaling the input channels by the style s, convolving with the shared weight and
    dividing by the per-sample weight norm equals convolving with per-sample weights
    w·s / |w·s| (rosinality's ``fused=False`` path), and runs as one ordinary batched conv —
    much faster on a CPU than a grouped conv with B groups. The style enters through this
    layer's own affine (style_dim -> cin), so each W+ row controls one layer.
    """

    def __init__(self, cin: int, cout: int, k: int, style_dim: int, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.scale = 1 / math.sqrt(cin * k * k)
        self.affine = EqualLinear(style_dim, cin, bias_init=1.0)
        self.demodulate, self.pad = demodulate, k // 2

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        s = self.affine(style)  # (B, cin); x (B, cin, H, W)
        w = self.weight * self.scale  # (cout, cin, k, k)
        out = F.conv2d(x * s[:, :, None, None], w, padding=self.pad)
        if self.demodulate:  # 1 / |w·s| per (sample, output channel)
            d = torch.rsqrt(s.pow(2) @ w.pow(2).sum([2, 3]).t() + 1e-8)  # (B, cout)
            out = out * d[:, :, None, None]
        return out


class StyledConv(nn.Module):
    """Modulated conv + bias + a style-driven per-channel shift, then leaky ReLU.

    The shift (AdaIN's additive half, zero at init) gives the style a direct additive path
    into the features; with only multiplicative modulation a short training schedule
    learns to use W+ far more slowly.
    """

    def __init__(self, cin: int, cout: int, style_dim: int, k: int = 3):
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, k, style_dim)
        self.bias = nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.shift = EqualLinear(style_dim, cout)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        out = self.conv(x, style) + self.bias + self.shift(style)[:, :, None, None]
        return F.leaky_relu(out, 0.2) * LRELU_GAIN


class ToRGB(nn.Module):
    def __init__(self, cin: int, style_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + F.interpolate(skip, scale_factor=2, mode="bilinear", align_corners=False)
        return out
