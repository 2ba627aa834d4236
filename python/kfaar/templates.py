"""Protected templates: what a relying party stores instead of a person's SFace template.

A plain template (:meth:`Authenticator.enroll`) is the SFace embedding z of the person's own
face: whoever holds it can look the person up in any photo collection indexed with SFace,
and it can never be changed. A protected template is the person's identity *in the key's
space*: the keyed, whitened code u' = P_K(whiten(z - mean)) that the anonymizer writes into
every virtual face made with that key. So it says no more than one of those virtual faces
already does: it matches the person's virtual faces under that key, and nothing else — not
their photos, not their virtual faces under another key (another service's subkey). A new
key revokes it. It is made on the device, where the key and the photo are:

>>> pt = auth.enroll_protected("genuine.jpg", key)        # or auth.protect(template, key)
>>> pt.save("alice.kft")                                  # the file the service keeps
>>> auth.verify(virtual, key, ProtectedTemplate.load("alice.kft"))   # key checked against pt
>>> auth.verify_protected(virtual, pt)                    # a service without the key

The scores are the plain template's: the projection is orthogonal in the whitened space the
scores are taken in, so cos(read, P_K u) = cos(P_K^-1 read, u) (tests hold them together).

File format (``.kft``, UTF-8 JSON): ``{"format": "kfaar-protected-template", "version": 1,
"key_fingerprint": "kfp-…", "space": "<16 hex>", "code": "<base64 of 128 little-endian
float32>"}``. ``space`` names the model's identity space (SHA-256 of its mean and whitening):
a template from another model's space cannot be scored and is refused, not misread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfaar.errors import TemplateMismatchError

__all__ = ["ProtectedTemplate", "TemplateMismatchError", "space_id"]

FORMAT = "kfaar-protected-template"
VERSION = 1
DIM = 128


def identity_vector(values, what: str) -> np.ndarray:
    """``values`` as a (128,) float64 array of finite numbers, not all zero — what a plain
    template, a keyed code or an embedding must be — or a ValueError naming ``what``. Read as
    float32 first (what is stored and scored), then widened so that its norm cannot overflow."""
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused below
        v = np.asarray(values, dtype=np.float32).astype(np.float64)
    if v.shape != (DIM,) or not np.all(np.isfinite(v)) or not np.linalg.norm(v) > 0:
        raise ValueError(f"{what}: expected ({DIM},) finite numbers, not all zero; got shape {v.shape}")
    return v


def space_id(mean: np.ndarray, whiten: np.ndarray) -> str:
    """The identity space a code lives in: 16 hex digits of SHA-256 over its float32 mean and whitening."""
    h = hashlib.sha256()
    for a in (mean, whiten):
        h.update(np.ascontiguousarray(a, "<f4").tobytes())
    return h.hexdigest()[:16]


@dataclass(frozen=True, repr=False, eq=False)
class ProtectedTemplate:
    """A person's identity under one key: (128,) unit float32 keyed code, the key's fingerprint
    (not secret) and the identity space's id. Make it with :meth:`Authenticator.enroll_protected`
    or :meth:`Authenticator.protect`; its ``code`` is read-only."""

    code: np.ndarray
    key_fingerprint: str
    space: str

    def __post_init__(self) -> None:
        c = identity_vector(self.code, "code")  # a private copy
        c = (c / np.linalg.norm(c)).astype(np.float32)
        c.setflags(write=False)
        object.__setattr__(self, "code", c)
        for name in ("key_fingerprint", "space"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"{name}: expected a non-empty str, got {getattr(self, name)!r}")

    def __repr__(self) -> str:
        return f"ProtectedTemplate(key_fingerprint={self.key_fingerprint!r}, space={self.space!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProtectedTemplate):
            return NotImplemented
        return (self.key_fingerprint, self.space) == (other.key_fingerprint, other.space) and bool(
            np.array_equal(self.code, other.code))

    __hash__ = None  # holds an array

    def check_key(self, key) -> None:
        """Raise :class:`TemplateMismatchError` unless ``key`` is the key this template was made with."""
        from kfaar.keys import Key

        if not isinstance(key, Key):
            raise TypeError(f"key: expected kfaar.Key, got {type(key).__name__}")
        if key.fingerprint != self.key_fingerprint:
            raise TemplateMismatchError(
                f"template: made with key {self.key_fingerprint}, not with this key ({key.fingerprint})")

    # -- files --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        code = base64.b64encode(self.code.astype("<f4").tobytes()).decode("ascii")
        doc = {"format": FORMAT, "version": VERSION, "key_fingerprint": self.key_fingerprint,
               "space": self.space, "code": code}
        return (json.dumps(doc, indent=1) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes, *, name: str = "data") -> ProtectedTemplate:
        """Parse :meth:`to_bytes`' output; anything else raises ValueError naming ``name``."""
        what = f"{name} is not a kfaar protected template"
        try:
            doc = json.loads(bytes(data).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:  # RecursionError: "[[[[..."
            raise ValueError(f"{what}: {e}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError(f"{what} (no \"format\": \"{FORMAT}\")")
        if doc.get("version") != VERSION:
            raise ValueError(f"{what} this kfaar reads: version {doc.get('version')!r}, expected {VERSION}")
        try:
            raw = base64.b64decode(doc["code"], validate=True)
            if len(raw) != 4 * DIM:
                raise ValueError(f"its code has {len(raw)} bytes, expected {4 * DIM}")
            return cls(np.frombuffer(raw, "<f4"), doc["key_fingerprint"], doc["space"])
        except (KeyError, TypeError, ValueError, binascii.Error) as e:
            raise ValueError(f"{what}: {e}") from None

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the template to ``path`` (mode 0600, written whole, then renamed into place)."""
        from kfaar.keys import write_private

        path = Path(path)
        write_private(path, self.to_bytes(), overwrite=overwrite, what="template file")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ProtectedTemplate:
        path = Path(path)
        with open(path, "rb") as fh:
            data = fh.read(64 * 1024 + 1)  # a template is ~1 KB; never read a huge file whole
        if len(data) > 64 * 1024:
            raise ValueError(f"{path} is not a kfaar protected template: over 64 KB")
        return cls.from_bytes(data, name=str(path))
