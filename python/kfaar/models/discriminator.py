"""Patch discriminator (training only): judges the face interior's realism at S/16 patches."""

from __future__ import annotations

from torch import nn

from kfaar.models.layers import ConvAct, EqualConv2d


class Discriminator(nn.Module):
    def __init__(self, channels: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        ch = (3,) + channels
        self.body = nn.Sequential(*(ConvAct(a, b, stride=2) for a, b in zip(ch, ch[1:])))
        self.head = EqualConv2d(channels[-1], 1, 3)

    def forward(self, x):
        """x: (B, 3, S, S) -> (B, 1, S/16, S/16) logits."""
        return self.head(self.body(x))
