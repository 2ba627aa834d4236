"""Keyed projection: a key-derived structured orthogonal transform of identity embeddings.

``Q = (P_R · H · S_R) ··· (P_1 · H · S_1)`` on R^d (d a power of two): per round, key-derived
sign flips ``S_r``, the normalised Walsh-Hadamard transform ``H = H_d / sqrt(d)`` and a
key-derived permutation ``P_r``. O(d log d), orthogonal (norms are kept) and exactly
invertible with the key. An optional :class:`Whitening` affine wraps it so that projected
embeddings keep the mean and covariance of real ones:

    forward   z' = mean + color · Q  · whiten · (z  - mean)
    inverse   z  = mean + color · Qᵀ · whiten · (z' - mean)      (color = whiten⁻¹)

Parameters come from the key (:meth:`ProjectionParams.from_key`); the kernel itself is the
C++/CUDA ``projection`` op of ``kfaar._C``, chosen by :mod:`kfaar.ops._dispatch`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kfaar.ops import _checks, _dispatch

if TYPE_CHECKING:
    import torch

    from kfaar.keys import Key

CONTEXT = "kfaar/v1/projection"  # HKDF info label of the projection subkey; part of the v1 format
DEFAULT_DIM = 128
DEFAULT_ROUNDS = 4
MIN_KEYED_ROUNDS = 3  # fewer rounds of sign+WHT+permutation leave visible structure
MAX_DIM = 65536

__all__ = [
    "CONTEXT",
    "ProjectionParams",
    "Whitening",
    "project",
    "project_torch",
]


class _Keystream:
    """ChaCha20 keystream bytes, read in order.

    The nonce is all zero (16 bytes: 32-bit block counter 0, 96-bit nonce 0). That is safe
    only because every key is used for exactly one stream: the subkey is HKDF-derived for
    this one purpose (:data:`CONTEXT`) and its stream is read once, from the start.
    """

    _CHUNK = 1024

    def __init__(self, seed: bytes):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

        self._encryptor = Cipher(algorithms.ChaCha20(seed, b"\0" * 16), mode=None).encryptor()
        self._buffer = b""
        self._pos = 0

    def read(self, n: int) -> bytes:
        while len(self._buffer) - self._pos < n:
            self._buffer = self._buffer[self._pos :] + self._encryptor.update(b"\0" * self._CHUNK)
            self._pos = 0
        out = self._buffer[self._pos : self._pos + n]
        self._pos += n
        return out

    def words(self, n: int) -> list[int]:
        """The next ``n`` little-endian uint32 words."""
        return np.frombuffer(self.read(4 * n), "<u4").tolist()

    def permutation(self, n: int) -> list[int]:
        """Fisher-Yates shuffle of 0..n-1: for i = n-1 down to 1, swap i with j uniform in [0, i],
        each j from one uint32 word, rejection-sampled (no modulo bias). Words are consumed in
        stream order; reading the n-1 words of the common case at once changes nothing."""
        perm = list(range(n))
        words = self.words(n - 1)
        pos = 0
        for i in range(n - 1, 0, -1):
            bound = i + 1
            limit = (1 << 32) - (1 << 32) % bound
            while True:
                word = words[pos] if pos < len(words) else self.words(1)[0]  # past n-1 only after a rejection
                pos += 1
                if word < limit:
                    break
            j = word % bound
            perm[i], perm[j] = perm[j], perm[i]
        return perm


def _check_shape_args(dim: object, rounds: object, min_rounds: int) -> None:
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim: expected an int, got {type(dim).__name__}")
    if not _checks.is_power_of_two(int(dim)) or dim > MAX_DIM:
        raise ValueError(f"dim: expected a power of two from 2 to {MAX_DIM} (e.g. 128), got {dim}")
    if isinstance(rounds, bool) or not isinstance(rounds, (int, np.integer)):
        raise TypeError(f"rounds: expected an int, got {type(rounds).__name__}")
    if not min_rounds <= rounds <= 64:
        raise ValueError(f"rounds: expected {min_rounds} to 64, got {rounds}")


@dataclass(frozen=True, eq=False, repr=False)
class ProjectionParams:
    """The per-round signs and permutations of one key's projection. Derived key material:
    ``repr`` shows only the sizes, and the arrays are private read-only copies."""

    signs: np.ndarray  # (rounds, dim) float32, each +1 or -1
    perms: np.ndarray  # (rounds, dim) int32; round r ends with y[i] = x[perms[r, i]]

    def __post_init__(self) -> None:
        signs = _checks.checked(self.signs, "signs", 2, "(rounds, dim)")
        perms = _checks.checked(self.perms, "perms", 2, "(rounds, dim)", dtype=np.int32)
        _check_shape_args(signs.shape[1], signs.shape[0], 1)
        _checks.check_axis(perms, "perms", 0, signs.shape[0], "rounds of signs")
        _checks.check_axis(perms, "perms", 1, signs.shape[1], "dim of signs")
        if not np.all(np.abs(signs) == 1.0):
            raise ValueError("signs: expected every value to be +1 or -1")
        expected = np.arange(signs.shape[1])
        for r, row in enumerate(perms):
            if not np.array_equal(np.sort(row), expected):
                raise ValueError(f"perms: expected each row to be a permutation of 0..{signs.shape[1] - 1}, row {r} is not")
        object.__setattr__(self, "signs", _checks.readonly(signs))
        object.__setattr__(self, "perms", _checks.readonly(perms))

    @property
    def dim(self) -> int:
        return int(self.signs.shape[1])

    @property
    def rounds(self) -> int:
        return int(self.signs.shape[0])

    def __repr__(self) -> str:
        return f"ProjectionParams(dim={self.dim}, rounds={self.rounds})"

    @classmethod
    def from_key(cls, key: Key, dim: int = DEFAULT_DIM, rounds: int = DEFAULT_ROUNDS) -> ProjectionParams:
        """The parameters of ``key``: its HKDF subkey for :data:`CONTEXT` seeds :meth:`from_seed`."""
        _check_shape_args(dim, rounds, MIN_KEYED_ROUNDS)
        return cls.from_seed(key.derive(CONTEXT), dim=dim, rounds=rounds)

    @classmethod
    def from_seed(cls, seed: bytes, dim: int = DEFAULT_DIM, rounds: int = DEFAULT_ROUNDS) -> ProjectionParams:
        """Parameters from a 32-byte seed (the key's projection subkey), through ChaCha20.

        The keystream is consumed round by round: ceil(dim/8) bytes of sign bits (bit i of
        byte i//8, least significant first; a set bit flips the sign), then a Fisher-Yates
        shuffle of 0..dim-1 (for i = dim-1 down to 1, swap i with j uniform in [0, i]).
        This order is the v1 format: tests/vectors/projection_v1.json pins it.
        """
        if not isinstance(seed, (bytes, bytearray)) or len(seed) != 32:
            got = f"{len(seed)} bytes" if isinstance(seed, (bytes, bytearray)) else type(seed).__name__
            raise ValueError(f"seed: expected 32 bytes, got {got}")
        _check_shape_args(dim, rounds, 1)
        stream = _Keystream(bytes(seed))
        signs = np.empty((rounds, dim), np.float32)
        perms = np.empty((rounds, dim), np.int32)
        for r in range(rounds):
            bits = np.unpackbits(np.frombuffer(stream.read((dim + 7) // 8), np.uint8), bitorder="little")[:dim]
            signs[r] = 1.0 - 2.0 * bits
            perms[r] = stream.permutation(dim)
        return cls(signs, perms)

    def as_matrix(self, *, inverse: bool = False) -> np.ndarray:
        """Q (or Qᵀ = Q⁻¹) as a dense (dim, dim) float64 orthogonal matrix: ``z' = Q @ z``.

        For training code that wants a plain matmul (e.g. ``torch.from_numpy(q)``)."""
        q = _project_ref(np.eye(self.dim), self, inverse=False).T  # column j = Q e_j
        return q.T.copy() if inverse else q


@dataclass(frozen=True, eq=False, repr=False)
class Whitening:
    """The affine around Q: centre on ``mean``, whiten with ``whiten`` = C^{-1/2}, colour with
    ``color`` = C^{1/2} = whiten⁻¹ (checked), so projected embeddings keep the statistics of
    real ones. Build one with :meth:`from_covariance` or :meth:`from_samples`."""

    mean: np.ndarray  # (dim,) float32
    whiten: np.ndarray  # (dim, dim) float32
    color: np.ndarray  # (dim, dim) float32, the inverse of whiten

    def __post_init__(self) -> None:
        mean = _checks.checked(self.mean, "mean", 1, "(dim,)")
        whiten = _checks.checked(self.whiten, "whiten", 2, "(dim, dim)")
        color = _checks.checked(self.color, "color", 2, "(dim, dim)")
        d = mean.shape[0]
        for name, m in (("whiten", whiten), ("color", color)):
            _checks.check_axis(m, name, 0, d, "dim of mean")
            _checks.check_axis(m, name, 1, d, "dim of mean")
        for name, a in (("mean", mean), ("whiten", whiten), ("color", color)):
            _checks.check_finite(a, name)
        err = np.abs(color.astype(np.float64) @ whiten.astype(np.float64) - np.eye(d)).max()
        if err > 1e-3:
            raise ValueError(f"color: expected the inverse of whiten (|color·whiten - I| <= 1e-3), got {err:.3g}")
        for name, a in (("mean", mean), ("whiten", whiten), ("color", color)):
            object.__setattr__(self, name, _checks.readonly(a))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def __repr__(self) -> str:
        return f"Whitening(dim={self.dim})"

    @classmethod
    def from_covariance(cls, mean: np.ndarray, cov: np.ndarray, *, eps: float = 1e-6) -> Whitening:
        """Symmetric C^{∓1/2} of ``cov`` (eigenvalues floored at ``eps`` times the largest)."""
        cov = np.asarray(cov, np.float64)
        vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
        vals = np.maximum(vals, eps * max(vals.max(), 1e-30))
        whiten = (vecs / np.sqrt(vals)) @ vecs.T
        color = (vecs * np.sqrt(vals)) @ vecs.T
        return cls(np.asarray(mean, np.float32), whiten.astype(np.float32), color.astype(np.float32))

    @classmethod
    def from_samples(cls, z: np.ndarray, *, eps: float = 1e-6) -> Whitening:
        """Mean and covariance of real embeddings ``z`` (n, dim), n > dim recommended."""
        z = np.asarray(z, np.float64)
        if z.ndim != 2 or z.shape[0] < 2:
            raise ValueError(f"z: expected (n, dim) embeddings with n >= 2, got shape {z.shape}")
        return cls.from_covariance(z.mean(axis=0), np.cov(z, rowvar=False), eps=eps)


def _check_call(z: object, params: object, whitening: object) -> np.ndarray:
    if not isinstance(params, ProjectionParams):
        raise TypeError(f"params: expected ProjectionParams, got {type(params).__name__}")
    z = _checks.checked(z, "z", 2, "(batch, dim)")
    _checks.check_axis(z, "z", 1, params.dim, "dim of params")
    if whitening is not None:
        if not isinstance(whitening, Whitening):
            raise TypeError(f"whitening: expected Whitening or None, got {type(whitening).__name__}")
        if whitening.dim != params.dim:
            raise ValueError(f"whitening: expected dim = {params.dim} (dim of params), got {whitening.dim}")
    return z


def project(
    z: np.ndarray,
    params: ProjectionParams,
    *,
    inverse: bool = False,
    whitening: Whitening | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Project (or with ``inverse=True`` un-project) embeddings ``z`` (batch, dim) float32.

    Returns a new (batch, dim) float32 array. ``backend`` forces ``cuda``/``cpu``/``ref``
    (default: ``KFAAR_KERNELS``, else the best available)."""
    z = _check_call(z, params, whitening)
    chosen = _dispatch.resolve("projection", backend)
    if chosen == "ref":
        _checks.check_finite(z, "z")  # the native kernels check this themselves
        return np.ascontiguousarray(_project_ref(z, params, inverse=inverse, whitening=whitening), np.float32)
    kernel = _dispatch.native_kernel("projection", chosen)
    if whitening is None:  # positional: keyword parsing is a third of a batch-1 call
        return kernel(z, params.signs, params.perms, bool(inverse))
    return kernel(z, params.signs, params.perms, bool(inverse), whitening.mean, whitening.whiten, whitening.color)


def _fwht_ref(x: np.ndarray) -> np.ndarray:
    """Normalised Walsh-Hadamard transform along the last axis."""
    *lead, d = x.shape
    h = 1
    while h < d:
        y = x.reshape(*lead, d // (2 * h), 2, h)
        x = np.stack((y[..., 0, :] + y[..., 1, :], y[..., 0, :] - y[..., 1, :]), axis=-2).reshape(*lead, d)
        h *= 2
    return x / math.sqrt(d)


def _project_ref(
    z: np.ndarray, params: ProjectionParams, *, inverse: bool = False, whitening: Whitening | None = None
) -> np.ndarray:
    """Reference twin of the kernel, in float64 numpy; returns float64."""
    x = np.asarray(z, np.float64)
    if whitening is not None:
        mean = whitening.mean.astype(np.float64)
        x = (x - mean) @ whitening.whiten.astype(np.float64).T
    signs = params.signs.astype(np.float64)
    if not inverse:
        for r in range(params.rounds):
            x = _fwht_ref(x * signs[r])[..., params.perms[r]]
    else:
        for r in reversed(range(params.rounds)):
            y = np.empty_like(x)
            y[..., params.perms[r]] = x
            x = _fwht_ref(y) * signs[r]
    if whitening is not None:
        x = x @ whitening.color.astype(np.float64).T + mean
    return x


def project_torch(
    z: torch.Tensor, params: ProjectionParams, *, inverse: bool = False, whitening: Whitening | None = None
) -> torch.Tensor:
    """Torch twin of :func:`project` for training: differentiable in ``z`` (..., dim), any
    float dtype and device. Imports torch on first use (a training-only dependency)."""
    import torch

    if not isinstance(params, ProjectionParams):
        raise TypeError(f"params: expected ProjectionParams, got {type(params).__name__}")
    if not isinstance(z, torch.Tensor) or z.shape[-1:] != (params.dim,):
        got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"z: expected a torch tensor (..., {params.dim}), got {got}")
    opts = {"dtype": z.dtype, "device": z.device}
    signs = torch.tensor(params.signs, **opts)
    perms = torch.tensor(params.perms.astype(np.int64), device=z.device)
    x = z
    if whitening is not None:
        mean = torch.tensor(whitening.mean, **opts)
        x = (x - mean) @ torch.tensor(whitening.whiten, **opts).T
    if not inverse:
        for r in range(params.rounds):
            x = _fwht_torch(x * signs[r])[..., perms[r]]
    else:
        for r in reversed(range(params.rounds)):
            x = _fwht_torch(x[..., torch.argsort(perms[r])]) * signs[r]
    if whitening is not None:
        x = x @ torch.tensor(whitening.color, **opts).T + mean
    return x


def _fwht_torch(x: torch.Tensor) -> torch.Tensor:
    import torch

    *lead, d = x.shape
    h = 1
    while h < d:
        a, b = x.reshape(*lead, d // (2 * h), 2, h).unbind(-2)
        x = torch.stack((a + b, a - b), dim=-2).reshape(*lead, d)
        h *= 2
    return x * (1.0 / math.sqrt(d))
