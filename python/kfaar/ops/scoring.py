"""Batched template scoring: cosine similarity of probe embeddings against enrolled templates.

    out[i, j] = <p_i, t_j> / (max(|p_i|, 1e-12) · max(|t_j|, 1e-12))

A zero vector scores 0 against everything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from kfaar.ops import _checks, _dispatch

if TYPE_CHECKING:
    import torch

__all__ = ["cosine_scores", "cosine_scores_torch"]

_EPS = 1e-12


def _check_call(probes: object, templates: object) -> tuple[np.ndarray, np.ndarray]:
    probes = _checks.checked(probes, "probes", 2, "(n_probes, dim)")
    templates = _checks.checked(templates, "templates", 2, "(n_templates, dim)")
    _checks.check_axis(templates, "templates", 1, probes.shape[1], "dim of probes")
    return probes, templates


def cosine_scores(probes: np.ndarray, templates: np.ndarray, *, backend: str | None = None) -> np.ndarray:
    """Cosine similarities (n_probes, n_templates) float32 of float32 ``probes`` (n_probes, dim)
    against ``templates`` (n_templates, dim)."""
    probes, templates = _check_call(probes, templates)
    chosen = _dispatch.resolve("scoring", backend)
    if chosen == "ref":
        _checks.check_finite(probes, "probes")  # the native kernels check these themselves
        _checks.check_finite(templates, "templates")
        return np.ascontiguousarray(_cosine_scores_ref(probes, templates), np.float32)
    return _dispatch.native_kernel("scoring", chosen)(probes, templates)


def _cosine_scores_ref(probes: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Reference twin of the kernel, in float64 numpy; returns float64."""
    p = np.asarray(probes, np.float64)
    t = np.asarray(templates, np.float64)
    pn = np.maximum(np.linalg.norm(p, axis=1), _EPS)
    tn = np.maximum(np.linalg.norm(t, axis=1), _EPS)
    return (p @ t.T) / pn[:, None] / tn[None, :]


def cosine_scores_torch(probes: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`cosine_scores` (differentiable)."""
    import torch.nn.functional as F

    return F.normalize(probes, dim=1, eps=_EPS) @ F.normalize(templates, dim=1, eps=_EPS).T
