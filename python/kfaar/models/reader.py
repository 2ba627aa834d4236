"""Reader R: virtual crop -> estimate of its keyed virtual identity code u' (KVFA).

Recovery is R followed by the exact inverse keyed projection (Q_K^T) in the whitened
identity space; the key never enters the network, so a wrong key gives an unrelated
rotation of the estimate. R reads a 64-px copy of the crop: identity lives in the
coarse-to-mid frequencies, and 64 px keeps recovery well above 100 faces/s on a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kfaar.models.layers import ConvAct, EqualLinear


@dataclass(frozen=True)
class ReaderConfig:
    size: int = 64  # input side; crops are resized to it
    channels: tuple[int, ...] = (32, 64, 128, 256)  # at 32, 16, 8, 4 px
    code_dim: int = 128


class Reader(nn.Module):
    def __init__(self, cfg: ReaderConfig = ReaderConfig()):
        super().__init__()
        self.cfg = cfg
        ch = (3,) + cfg.channels
        blocks = []
        for a, b in zip(ch, ch[1:]):
            blocks += [ConvAct(a, b, stride=2), ConvAct(b, b)]
        self.body = nn.Sequential(*blocks)
        side = cfg.size // 2 ** len(cfg.channels)
        self.head = EqualLinear(cfg.channels[-1] * side * side, cfg.code_dim)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """v: (B, 3, S, S) in [-1, 1] -> (B, code_dim) unit direction of u'."""
        if v.shape[-1] != self.cfg.size:
            v = F.interpolate(v, size=(self.cfg.size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        return F.normalize(self.head(self.body(v).flatten(1)), dim=1)
