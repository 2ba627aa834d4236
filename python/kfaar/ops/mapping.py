"""Fused latent mapping: (projected) identity latent -> extended style code W+.

    h_0 = x;   h_{l+1} = gain · leaky_relu(W_l h_l + b_l, slope)          (L layers)
    w[s] = A[s] h_L + c[s]                                               (one affine per style)
    out[s] = alpha[s] · mix[s] + (1 - alpha[s]) · w[s]                   (optional mixing)

Mixing toward a second code keeps chosen generator layers (the paper keeps the coarse ones
from the original). The kernel owns no model: :class:`MappingWeights` carries the arrays,
checked once when built so each call only checks the activations.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from kfaar.ops import _checks, _dispatch

if TYPE_CHECKING:
    import torch

__all__ = ["MappingWeights", "map_latent", "map_latent_torch", "torch_mapping"]

MAX_LAYERS = 16  # kMaxMappingLayers in csrc/include/kfaar/mapping_params.h


@dataclass(frozen=True, eq=False)
class MappingWeights:
    """Weights of the mapping network, as private read-only float32 arrays."""

    weights: tuple[np.ndarray, ...]  # layer l: (out_dim, in_dim), torch Linear layout
    biases: tuple[np.ndarray, ...]  # layer l: (out_dim,)
    style_weight: np.ndarray  # (n_styles, style_dim, hidden)
    style_bias: np.ndarray  # (n_styles, style_dim)
    slope: float = 0.2  # leaky ReLU negative slope
    gain: float = math.sqrt(2.0)  # StyleGAN's activation gain keeps the activations' scale

    def __post_init__(self) -> None:
        weights, biases = tuple(self.weights), tuple(self.biases)
        if len(weights) != len(biases):
            raise ValueError(f"biases: expected one bias per weight ({len(weights)}), got {len(biases)}")
        if len(weights) > MAX_LAYERS:
            raise ValueError(f"weights: expected at most {MAX_LAYERS} layers, got {len(weights)}")
        width = None
        for i, (w, b) in enumerate(zip(weights, biases)):
            _checks.checked(w, f"weights[{i}]", 2, "(out_dim, in_dim)")
            _checks.checked(b, f"biases[{i}]", 1, "(out_dim,)")
            if width is not None:
                _checks.check_axis(w, f"weights[{i}]", 1, width, "out_dim of the previous layer")
            _checks.check_axis(b, f"biases[{i}]", 0, w.shape[0], "out_dim of its weight")
            _checks.check_finite(w, f"weights[{i}]")
            _checks.check_finite(b, f"biases[{i}]")
            width = w.shape[0]
        sw = _checks.checked(self.style_weight, "style_weight", 3, "(n_styles, style_dim, hidden)")
        if width is not None:
            _checks.check_axis(sw, "style_weight", 2, width, "out_dim of the last layer")
        sb = _checks.checked(self.style_bias, "style_bias", 2, "(n_styles, style_dim)")
        _checks.check_axis(sb, "style_bias", 0, sw.shape[0], "n_styles of style_weight")
        _checks.check_axis(sb, "style_bias", 1, sw.shape[1], "style_dim of style_weight")
        _checks.check_finite(sw, "style_weight")
        _checks.check_finite(sb, "style_bias")
        for name in ("slope", "gain"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name}: expected a finite number, got {value!r}")
        object.__setattr__(self, "weights", tuple(_checks.readonly(w) for w in weights))
        object.__setattr__(self, "biases", tuple(_checks.readonly(b) for b in biases))
        object.__setattr__(self, "style_weight", _checks.readonly(sw))
        object.__setattr__(self, "style_bias", _checks.readonly(sb))
        object.__setattr__(self, "slope", float(self.slope))
        object.__setattr__(self, "gain", float(self.gain))

    @property
    def in_dim(self) -> int:
        return int(self.weights[0].shape[1] if self.weights else self.style_weight.shape[2])

    @property
    def n_styles(self) -> int:
        return int(self.style_weight.shape[0])

    @property
    def style_dim(self) -> int:
        return int(self.style_weight.shape[1])

    def __repr__(self) -> str:
        dims = [self.in_dim] + [int(w.shape[0]) for w in self.weights]
        return (
            f"MappingWeights(dims={dims}, n_styles={self.n_styles}, style_dim={self.style_dim}, "
            f"slope={self.slope}, gain={self.gain:.4g})"
        )

    @classmethod
    def random(
        cls,
        in_dim: int = 128,
        hidden: int = 512,
        layers: int = 4,
        n_styles: int = 8,
        style_dim: int = 512,
        *,
        seed: int = 0,
        slope: float = 0.2,
        gain: float = math.sqrt(2.0),
    ) -> MappingWeights:
        """He-style random weights (activations stay O(1)); for tests and benchmarks."""
        rng = np.random.default_rng(seed)
        dims = [in_dim] + [hidden] * layers
        weights = [(rng.standard_normal((o, i)) / math.sqrt(i)).astype(np.float32) for i, o in zip(dims, dims[1:])]
        biases = [(0.1 * rng.standard_normal(o)).astype(np.float32) for o in dims[1:]]
        sw = (rng.standard_normal((n_styles, style_dim, dims[-1])) / math.sqrt(dims[-1])).astype(np.float32)
        sb = (0.1 * rng.standard_normal((n_styles, style_dim))).astype(np.float32)
        return cls(tuple(weights), tuple(biases), sw, sb, slope=slope, gain=gain)


def _check_call(x: object, weights: object, mix: object, alpha: object) -> tuple[np.ndarray, ...]:
    if not isinstance(weights, MappingWeights):
        raise TypeError(f"weights: expected MappingWeights, got {type(weights).__name__}")
    x = _checks.checked(x, "x", 2, "(batch, in_dim)")
    _checks.check_axis(x, "x", 1, weights.in_dim, "in_dim of weights")
    if (mix is None) != (alpha is None):
        raise ValueError(f"mix, alpha: expected both or neither, got only {'alpha' if mix is None else 'mix'}")
    if mix is not None:
        mix = _checks.checked(mix, "mix", 3, "(batch, n_styles, style_dim)")
        _checks.check_axis(mix, "mix", 0, x.shape[0], "batch of x")
        _checks.check_axis(mix, "mix", 1, weights.n_styles, "n_styles of style_weight")
        _checks.check_axis(mix, "mix", 2, weights.style_dim, "style_dim of style_weight")
        alpha = _checks.checked(alpha, "alpha", 1, "(n_styles,)")
        _checks.check_axis(alpha, "alpha", 0, weights.n_styles, "n_styles of style_weight")
    return x, mix, alpha


def map_latent(
    x: np.ndarray,
    weights: MappingWeights,
    *,
    mix: np.ndarray | None = None,
    alpha: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Map latents ``x`` (batch, in_dim) float32 to W+ (batch, n_styles, style_dim) float32.

    ``mix`` (batch, n_styles, style_dim) with ``alpha`` (n_styles,): per-style weight of the
    second code (1 keeps ``mix``, 0 keeps the mapped code)."""
    x, mix, alpha = _check_call(x, weights, mix, alpha)
    chosen = _dispatch.resolve("mapping", backend)
    if chosen == "ref":
        for name, a in (("x", x), ("mix", mix), ("alpha", alpha)):
            if a is not None:
                _checks.check_finite(a, name)  # the native kernels check these themselves
        return np.ascontiguousarray(_map_latent_ref(x, weights, mix=mix, alpha=alpha), np.float32)
    kernel = _dispatch.native_kernel("mapping", chosen)
    return kernel(
        x,
        weights.weights,
        weights.biases,
        weights.style_weight,
        weights.style_bias,
        mix=mix,
        alpha=alpha,
        slope=weights.slope,
        gain=weights.gain,
        check_weights=False,  # MappingWeights checked them once
    )


