"""Generator G(W+, A(x)): edits an aligned face crop into a virtual face.

Realism comes from the photo: everything outside a soft face-interior mask is the input
itself, so background, hair, head outline (and with it pose) and paste-back seams are kept
by construction. Inside the mask the attribute encoder A sees only a low-passed copy
(``attr_pool``-fold average pooled: skin tone, lighting, shading, where the mouth and eyes
are dark) — too coarse to carry identity — and the decoder, modulated layer by layer by the
W+ styles of the keyed identity, paints the detail back. With the identity key the
reconstruction loss teaches it to paint the original face from z; with any other key it
paints the face of z'. Skips come only from A, i.e. from the identity-suppressed input.

    x (B,3,S,S) ─► x_in = x outside, lowpass(x) inside ─► A ─► e0..e4 (S .. S/16)
    W+ (B,n_styles,style_dim) ─► styled decoder (S/16 -> S, U-Net skips from A) ─► rgb
    v = carrier.write(x_in + mask · rgb, u')      (the keyed code, for KVFA's reader)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kfaar.models.carrier import CodeCarrier
from kfaar.models.layers import ConvAct, StyledConv, ToRGB


@dataclass(frozen=True)
class EditRegion:
    """Where a generator edits and how it carries the keyed code (every generator kind has these)."""

    # Face-interior ellipse on the ArcFace-aligned crop, as fractions of the side: covers
    # brows, eyes, nose, mouth, cheeks and chin, leaves hair, ears and background alone.
    mask_center: tuple[float, float] = (0.5, 0.60)  # (x, y)
    mask_radii: tuple[float, float] = (0.34, 0.41)
    mask_feather: float = 0.07  # soft edge width, so the seam is a blend, not a cut
    # Code carrier for KVFA (models/carrier.py): the keyed code u' is written into the face
    # interior on a fixed smooth basis and read back linearly. ``carrier`` is the code's norm
    # in pooled units (0 switches it off); 24 cells across keep ~5 px cells at 128 px, which
    # survive re-alignment, and the 3x3 smoothest components (tone, light) are left alone.
    carrier: float = 0.5
    carrier_res: int = 24
    carrier_drop_low: int = 3
    carrier_seed: int = 20261126
    # The carrier's code read: "exact" (the basis rows the code is written with: lossless
    # crops read back exactly) or "learned" (a linear map of the same pooled cells fitted on
    # virtual crops as re-encoded photos deliver them: train/eigen.py fit_reader)
    carrier_read: str = "exact"


@dataclass(frozen=True)
class GeneratorConfig(EditRegion):
    enc_channels: tuple[int, ...] = (16, 24, 48, 96, 192)  # A at S, S/2, S/4, S/8, S/16
    dec_channels: tuple[int, ...] = (96, 48, 24, 16)  # decoder at S/8, S/4, S/2, S (FLOPs live at S)
    style_dim: int = 256
    attr_pool: int = 8  # interior low-pass factor: 16x16 at 128 px keeps light/shape, drops identity

    @property
    def n_styles(self) -> int:
        return 1 + 2 * len(self.dec_channels) + (len(self.dec_channels) - 1)  # bottleneck, 2/level, ToRGBs


def ellipse_radius(cfg: EditRegion, size: int, device=None) -> torch.Tensor:
    """(size, size) each pixel centre's distance from the face ellipse's centre, in its radii
    (1 on the ellipse)."""
    t = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    (cx, cy), (rx, ry) = cfg.mask_center, cfg.mask_radii
    return torch.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)


def face_mask(cfg: EditRegion, size: int, device=None) -> torch.Tensor:
    """Soft face-interior mask (1, 1, size, size) in [0, 1]."""
    return ((1 - ellipse_radius(cfg, size, device)) / cfg.mask_feather + 0.5).clamp(0, 1)[None, None]


def lowpass(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average-pool by ``factor`` and upsample back: (B, C, S, S) -> (B, C, S, S)."""
    small = F.avg_pool2d(x, factor)
    return F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False)


