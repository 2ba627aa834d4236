"""The numpy side of inference: identity codes, keyed projection and mapping through our kernels.

The same arithmetic as :class:`kfaar.models.engine.KfaarEngine` (tests hold them together),
on arrays read from ``params.safetensors`` — no torch. This is where the key acts, so it
never becomes part of a graph file:

    u  = whiten (z - mean)                       to_code
    u' = whiten (P_K(z) - mean)                  keyed_code   (projection kernel with the Whitening affine)
    W+ = M(u' / rms(u'))                         w_plus       (fused mapping kernel)
    ẑ  = P_K^-1(mean + color · radius · û')      from_read    (inverse projection kernel)

A protected template is u' itself, made unit (``protected_code``): since whiten · color = 1,
u' = R_K whiten (z - mean) with R_K orthogonal, so cos(û', u'_t) is exactly the score of ẑ
against the plain template t, without the inverse projection (``code_scores``).
"""

from __future__ import annotations

import numpy as np

from kfaar.keys import Key
from kfaar.ops.mapping import MappingWeights, map_latent
from kfaar.ops.projection import ProjectionParams, Whitening, project
from kfaar.templates import space_id

# params.safetensors tensor names
SPACE = ("space.mean", "space.whiten", "space.color", "space.radius")
PASTE_MASK = "paste_mask"


