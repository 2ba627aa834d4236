"""The multi-task objective's pieces; each returns a scalar and is logged under its own name."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine of (B, d) tensors -> (B,)."""
    return F.cosine_similarity(a, b, dim=1)


def hinge_above(x: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean of max(0, x - margin): penalise similarities above a margin."""
    return F.relu(x - margin).mean()


def feature_l1(fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
    return sum(F.l1_loss(a, b) for a, b in zip(fa, fb)) / max(1, len(fa))


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])[:, None]


def sync_low(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Low-frequency structure (S/8 average pool): light, head shape, where eyes/mouth are dark."""
    k = max(1, v.shape[-1] // 16)
    return F.l1_loss(F.avg_pool2d(v, k), F.avg_pool2d(x, k))


_SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 4


def edge_map(t: torch.Tensor, pool: int) -> torch.Tensor:
    """(B, 3, S, S) -> (B, 2, S/pool, S/pool): Sobel x and y of the luminance average-pooled ``pool``-fold."""
    w = torch.stack([_SOBEL, _SOBEL.T])[:, None].to(t)
    return F.conv2d(F.avg_pool2d(_gray(t), pool), w, padding=1)


def sync_edge(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Coarse edge maps (S/4, Sobel on luminance): pose lines, mouth and eye openings.

    Coarse on purpose: fine edges are the identity we are replacing.
    """
    k = max(1, v.shape[-1] // 32)
    return F.l1_loss(edge_map(v, k), edge_map(x, k))


def jitter(v: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What a virtual face goes through before the reader sees it at inference: paste-back,
    re-detection and re-alignment (a small similarity warp, resampling) and uint8 rounding."""
    b = v.shape[0]
    r = torch.rand(b, 4, generator=generator).to(v)
    ang = (r[:, 0] - 0.5) * math.radians(4)  # ±2°, ±2% scale, ±1.5% (±2 px at 128) shift:
    sc = 1 + (r[:, 1] - 0.5) * 0.04  # re-detected landmarks on a virtual face move about this much
    tx, ty = (r[:, 2] - 0.5) * 0.03, (r[:, 3] - 0.5) * 0.03
    theta = torch.stack([torch.stack([sc * torch.cos(ang), -sc * torch.sin(ang), tx], 1),
                         torch.stack([sc * torch.sin(ang), sc * torch.cos(ang), ty], 1)], 1)
    grid = F.affine_grid(theta, list(v.shape), align_corners=False)
    out = F.grid_sample(v, grid, mode="bilinear", padding_mode="border", align_corners=False)
    q = torch.round((out + 1) * 127.5) / 127.5 - 1
    return out + (q - out).detach()  # straight-through uint8 rounding


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_adv(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()