class AttributeEncoder(nn.Module):
    """A(x): the identity-suppressed crop and its mask -> features at S, S/2, ..., S/16."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        ch = cfg.enc_channels
        self.stem = ConvAct(4, ch[0])
        self.down = nn.ModuleList(ConvAct(a, b, stride=2) for a, b in zip(ch, ch[1:]))

    def forward(self, x_in: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        h = self.stem(torch.cat([x_in, mask.expand(x_in.shape[0], -1, -1, -1)], 1))
        feats = [h]  # (B, c0, S, S)
        for layer in self.down:
            h = layer(h)
            feats.append(h)  # ..., (B, c4, S/16, S/16)
        return feats


class MaskedEditor(nn.Module):
    """What every generator shares: the soft face-interior mask it edits inside, and the code
    carrier that writes the keyed code u' into the result for KVFA to read back."""

    takes_offset = False  # whether forward uses the inputs' nose offsets (the eigen pose warp)

    @property
    def input_names(self) -> tuple[str, ...]:
        """``forward``'s inputs in order, as the exported graph names them: the crop, W+, the
        keyed code and, for a generator with a pose warp, the inputs' nose offsets."""
        return ("crop", "w_plus", "code", "offset") if self.takes_offset else ("crop", "w_plus", "code")

    def _init_carrier(self, cfg: EditRegion) -> None:
        self._masks: dict[tuple, torch.Tensor] = {}
        self.code_carrier = None
        if cfg.carrier > 0:
            interior = F.adaptive_avg_pool2d(face_mask(cfg, 128), cfg.carrier_res)[0, 0]
            self.code_carrier = CodeCarrier(interior, 128, cfg.carrier_res, cfg.carrier_drop_low, cfg.carrier,
                                            cfg.carrier_seed, learned_read=cfg.carrier_read == "learned")

    def mask(self, size: int, device) -> torch.Tensor:
        key = (size, str(device))
        if key not in self._masks:
            self._masks[key] = face_mask(self.cfg, size, device)
        return self._masks[key]

    def read_code(self, v: torch.Tensor) -> torch.Tensor:
        """Virtual crops (B, 3, S, S) -> (B, d) unit direction of the keyed code they carry."""
        if self.code_carrier is None:
            raise ValueError("this generator has no code carrier (carrier = 0)")
        return F.normalize(self.code_carrier.read(v, self.mask(v.shape[-1], v.device)), dim=1)

    def _carry(self, y: torch.Tensor, code: torch.Tensor | None, m: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.code_carrier is None:
            return y, None
        if code is None:
            raise ValueError("code: this generator carries the keyed code (carrier > 0); pass code=u'")
        return self.code_carrier.write(y, code, m)

    def forward(self, x: torch.Tensor, w_plus: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, 3, S, S) aligned crop in [-1, 1]; w_plus: (B, n_styles, style_dim);
        code: (B, d) keyed code u' (with the carrier on) -> v (B, 3, S, S)."""
        return self.synthesize(x, w_plus, code)[0]


class Generator(MaskedEditor):
    def __init__(self, cfg: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.cfg = cfg
        enc, dec, sd = cfg.enc_channels, cfg.dec_channels, cfg.style_dim
        self.encoder = AttributeEncoder(cfg)
        self.bottleneck = StyledConv(enc[-1], enc[-1], sd)
        self.conv1, self.conv2, self.to_rgb = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = enc[-1]
        for i, c in enumerate(dec):
            skip = enc[-2 - i]  # A's features at this level's resolution
            self.conv1.append(StyledConv(cin + skip, c, sd))
            self.conv2.append(StyledConv(c, c, sd))
            if i > 0:
                self.to_rgb.append(ToRGB(c, sd))
            cin = c
        self._init_carrier(cfg)

    def synthesize(self, x: torch.Tensor, w_plus: torch.Tensor, code: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As ``forward``, also returning the carrier's correction alpha (B, d) (None without carrier)."""
        m = self.mask(x.shape[-1], x.device)
        x_in = x * (1 - m) + lowpass(x, self.cfg.attr_pool * x.shape[-1] // 128 or 1) * m
        feats = self.encoder(x_in, m)
        h = self.bottleneck(feats[-1], w_plus[:, 0])
        si, rgb = 1, None
        for i in range(len(self.conv1)):
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = self.conv1[i](torch.cat([h, feats[-2 - i]], 1), w_plus[:, si])
            h = self.conv2[i](h, w_plus[:, si + 1])
            si += 2
            if i > 0:
                rgb = self.to_rgb[i - 1](h, w_plus[:, si], rgb)
                si += 1
        return self._carry(x_in + m * rgb, code, m)
