"""Eigenface generator: the virtual face is a keyed edit in a learned linear face model.

The styled decoder (models/generator.py) has to learn to *paint* a face from W+, which did
not happen in a CPU budget (blurred, mottled interiors). This generator gets its realism
from a face model fitted on the train split instead, and only decides *which* face:

    x (B,3,S,S) ─► 2x pooled to 64 px, the box around the face ellipse ─► v (B, D)
    c  = (v - mean) Φ                     PCA coefficients of the face (K = 256, orthonormal Φ)
    c' = c · E + w                        E keeps the within-person modes (pose, expression,
                                          lighting) and removes the identity modes; w = W+[:, 0]
                                          is the keyed identity the mapping kernel made from u'
    v' = mean + c' Φᵀ ─► upsample to S (bilinear, or with the refiner: bilinear 2x plus learned
                     detail) ─► pad ─► pose warp (optional: shifted sideways by the input's
                     nose offset, read from c) ─► shift to the input's mean colour under the mask
                     ─► seamless paste (optional: the mismatch at the mask's edge spread inward)
                     ─► x outside the soft face mask, v' inside
    v  = carrier.write(...)               the keyed code, for KVFA's reader (models/carrier.py)

E = V diag(keep) V⁻¹ where V are the discriminant directions of the face coefficients
(generalised eigenvectors of between- vs within-identity scatter, largest ratio first):
the first ``n_identity`` get -``push`` (0: removed; > 0: the person's own identity part is
subtracted, moving the face away from them), the rest are kept (1). ``train/eigen.py`` fits Φ, E and the
mapping (u -> the identity part it replaces) on the train split; the face model is not
trained by gradient, and its tensors are plain linear maps, so export and parity are exact.
The optional ``DetailRefiner`` (``train/eigen.py: fit_refiner``) is the one convolutional
network: it renders the 64-px face at 128 px from that face alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from kfaar.models.generator import EditRegion, MaskedEditor, face_mask


@dataclass(frozen=True)
class EigenConfig(EditRegion):
    # The face ellipse is a little wider than the styled generator's interior, out to the
    # cheeks and jaw line — what stays of the input (head outline, hair) is what recognisers
    # still match on (30 dev identities, SFace anonymity 91.7% with radii (0.34, 0.41), 98.2%
    # with these). The carrier settings are EditRegion's.
    mask_radii: tuple[float, float] = (0.38, 0.45)
    kind: str = "eigen"
    res: int = 64  # face-model resolution; crops are average-pooled to it, the edit upsampled back
    n_components: int = 256  # K, PCA components of the face box
    n_identity: int = 192  # discriminant directions replaced by the keyed identity
    push: float = 0.0  # the input's identity part is subtracted this many times (away from the person)
    # Detail refiner (``DetailRefiner``): a small convolutional 2x upsampler of the face box,
    # trained on train crops to restore the detail the 64-px face model drops. 0: bilinear.
    # Its detail fades out from refine_inner of the ellipse's radii to the seam: left to
    # itself it learns the dark outline real crops have there (hair, jaw shadow), which drew
    # a ring around every face.
    refine_channels: int = 0
    refine_layers: int = 4
    refine_inner: float = 0.85
    # Pose warp (``EigenGenerator.pose_warp``): the rendered face is shifted sideways by this
    # many times the input's nose offset from its eye-mouth midline (read linearly from the
    # face coefficients), most on the face's centre line and not at all at the ellipse, so
    # a turned head gets a turned face. 0: off. The identity split keeps little of the yaw:
    # without it, FaceMesh's yaw of the virtual face is 0.22x the input's (150 dev crops).
    pose_warp: float = 0.0
    # Seamless paste (``seam_operator``): what still differs between the rendered face and the
    # photo where the feathered mask fades (the ellipse's edge: colour, shading, a jaw shadow
    # the face model draws) is spread inward by a screened Poisson correction computed on a
    # ``seam_res``-px grid, fading over about 1 / sqrt(seam_screen) grid pixels, so the face
    # has no visible outline; its interior, and so the identity, stays the rendered face's.
    # 0: off (the face is only shifted to the photo's mean colour under the mask).
    seam_res: int = 0
    seam_screen: float = 0.2

    @property
    def n_styles(self) -> int:
        return 1  # W+ is one vector: the identity part of the face coefficients

    @property
    def style_dim(self) -> int:
        return self.n_components

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(y0, y1, x0, x1) at ``res``: the face model's pixels, the mask's support plus 1 px."""
        reach = 1 + self.mask_feather / 2  # the feathered mask is > 0 up to this ellipse radius
        (cx, cy), (rx, ry) = self.mask_center, self.mask_radii
        lo = lambda c, r: max(0, math.floor((c - r * reach) * self.res) - 1)  # noqa: E731
        hi = lambda c, r: min(self.res, math.ceil((c + r * reach) * self.res) + 1)  # noqa: E731
        return lo(cy, ry), hi(cy, ry), lo(cx, rx), hi(cx, rx)

    def crop_box(self, t: torch.Tensor) -> torch.Tensor:
        """(..., S, S) with S a multiple of ``res`` -> the face box's pixels at that scale."""
        f = t.shape[-1] // self.res
        y0, y1, x0, x1 = self.box
        return t[..., f * y0: f * y1, f * x0: f * x1]

    @property
    def n_pixels(self) -> int:
        y0, y1, x0, x1 = self.box
        return 3 * (y1 - y0) * (x1 - x0)


