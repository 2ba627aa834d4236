"""Keyed orthogonal matrices for the whitened identity code.

Inference uses the keyed-projection kernel's own transform (``kfaar.ops.projection``) —
the same sign-flip / Walsh–Hadamard / permutation rounds the C++ kernel runs — through
:func:`key_matrix`. Training only needs *many* such matrices, so :class:`KeyPool` builds a
pool from seeded key bytes once and indexes it per sample.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from kfaar.keys import Key

log = logging.getLogger(__name__)

DIM = 128
ROUNDS = 4


def _fwht_matrix(d: int) -> np.ndarray:
    h = np.array([[1.0]])
    while h.shape[0] < d:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(d)


def _structured_matrix(key: Key, dim: int = DIM, rounds: int = ROUNDS) -> np.ndarray:
    """Stand-in with the kernel's structure (rounds of signs -> FWHT -> permutation), from HKDF bytes.

    Used only while ``kfaar.ops.projection`` is not importable (e.g. before the kernels land);
    it is *not* the shipped transform, and :func:`key_matrix` says so in the log.
    """
    h = _fwht_matrix(dim)
    q = np.eye(dim)
    rng = np.random.default_rng(np.frombuffer(key.derive("kfaar/v1/train-standin-projection", 32), np.uint32))
    for _ in range(rounds):
        signs = rng.choice([-1.0, 1.0], dim)
        perm = rng.permutation(dim)
        q = (h @ (signs[:, None] * q))[perm]
    return q


def key_matrix(key: Key, dim: int = DIM, rounds: int = ROUNDS) -> np.ndarray:
    """Q_K (dim, dim) float64 orthogonal: the keyed projection as a dense matrix."""
    try:
        from kfaar.ops.projection import ProjectionParams
    except ImportError:
        log.warning("kfaar.ops.projection unavailable: using the structured stand-in transform")
        return _structured_matrix(key, dim, rounds)
    return np.asarray(ProjectionParams.from_key(key, dim=dim, rounds=rounds).as_matrix(), np.float64)


class KeyPool:
    """``size`` keys' matrices from a seeded generator: random keys per sample, reproducibly."""

    def __init__(self, size: int, seed: int, dim: int = DIM):
        rng = np.random.default_rng(seed)
        mats = [key_matrix(Key.from_bytes(rng.bytes(32)), dim) for _ in range(size)]
        self.matrices = torch.from_numpy(np.stack(mats)).float()  # (size, d, d)

    def __len__(self) -> int:
        return self.matrices.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n,) indices into the pool."""
        return torch.randint(len(self), (n,), generator=generator)
