"""Code carrier: the keyed code u' written into, and read back from, the face interior.

KVFA needs the virtual face to carry its keyed identity code u' robustly through paste-back,
re-detection and re-alignment. Waiting for a generator and a reader network to agree on a
128-D code from scratch takes far more steps than a CPU budget allows, so the code rides
on a fixed linear carrier instead:

    pool(v)      average of the crop over an r x r grid of cells      (B, 3·r·r)
    read(v)      = pool(v·m) @ Bᵀ                                     (B, 128) coefficients
    write(y, t)  = y + Σ_i α_i P_i   with α chosen so read(y') = t exactly

B (128 x 3r²) has orthonormal rows on the interior cells, in the two chroma directions
only (no luminance), taken orthogonal to the smoothest ``drop_low`` x ``drop_low`` cosine
components (skin tone, lighting: the content with the most energy, which would otherwise
have to be overwritten). P_i is B_i
bilinearly upsampled to the crop and masked, so the written texture is smooth (cells of
S/r px) and survives a few pixels of misalignment. ``amplitude`` is the norm of t = A·û'
in pooled units. The generator sees u' too and is trained with a penalty on |α|, so it
learns to paint faces that already carry their code; the write step then changes little.

The read above is exact for the crop as written; a *learned* read (``learned_read``: a
(128 x 3r²) map ``reader`` over the same pooled cells, fitted by ``train/eigen.py:
fit_reader`` on virtual crops as written and re-encoded as JPEG) recovers more of u' from
clipped and re-encoded photos. The write, and so every virtual face, is the same either way.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _dct_rows(r: int, k: int) -> torch.Tensor:
    """(k*k, r*r) the k x k lowest 2-D DCT-II basis images on an r x r grid."""
    n = torch.arange(r, dtype=torch.float64)
    basis1 = torch.stack([torch.cos(math.pi * (n + 0.5) * f / r) for f in range(k)])  # (k, r)
    return torch.einsum("ay,bx->abyx", basis1, basis1).reshape(k * k, r * r)


class CodeCarrier(nn.Module):
    def __init__(self, interior: torch.Tensor, dim: int = 128, res: int = 16, drop_low: int = 3,
                 amplitude: float = 4.0, seed: int = 20261126, pilots: int = 32, learned_read: bool = False):
        """interior: (r, r) float mask of the cells inside the face (1) and outside (0).

        ``pilots`` extra rows carry a fixed, known vector: at recovery the alignment whose
        pilot read best matches it is the one the code was written in (re-detected landmarks
        on a virtual face can be several pixels off). ``learned_read``: the code is read by
        its own (dim, 3·r·r) map ``reader`` (fitted by train/eigen.py fit_reader; it starts as the
        basis rows, the exact read) instead of the basis rows themselves."""
        super().__init__()
        # only cells fully inside the mask: near the feathered edge a pooled target needs large
        # pattern values (the mask scales them down), which shows as a coloured ring
        cells = (interior.reshape(-1) > 0.98).double()  # (r*r,)
        low = _dct_rows(res, drop_low) * cells  # smooth components restricted to the interior
        ql, _ = torch.linalg.qr(low.T)  # (r*r, k*k)

        # Chroma only: colour-difference directions orthogonal to luminance (1, 1, 1). Skin
        # chroma is smooth, so little content has to be overwritten, and detectors and
        # recognisers read mostly luminance structure.
        chroma = torch.tensor([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]], dtype=torch.float64)
        chroma = chroma / chroma.norm(dim=1, keepdim=True)  # (2, 3)

        def rows(n: int, g: torch.Generator) -> torch.Tensor:
            out = torch.zeros(n, 3, res * res, dtype=torch.float64)
            for cdir in chroma:
                rnd = torch.randn(n, res * res, generator=g, dtype=torch.float64) * cells
                out += cdir[None, :, None] * (rnd - (rnd @ ql) @ ql.T)[:, None, :]
            return out.reshape(n, 3 * res * res)  # channel-major like pooled.flatten(1)

        b = torch.cat([rows(dim, torch.Generator().manual_seed(seed)),
                       rows(pilots, torch.Generator().manual_seed(seed + 1))])
        q, _ = torch.linalg.qr(b.T)  # (3*r*r, dim + pilots); the first dim columns depend on the code rows only
        self.register_buffer("basis", q.T.float().contiguous())  # (dim + pilots, 3*r*r)
        pilot = torch.randn(pilots, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)
        self.register_buffer("pilot", (amplitude * pilot / pilot.norm()).float())  # (pilots,)
        self.res, self.amplitude, self.dim = res, amplitude, dim
        if learned_read:
            self.register_buffer("reader", self.basis[:dim].clone())
        else:
            self.reader = None
        self._m_inv: dict[int, torch.Tensor] = {}

    def pooled(self, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, 3*r*r) cell means of the masked crop."""
        return F.adaptive_avg_pool2d(v * mask, self.res).flatten(1)

    def read_all(self, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, dim + pilots) carrier coefficients."""
        return self.pooled(v, mask) @ self.basis.T

    def read(self, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, dim) code coefficients (direction of u' when written by ``write``)."""
        if self.reader is not None:
            return self.pooled(v, mask) @ self.reader.T
        return self.read_all(v, mask)[:, : self.dim]

    def pilot_match(self, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B,) cosine of the pilot read to the known pilot vector (1 = aligned)."""
        return F.cosine_similarity(self.read_all(v, mask)[:, self.dim :], self.pilot[None], dim=1)

    def pilot_rows(self, mask: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """The pilot read as it acts on a crop whose ``mask`` (1, 1, 2r, 2r) is 1 wherever the
        pilot rows are not 0: {"pilot_rows" (P, 3, n), "pilot_cells" (n,) cell indices of the
        r x r grid, "pilot" (P,)}, so that the pilot read of such a crop is its cells' 2 x 2 means
        on those cells times the rows (``kfaar.runtime.realign.PilotRows``: the re-alignment
        search scores its candidates that way without materialising them). None where the mask
        is below 1 on a cell the rows use (the read then needs the mask)."""
        r = self.res
        if mask.shape[-2:] != (2 * r, 2 * r):
            raise ValueError(f"pilot_rows: the mask must be {2 * r} px (2 per carrier cell), got {tuple(mask.shape)}")
        rows = self.basis[self.dim :].view(-1, 3, r * r)
        used = rows.abs().amax((0, 1)) > 1e-6 * rows.abs().max()
        full = F.max_pool2d(-mask.reshape(1, 1, 2 * r, 2 * r), 2).reshape(-1) == -1  # cell's least mask is 1
        if bool((used & ~full).any()):
            return None
        cells = torch.nonzero(used).reshape(-1)
        return {"pilot_rows": rows[:, :, cells].contiguous(), "pilot_cells": cells, "pilot": self.pilot}

    def patterns(self, size: int, mask: torch.Tensor) -> torch.Tensor:
        """(n, 3, S, S): each basis row upsampled smoothly to the crop and masked (cached per size)."""
        key = (size, str(mask.device), "p")
        if key not in self._m_inv:
            with torch.no_grad():
                b = self.basis.view(-1, 3, self.res, self.res)
                self._m_inv[key] = F.interpolate(b, size=(size, size), mode="bilinear", align_corners=False) * mask
        return self._m_inv[key]

    def _inverse(self, size: int, mask: torch.Tensor) -> torch.Tensor:
        key = (size, str(mask.device), "inv")
        if key not in self._m_inv:
            with torch.no_grad():
                p = self.patterns(size, mask)  # (n, 3, S, S)
                m = self.read_all(p, torch.ones_like(mask))  # (n, n): coefficients of each pattern
                self._m_inv[key] = torch.linalg.inv(m.double()).float()
        return self._m_inv[key]

    def write(self, y: torch.Tensor, code: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Make read(y') = amplitude · unit(code). Returns (y', alpha (B, dim) — the correction applied)."""
        size = y.shape[-1]
        target = torch.cat([self.amplitude * F.normalize(code, dim=1), self.pilot.expand(len(code), -1)], 1)
        alpha = (target - self.read_all(y, mask)) @ self._inverse(size, mask)  # (B, dim + pilots)
        p = self.patterns(size, mask)  # (dim + pilots, 3, S, S)
        return y + torch.einsum("bd,dchw->bchw", alpha, p), alpha
