"""Fused latent mapping: reference ≡ C++ ≡ CUDA on random shapes, the torch twin, and weight checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kfaar.ops import MappingWeights, map_latent, map_latent_torch, torch_mapping
from kfaar.ops.mapping import _map_latent_ref


def randn(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


SHAPES = [  # (in_dim, hidden, layers, n_styles, style_dim)
    (128, 512, 4, 8, 512),
    (7, 13, 3, 5, 9),
    (16, 33, 1, 1, 17),
    (5, 5, 0, 3, 4),
    (64, 24, 2, 18, 1),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_mix", [False, True])
def test_native_matches_reference(backend, rng, shape, with_mix):
    in_dim, hidden, layers, n_styles, style_dim = shape
    weights = MappingWeights.random(in_dim, hidden, layers, n_styles, style_dim, seed=int(rng.integers(1 << 30)))
    for batch in (1, 3, 70):
        x = randn(rng, batch, in_dim)
        mix = randn(rng, batch, n_styles, style_dim) if with_mix else None
        alpha = rng.uniform(0, 1, n_styles).astype(np.float32) if with_mix else None
        got = map_latent(x, weights, mix=mix, alpha=alpha, backend=backend)
        assert got.dtype == np.float32 and got.shape == (batch, n_styles, style_dim)
        expected = _map_latent_ref(x, weights, mix=mix, alpha=alpha)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("slope", "gain"), [(0.0, 1.0), (0.01, 2.5), (1.0, 1.0)])
def test_slope_and_gain_reach_the_kernel(backend, rng, slope, gain):
    weights = MappingWeights.random(8, 16, 2, 2, 4, slope=slope, gain=gain)
    x = randn(rng, 4, 8)
    np.testing.assert_allclose(map_latent(x, weights, backend=backend), _map_latent_ref(x, weights), rtol=1e-5, atol=1e-5)


def test_alpha_one_keeps_the_second_code_and_zero_keeps_the_mapped_one(rng):
    weights = MappingWeights.random(8, 16, 2, 3, 4)
    x, mix = randn(rng, 2, 8), randn(rng, 2, 3, 4)
    out = map_latent(x, weights, mix=mix, alpha=np.array([1.0, 0.0, 1.0], np.float32))
    plain = map_latent(x, weights)
    np.testing.assert_array_equal(out[:, 0], mix[:, 0])
    np.testing.assert_allclose(out[:, 1], plain[:, 1], atol=1e-6)


@pytest.mark.parametrize("with_mix", [False, True])
def test_torch_twin_matches_reference(rng, with_mix):
    torch = pytest.importorskip("torch")
    weights = MappingWeights.random(12, 20, 3, 4, 6)
    x = randn(rng, 5, 12)
    mix = randn(rng, 5, 4, 6) if with_mix else None
    alpha = np.linspace(0, 1, 4).astype(np.float32) if with_mix else None
    expected = _map_latent_ref(x, weights, mix=mix, alpha=alpha)
    got = map_latent_torch(torch.from_numpy(x), weights, mix=None if mix is None else torch.from_numpy(mix), alpha=alpha)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5, atol=1e-5)
    module = torch_mapping(weights)
    assert sum(p.numel() for p in module.parameters()) == sum(a.size for a in weights.weights + weights.biases) + (
        weights.style_weight.size + weights.style_bias.size
    )


def test_weights_are_private_read_only_copies(rng):
    w = [randn(rng, 4, 3)]
    weights = MappingWeights(tuple(w), (randn(rng, 4),), randn(rng, 2, 5, 4), randn(rng, 2, 5))
    w[0][:] = 0
    assert weights.weights[0].any() and not weights.weights[0].flags.writeable
    assert "MappingWeights(dims=[3, 4], n_styles=2, style_dim=5" in repr(weights)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"biases": ()}, ValueError, r"biases: expected one bias per weight \(1\), got 0"),
        ({"style_weight": np.zeros((2, 5, 3), np.float32)}, ValueError, "style_weight: expected out_dim of the last layer = 4"),
        ({"style_bias": np.zeros((2, 4), np.float32)}, ValueError, "style_bias: expected style_dim of style_weight = 5"),
        ({"weights": (np.zeros((4, 3), np.float64),)}, TypeError, r"weights\[0\]: expected dtype float32, got float64"),
        ({"weights": (np.full((4, 3), np.nan, np.float32),)}, ValueError, r"weights\[0\]: expected finite values"),
        ({"gain": math.inf}, ValueError, "gain: expected a finite number"),
        ({"slope": "0.2"}, ValueError, "slope: expected a finite number"),
    ],
)
def test_bad_weights_are_rejected_when_built(rng, change, error, match):
    fields = {
        "weights": (randn(rng, 4, 3),),
        "biases": (randn(rng, 4),),
        "style_weight": randn(rng, 2, 5, 4),
        "style_bias": randn(rng, 2, 5),
    }
    with pytest.raises(error, match=match):
        MappingWeights(**(fields | change))


def test_mix_without_alpha_is_rejected(rng):
    weights = MappingWeights.random(8, 16, 1, 2, 4)
    with pytest.raises(ValueError, match="mix, alpha: expected both or neither, got only mix"):
        map_latent(randn(rng, 1, 8), weights, mix=randn(rng, 1, 2, 4))
    with pytest.raises(ValueError, match="mix: expected batch of x = 1 on axis 0"):
        map_latent(randn(rng, 1, 8), weights, mix=randn(rng, 2, 2, 4), alpha=np.ones(2, np.float32))