def seam_operator(cfg: EigenConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The seamless paste's correction as a fixed linear map on the ``seam_res`` grid.

    On that grid the correction h minimises  sum |grad h|^2 + 10 sum (1 - m)^2 (h - d)^2 +
    seam_screen sum h^2  for the mismatch d (photo minus face, averaged over each cell's part
    of the mask's support) on the cells where the mask fades (0 < m < 1): h meets d there, is
    harmonic elsewhere and dies out over about 1 / sqrt(seam_screen) cells. Returns the map
    M (res^2, r) and those r cells' flat indices: h = d[..., cells] M^T on the flattened grid."""
    res = cfg.seam_res
    m = face_mask(cfg, res)[0, 0].double().flatten()
    cell = torch.arange(res * res).view(res, res)
    a = torch.cat([cell[:, :-1].flatten(), cell[:-1, :].flatten()])  # 4-neighbour pairs (a, b)
    b = torch.cat([cell[:, 1:].flatten(), cell[1:, :].flatten()])
    lap = torch.zeros(res * res, res * res, dtype=torch.float64)
    ones = torch.ones(len(a), dtype=torch.float64)
    lap.index_put_((a, b), -ones, accumulate=True)
    lap.index_put_((b, a), -ones, accumulate=True)
    lap -= torch.diag(lap.sum(1))
    cells = torch.nonzero((m > 0) & (m < 1))[:, 0]
    data = torch.zeros(res * res, len(cells), dtype=torch.float64)
    data[cells, torch.arange(len(cells))] = 10 * (1 - m[cells]) ** 2
    eye = torch.eye(res * res, dtype=torch.float64)
    op = torch.linalg.solve(lap + torch.diag(data.sum(1)) + cfg.seam_screen * eye, data)
    return op.float(), cells


class DetailRefiner(nn.Module):
    """(B, 3, h, w) face box at the face model's resolution -> (B, 3, 2h, 2w): bilinear
    upsampling plus a learned residual (convolutions at h x w, then a 2x pixel shuffle).

    It sees only the rendered face-model face — never the input photo — so it can add
    detail but cannot bring the person's identity back. ``weight`` (1, 1, 2h, 2w), fixed,
    scales the residual per pixel. The last convolution starts at zero: an untrained refiner
    is exactly the bilinear upsampling."""

    def __init__(self, channels: int, layers: int, weight: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        body: list[nn.Module] = [nn.Conv2d(3, channels, 3, padding=1), nn.ReLU()]
        for _ in range(layers):
            body += [nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU()]
        last = nn.Conv2d(channels, 12, 3, padding=1)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.body = nn.Sequential(*body, last, nn.PixelShuffle(2))

    def forward(self, face: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(face, scale_factor=2, mode="bilinear", align_corners=False)
        detail = self.body(face)
        return up + (detail if self.weight is None else self.weight * detail)


class EigenGenerator(MaskedEditor):
    def __init__(self, cfg: EigenConfig = EigenConfig()):
        super().__init__()
        if not 0 < cfg.n_identity <= cfg.n_components:
            raise ValueError(f"n_identity must be in 1..n_components ({cfg.n_components}), got {cfg.n_identity}")
        self.cfg = cfg
        d, k = cfg.n_pixels, cfg.n_components
        self.register_buffer("mean", torch.zeros(d))  # (D,) mean face box in [-1, 1]
        self.register_buffer("basis", torch.zeros(d, k))  # (D, K) orthonormal PCA basis Φ
        self.register_buffer("edit", torch.eye(k))  # (K, K) E: keeps the within-person modes
        self._warps: dict[tuple, tuple[torch.Tensor, ...]] = {}
        if cfg.pose_warp:  # (D + 1,): nose offset (128-px crop pixels) = box . nose[:D] + nose[D]
            self.register_buffer("nose", torch.zeros(d + 1))
        if cfg.seam_res:  # (res^2, r) the seamless paste's correction, derived from the config alone
            if not cfg.seam_screen > 0:
                raise ValueError(f"seam_screen must be > 0, got {cfg.seam_screen}")
            op, cells = seam_operator(cfg)
            self.register_buffer("seam", op, persistent=False)
            self.register_buffer("seam_cells", cells, persistent=False)
        self.refiner = None
        if cfg.refine_channels:
            inner = replace(cfg, mask_radii=tuple(r * cfg.refine_inner for r in cfg.mask_radii))
            weight = cfg.crop_box(face_mask(inner, 2 * cfg.res))
            self.refiner = DetailRefiner(cfg.refine_channels, cfg.refine_layers, weight)
        self._init_carrier(cfg)

    def face_box(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) crops -> (B, D) the face box at the model's resolution."""
        s = x.shape[-1]
        if s % self.cfg.res:
            raise ValueError(f"crop size {s} is not a multiple of the face model's resolution {self.cfg.res}")
        small = F.avg_pool2d(x, s // self.cfg.res) if s != self.cfg.res else x
        return self.cfg.crop_box(small).flatten(1)

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) -> (B, K) face-model coefficients c."""
        return self.box_coefficients(self.face_box(x))

    def box_coefficients(self, box: torch.Tensor) -> torch.Tensor:
        """(B, D) face boxes (``face_box``) -> (B, K) face-model coefficients c."""
        return (box - self.mean) @ self.basis

    def box_face(self, c: torch.Tensor) -> torch.Tensor:
        """(B, K) coefficients -> (B, 3, h, w) the face box at the model's resolution."""
        y0, y1, x0, x1 = self.cfg.box
        return (self.mean + c @ self.basis.T).view(-1, 3, y1 - y0, x1 - x0)

    def render(self, c: torch.Tensor, size: int) -> torch.Tensor:
        """(B, K) coefficients -> (B, 3, size, size) face (zero outside the box)."""
        y0, y1, x0, x1 = self.cfg.box
        r = self.cfg.res
        face = self.box_face(c)
        if self.refiner is not None:
            if size != 2 * r:
                raise ValueError(f"this generator's detail refiner renders {2 * r}-px crops, got size {size}")
            return F.pad(self.refiner(face), (2 * x0, size - 2 * x1, 2 * y0, size - 2 * y1))
        face = F.pad(face, (x0, r - x1, y0, r - y1))
        return face if size == r else F.interpolate(face, size=(size, size), mode="bilinear", align_corners=False)

    @property
    def takes_offset(self) -> bool:
        return bool(self.cfg.pose_warp)

    def nose_offset(self, box: torch.Tensor) -> torch.Tensor:
        """(B, D) face boxes -> (B,) the face's nose offset from its eye-mouth midline, in
        128-px crop pixels (+: to the right in the image): a linear read-out of its face-model
        coefficients fitted on YuNet's landmarks of the train crops (``train/eigen.py:
        fit_pose_warp``), stored folded into pixel weights."""
        # on the float pixels, as a product and a sum: int8 export quantizes the coefficient
        # MatMul's activations and stores MatMul weights in 8 bits, and either error shifts the
        # whole face (int8 error 0.49 grey levels without the warp; 0.89 with the read-out a MatMul)
        return (box * self.nose[:-1]).sum(-1) + self.nose[-1]

    def pose_warp(self, face: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Shift (B, 3, S, S) ``face`` sideways by ``offset`` (B,) 128-px pixels on the centre
        line of the face ellipse, tapering as 1 - (x / half-width)^2 to nothing at the ellipse:
        a turned head's features sit off the midline, the far cheek narrower."""
        size = face.shape[-1]
        key = (size, str(face.device))
        if key not in self._warps:  # (S, S) taper and the identity sampling grid, per size
            (cx, cy), (rx, ry) = self.cfg.mask_center, self.cfg.mask_radii
            t = (torch.arange(size, dtype=torch.float32, device=face.device) + 0.5) / size
            yn, xn = (t - cy)[:, None], (t - cx)[None, :]
            half = rx * (1 - (yn / ry) ** 2).clamp_min(0).sqrt()
            taper = torch.where(xn.abs() < half, 1 - (xn / half.clamp_min(1e-6)) ** 2, 0.0)
            self._warps[key] = (taper, (t * 2 - 1).expand(size, size), (t * 2 - 1)[:, None].expand(size, size))
        taper, gx, gy = self._warps[key]
        # the offset is in 128-px crop pixels: offset * S/128 px at this size, 2/S grid units per px
        shift = (offset * (2.0 / 128))[:, None, None] * taper
        grid = torch.stack([gx - shift, gy.expand_as(shift)], dim=-1)
        return F.grid_sample(face, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def seam_correction(self, mismatch: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) photo minus rendered face, (1, 1, S, S) mask -> (B, 3, S, S) the
        seamless paste's correction (``seam_operator``), upsampled bilinearly from its grid."""
        res, size = self.cfg.seam_res, mismatch.shape[-1]
        if size % res:
            raise ValueError(f"crop size {size} is not a multiple of the seam grid {res}")
        support = (m > 0).to(mismatch.dtype)
        f = size // res
        d = F.avg_pool2d(mismatch * support, f) / F.avg_pool2d(support, f).clamp_min(1e-6)
        h = (d.flatten(2).index_select(2, self.seam_cells) @ self.seam.T).unflatten(2, (res, res))
        return F.interpolate(h, size=(size, size), mode="bilinear", align_corners=False)

    @staticmethod
    def colour_shift(face: torch.Tensor, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """``face`` (B, 3, S, S) shifted to the input ``x``'s mean colour over the mask ``m``.
        The identity modes include skin tone; a face of another tone inside the same head
        looks pasted on: keep the input's (3 numbers per face)."""
        return face + ((x - face) * m).sum((2, 3), keepdim=True) / m.sum()

    def face(self, x: torch.Tensor, w_plus: torch.Tensor, offset: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, S, S) crops, W+ -> (B, 3, S, S) the virtual face as rendered (pose-warped,
        zero outside the box), before the colour shift, the paste into the crop and the code.

        ``offset`` (B,): the input's nose offset where it is known (the detector's landmarks in
        crop pixels: ``kfaar.faces.align.nose_offset``); NaN entries, or None, are read from
        the face box. Ignored without a pose warp."""
        box = self.face_box(x)
        face = self.render(self.box_coefficients(box) @ self.edit + w_plus[:, 0], x.shape[-1])
        if self.cfg.pose_warp:
            read = self.nose_offset(box)
            if offset is not None:
                read = torch.where(torch.isnan(offset), read, offset)
            face = self.pose_warp(face, self.cfg.pose_warp * read)
        return face

    def forward(self, x: torch.Tensor, w_plus: torch.Tensor, code: torch.Tensor | None = None,
                offset: torch.Tensor | None = None) -> torch.Tensor:
        """As ``MaskedEditor.forward``; ``offset`` (B,) the inputs' nose offsets for the pose warp
        where known (NaN or None: read from the face)."""
        return self.synthesize(x, w_plus, code, offset)[0]

    def pasted(self, x: torch.Tensor, w_plus: torch.Tensor, offset: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) crops, W+ -> (the virtual crop before the code is written, the (1, 1, S, S)
        mask it was pasted through): the face colour-shifted, seamed and pasted into the crop."""
        m = self.mask(x.shape[-1], x.device)
        face = self.colour_shift(self.face(x, w_plus, offset), x, m)
        if self.cfg.seam_res:  # and no outline where the mask fades
            face = face + self.seam_correction(x - face, m)
        return x * (1 - m) + face * m, m

    def synthesize(self, x: torch.Tensor, w_plus: torch.Tensor, code: torch.Tensor | None = None,
                   offset: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As ``forward``, also returning the carrier's correction alpha (B, d) (None without carrier)."""
        y, m = self.pasted(x, w_plus, offset)
        return self._carry(y, code, m)
