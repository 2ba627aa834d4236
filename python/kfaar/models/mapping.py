"""Latent mapping M: keyed whitened identity code u' (128) -> W+ (n_styles, style_dim).

Same structure as the fused kernel ``kfaar.ops.mapping``: L x (linear + leaky ReLU with
gain √2), then one affine per style. ``kernel_weights`` hands the effective (scaled)
weights over in that kernel's layout, so training and inference share one set of numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from kfaar.models.layers import EqualLinear


class MappingNetwork(nn.Module):
    def __init__(self, code_dim: int = 128, hidden: int = 256, n_layers: int = 4, n_styles: int = 9,
                 style_dim: int = 256, lr_mul: float = 1.0):
        super().__init__()
        # lr_mul 1: StyleGAN slows its mapping (0.01) over ~10^5 steps; a schedule of ~10^3
        # steps needs the key to reach the decoder fast, so the mapping learns at full rate.
        dims = [code_dim] + [hidden] * n_layers
        self.layers = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, activate=True) for a, b in zip(dims, dims[1:]))
        self.styles = nn.ModuleList(EqualLinear(hidden, style_dim, lr_mul=lr_mul) for _ in range(n_styles))
        self.n_styles, self.style_dim = n_styles, style_dim

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u: (B, code_dim) keyed whitened code (norm ~ √code_dim) -> W+ (B, n_styles, style_dim)."""
        h = u * torch.rsqrt(u.pow(2).mean(1, keepdim=True) + 1e-8)  # pixel-norm: scale-free input
        for layer in self.layers:
            h = layer(h)
        return torch.stack([s(h) for s in self.styles], 1)

    def kernel_weights(self) -> dict[str, torch.Tensor]:
        """Effective weights: hidden_w (L, hidden, in) as a list per layer, style_w (n_styles, style_dim, hidden)."""
        out: dict[str, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            out[f"layer{i}.weight"], out[f"layer{i}.bias"] = (t.detach() for t in layer.effective())
        ws, bs = zip(*(s.effective() for s in self.styles))
        out["style.weight"] = torch.stack(ws).detach()  # (n_styles, style_dim, hidden)
        out["style.bias"] = torch.stack(bs).detach()  # (n_styles, style_dim)
        return out
