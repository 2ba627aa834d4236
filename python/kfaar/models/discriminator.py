"""Patch discriminators (training only): the styled decoder's, judging the face interior's realism at S/16
patches, and the conditional one that sharpens the eigen generator's detail refiner."""

from __future__ import annotations

import torch
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


class ConditionalPatchDiscriminator(nn.Module):
    """Training only: judges a 128-px face box given what it was rendered from (pix2pix's
    conditional patch discriminator). Input: the box (B, 3, h, w) and the condition (B, 3, h,
    w), the face-model face upsampled bilinearly; output (B, 1, h/8, w/8) logits, each seeing
    about 30 px. Spectral normalisation keeps it Lipschitz: with a hinge loss it trains
    stably against a refiner that starts already good at L1."""

    def __init__(self, channels: tuple[int, ...] = (64, 128, 256)):
        super().__init__()
        sn = nn.utils.spectral_norm
        layers: list[nn.Module] = []
        for a, b in zip((6,) + channels, channels):
            layers += [sn(nn.Conv2d(a, b, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
        layers.append(sn(nn.Conv2d(channels[-1], 1, 3, padding=1)))
        self.body = nn.Sequential(*layers)

    def forward(self, box, condition):
        return self.body(torch.cat([box, condition], 1))