class IdentityCodes:
    """Identity space (mean, whiten, color, radius) and mapping weights, as read-only float32 arrays."""

    def __init__(self, params: dict[str, np.ndarray], n_layers: int):
        self.mean = params["space.mean"].astype(np.float32)  # (d,)
        self.whiten = params["space.whiten"].astype(np.float32)  # (d, d) C^-1/2
        self.color = params["space.color"].astype(np.float32)  # (d, d) C^1/2
        self.radius = float(np.asarray(params["space.radius"]).reshape(-1)[0])  # median |u| on train
        self.whitening = Whitening(self.mean, self.whiten, self.color)
        self.space = space_id(self.mean, self.whiten)  # names the space protected templates live in
        self.mapping = MappingWeights(
            tuple(params[f"mapping.layer{i}.weight"] for i in range(n_layers)),
            tuple(params[f"mapping.layer{i}.bias"] for i in range(n_layers)),
            params["mapping.style.weight"], params["mapping.style.bias"])

    @staticmethod
    def params(key: Key) -> ProjectionParams:
        if not isinstance(key, Key):
            raise TypeError(f"key: expected kfaar.Key, got {type(key).__name__}")
        return ProjectionParams.from_key(key)

    def to_code(self, z: np.ndarray) -> np.ndarray:
        return ((np.asarray(z, np.float32) - self.mean) @ self.whiten.T).astype(np.float32)

    def virtual_identity(self, z: np.ndarray, key: Key) -> np.ndarray:
        """(N, 128) SFace embeddings -> (N, 128) keyed virtual identities z'_K (SFace space, unit)."""
        zk = project(np.ascontiguousarray(z, np.float32), self.params(key), whitening=self.whitening)
        return zk / np.linalg.norm(zk, axis=1, keepdims=True)

    def keyed_code(self, z: np.ndarray, key: Key) -> np.ndarray:
        """(N, 128) SFace embeddings -> (N, 128) keyed whitened codes u' = whiten (z'_K - mean)."""
        zk = project(np.ascontiguousarray(z, np.float32), self.params(key), whitening=self.whitening)
        return np.ascontiguousarray((zk - self.mean) @ self.whiten.T, np.float32)

    def protected_code(self, z: np.ndarray, key: Key) -> np.ndarray:
        """(N, 128) SFace embeddings -> (N, 128) unit keyed codes u' / |u'| (protected templates)."""
        u = self.keyed_code(z, key)
        return np.ascontiguousarray(u / np.linalg.norm(u, axis=1, keepdims=True), np.float32)

    def w_plus(self, u: np.ndarray) -> np.ndarray:
        """(N, 128) keyed codes -> W+ (N, n_styles, style_dim) through the mapping kernel."""
        u = np.asarray(u, np.float32)
        pn = u / np.sqrt(np.mean(u * u, axis=1, keepdims=True) + 1e-8)  # the mapping's pixel-norm
        return map_latent(np.ascontiguousarray(pn, np.float32), self.mapping)

    def from_read(self, read: np.ndarray, key: Key) -> np.ndarray:
        """Reader output (N, 128) unit directions -> (N, 128) recovered SFace-space embeddings (not normalised)."""
        if len(read) == 0:  # the kernels refuse empty batches
            return np.zeros((0, self.mean.shape[0]), np.float32)
        u_k = np.asarray(read, np.float32) * self.radius
        zk = self.mean + u_k @ self.color.T  # a virtual-identity embedding z'_K
        return project(np.ascontiguousarray(zk, np.float32), self.params(key), inverse=True, whitening=self.whitening)

    def scores(self, probes: np.ndarray, templates: np.ndarray) -> np.ndarray:
        """(N, 128) x (M, 128) -> (N, M) cosine of centred, whitened embeddings."""
        from kfaar.ops.scoring import cosine_scores

        return cosine_scores(self.to_code(np.atleast_2d(probes)), self.to_code(np.atleast_2d(templates)))

    @staticmethod
    def code_scores(reads: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(N, 128) codes read from virtual faces x (M, 128) protected codes -> (N, M) cosines
        (equal to :meth:`scores` of the recovered embeddings against the plain templates)."""
        from kfaar.ops.scoring import cosine_scores

        return cosine_scores(np.atleast_2d(np.asarray(reads, np.float32)), np.atleast_2d(np.asarray(codes, np.float32)))


def check_offsets(offsets: np.ndarray | None, n: int) -> np.ndarray:
    """The generators' ``offsets`` argument -> (n,) float32, NaN where not given."""
    if offsets is None:
        return np.full(n, np.nan, np.float32)
    o = np.asarray(offsets, np.float32)
    if o.shape != (n,):
        raise ValueError(f"offsets: got shape {o.shape}, expected ({n},) (one nose offset per crop, NaN: unknown)")
    return np.ascontiguousarray(o)


class CodesMixin:
    """The code-space methods both engines expose, delegated to their ``self.codes`` (IdentityCodes)."""

    codes: IdentityCodes

    @staticmethod
    def params(key: Key) -> ProjectionParams:
        return IdentityCodes.params(key)

    def to_code(self, z: np.ndarray) -> np.ndarray:
        return self.codes.to_code(z)

    def virtual_identity(self, z: np.ndarray, key: Key) -> np.ndarray:
        """(N, 128) SFace embeddings -> (N, 128) keyed virtual identities z'_K (SFace space, unit)."""
        return self.codes.virtual_identity(z, key)

    def keyed_code(self, z: np.ndarray, key: Key) -> np.ndarray:
        """(N, 128) SFace embeddings -> (N, 128) keyed whitened codes u' = whiten (z'_K - mean)."""
        return self.codes.keyed_code(z, key)

    def protected_code(self, z: np.ndarray, key: Key) -> np.ndarray:
        """(N, 128) SFace embeddings -> (N, 128) unit keyed codes (protected templates)."""
        return self.codes.protected_code(z, key)

    @property
    def space(self) -> str:
        """The identity space's id (:func:`kfaar.templates.space_id`)."""
        return self.codes.space

    def w_plus(self, u: np.ndarray) -> np.ndarray:
        """(N, 128) keyed codes -> W+ (N, n_styles, style_dim) through the mapping kernel."""
        return self.codes.w_plus(u)

    def scores(self, probes: np.ndarray, templates: np.ndarray) -> np.ndarray:
        """(N, 128) x (M, 128) -> (N, M) cosine of centred, whitened embeddings."""
        return self.codes.scores(probes, templates)

    def code_scores(self, reads: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """(N, 128) codes read from virtual faces x (M, 128) protected codes -> (N, M) cosines."""
        return self.codes.code_scores(reads, codes)
