"""Batched template scoring: reference ≡ C++ ≡ CUDA, zero vectors, and the torch twin."""

from __future__ import annotations

import numpy as np
import pytest

from kfaar.ops import cosine_scores, cosine_scores_torch
from kfaar.ops.scoring import _cosine_scores_ref


@pytest.mark.parametrize(("n_probes", "n_templates", "dim"), [(1, 1, 1), (1, 1000, 128), (7, 9, 512), (33, 5, 3), (64, 130, 128)])
def test_native_matches_reference(backend, rng, n_probes, n_templates, dim):
    probes = rng.standard_normal((n_probes, dim)).astype(np.float32)
    templates = (3 * rng.standard_normal((n_templates, dim))).astype(np.float32)
    got = cosine_scores(probes, templates, backend=backend)
    assert got.dtype == np.float32 and got.shape == (n_probes, n_templates)
    np.testing.assert_allclose(got, _cosine_scores_ref(probes, templates), rtol=0, atol=1e-5)


def test_identical_vectors_score_one_and_zero_vectors_score_zero(backend, rng):
    t = rng.standard_normal((3, 16)).astype(np.float32)
    probes = np.concatenate([t, -t[:1], np.zeros((1, 16), np.float32)])
    got = cosine_scores(probes, t, backend=backend)
    np.testing.assert_allclose(np.diag(got[:3]), 1.0, atol=1e-6)
    np.testing.assert_allclose(got[3, 0], -1.0, atol=1e-6)
    np.testing.assert_array_equal(got[4], 0.0)


def test_torch_twin_matches_reference(rng):
    torch = pytest.importorskip("torch")
    p, t = rng.standard_normal((4, 32)), rng.standard_normal((6, 32))
    got = cosine_scores_torch(torch.from_numpy(p), torch.from_numpy(t)).numpy()
    np.testing.assert_allclose(got, _cosine_scores_ref(p, t), atol=1e-12)


def test_dims_must_agree(rng):
    with pytest.raises(ValueError, match=r"templates: expected dim of probes = 8 on axis 1, got shape \(2, 9\)"):
        cosine_scores(np.ones((1, 8), np.float32), np.ones((2, 9), np.float32))