def _map_latent_ref(
    x: np.ndarray, weights: MappingWeights, *, mix: np.ndarray | None = None, alpha: np.ndarray | None = None
) -> np.ndarray:
    """Reference twin of the kernel, in float64 numpy; returns float64."""
    h = np.asarray(x, np.float64)
    for w, b in zip(weights.weights, weights.biases):
        h = h @ w.astype(np.float64).T + b
        h = np.where(h < 0, h * weights.slope, h) * weights.gain
    sw = weights.style_weight.astype(np.float64)
    out = np.einsum("bk,snk->bsn", h, sw) + weights.style_bias
    if mix is not None:
        a = np.asarray(alpha, np.float64)[None, :, None]
        out = a * mix + (1.0 - a) * out
    return out


def map_latent_torch(
    x: torch.Tensor,
    weights: MappingWeights,
    *,
    mix: torch.Tensor | None = None,
    alpha: torch.Tensor | Sequence[float] | None = None,
) -> torch.Tensor:
    """Torch eager twin of :func:`map_latent` (differentiable in ``x`` and ``mix``); copies the
    weights on every call, so keep a :func:`torch_mapping` module for repeated use."""
    return torch_mapping(weights).to(device=x.device, dtype=x.dtype)(x, mix=mix, alpha=alpha)


def torch_mapping(weights: MappingWeights) -> torch.nn.Module:
    """A torch ``nn.Module`` holding copies of ``weights`` as parameters; ``forward(x, mix=None,
    alpha=None)`` is the eager twin of :func:`map_latent`."""
    if not isinstance(weights, MappingWeights):
        raise TypeError(f"weights: expected MappingWeights, got {type(weights).__name__}")
    return _torch_mapping_class()(weights)


@functools.cache
def _torch_mapping_class() -> type:
    import torch
    import torch.nn.functional as F

    class TorchMapping(torch.nn.Module):
        def __init__(self, w: MappingWeights):
            super().__init__()
            self.slope, self.gain = w.slope, w.gain
            self.n_styles, self.style_dim = w.n_styles, w.style_dim
            self.weights = torch.nn.ParameterList(torch.nn.Parameter(torch.tensor(a)) for a in w.weights)
            self.biases = torch.nn.ParameterList(torch.nn.Parameter(torch.tensor(a)) for a in w.biases)
            n_out = w.n_styles * w.style_dim
            self.style_weight = torch.nn.Parameter(torch.tensor(w.style_weight).reshape(n_out, -1))
            self.style_bias = torch.nn.Parameter(torch.tensor(w.style_bias).reshape(n_out))

        def forward(self, x, mix=None, alpha=None):
            h = x
            for w, b in zip(self.weights, self.biases):
                h = F.leaky_relu(F.linear(h, w, b), self.slope) * self.gain
            out = F.linear(h, self.style_weight, self.style_bias).reshape(-1, self.n_styles, self.style_dim)
            if mix is not None:
                a = torch.as_tensor(alpha, dtype=out.dtype, device=out.device).reshape(1, -1, 1)
                out = a * mix + (1.0 - a) * out
            return out

    return TorchMapping
