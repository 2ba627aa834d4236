"""The whitened identity space the key acts in.

SFace embeddings are not centred (DESIGN.md: the train mean has norm ~0.3) and far from
isotropic, so a bare rotation would land off the data. Codes are therefore

    u  = W (z - mean)            whitened, ~isotropic, |u| ~ radius      (W = C^-1/2)
    u' = Q_K u                   keyed orthogonal projection
    z' = normalise(mean + C^1/2 u')   a real-looking SFace identity

which is the ``Whitening(mean, whiten, color)`` affine the projection kernel wraps around
Q_K. ``eps`` regularises C before the inverse square root: the smallest eigen-directions of
a unit-norm embedding set are mostly noise and must not be blown up to unit variance.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class IdentitySpace(nn.Module):
    def __init__(self, dim: int = 128):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))  # (d,)
        self.register_buffer("whiten", torch.eye(dim))  # (d, d) C^-1/2
        self.register_buffer("color", torch.eye(dim))  # (d, d) C^1/2
        self.register_buffer("radius", torch.tensor(float(dim) ** 0.5))  # median |u| on train

    @torch.no_grad()
    def fit(self, embeddings: np.ndarray, eps: float = 0.05) -> IdentitySpace:
        """embeddings: (N, d) unit SFace embeddings of the train split."""
        z = torch.as_tensor(embeddings, dtype=torch.float64)
        mean = z.mean(0)
        c = torch.cov((z - mean).T)
        lam, vec = torch.linalg.eigh(c)
        lam = lam.clamp_min(0) + eps * lam.mean()
        whiten = ((vec * lam.rsqrt()) @ vec.T).float()  # computed on the CPU, then copied wherever the buffers live
        self.mean.copy_(mean.float())
        self.whiten.copy_(whiten)
        self.color.copy_((vec * lam.sqrt()) @ vec.T)
        self.radius.copy_(((z - mean).float() @ whiten.T).norm(dim=1).median())
        return self

    def to_code(self, z: torch.Tensor) -> torch.Tensor:
        """(B, d) SFace embeddings -> (B, d) whitened codes u."""
        return (z - self.mean) @ self.whiten.T

    def from_code(self, u: torch.Tensor) -> torch.Tensor:
        """(B, d) codes -> (B, d) SFace-space embeddings (not normalised)."""
        return self.mean + u @ self.color.T
