"""The evaluation protocol: which photos, which keys, which pairs — all fixed by the seed.

Keys are derived from the seed and the identity name (not drawn in order), so a person's
keys do not change with ``--limit`` or with the set of methods, and two runs with the same
seed see the same photos, keys and pairs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfaar.keys import Key


def default_data_dir() -> Path:
    """The data folder holding ``lfw/`` (``$KFAAR_DATA`` or ``../shared/data``; see :mod:`kfaar.data.paths`)."""
    from kfaar.data.paths import default_data_dir as data_dir

    return Path(data_dir())


@dataclass(frozen=True)
class Photo:
    path: Path
    identity: int  # index into EvalSet.names
    b_key: bool  # also anonymized with the identity's second key (diversity, unlinkability)


@dataclass(frozen=True)
class EvalSet:
    """Photos of one split (or a seeded subset of its identities) and the pairs judged on them."""

    split: str
    names: tuple[str, ...]  # identity names, sorted
    photos: tuple[Photo, ...]  # grouped by identity, files in name order
    same_pairs: np.ndarray  # (P, 2) ordered (i, j), i != j, same identity, capped per identity
    seed: int

    @property
    def labels(self) -> np.ndarray:  # (N,) identity index per photo
        return np.array([p.identity for p in self.photos], dtype=np.int64)

    @property
    def b_index(self) -> np.ndarray:  # indices of the photos that also get key B
        return np.array([i for i, p in enumerate(self.photos) if p.b_key], dtype=np.int64)

    def counts(self) -> dict[str, int]:
        return {
            "identities": len(self.names),
            "images": len(self.photos),
            "images_with_second_key": int(self.b_index.size),
            "same_identity_pairs": int(len(self.same_pairs)),
        }


def load_eval_set(
    data_dir: Path,
    split: str = "dev",
    *,
    limit: int | None = None,
    seed: int = 0,
    b_photos_per_identity: int = 2,
    max_pairs_per_identity: int = 20,
) -> EvalSet:
    """Read ``<data>/lfw/splits.json`` and list the split's photos (identities with >= 2 images)."""
    lfw = Path(data_dir) / "lfw"
    splits_file = lfw / "splits.json"
    if not splits_file.exists():
        raise FileNotFoundError(
            f"no LFW splits at {splits_file}; pass --data DIR or set KFAAR_DATA to the folder holding lfw/"
        )
    splits = json.loads(splits_file.read_text())
    if split not in splits or split == "seed":
        valid = [k for k in splits if k != "seed"]
        raise ValueError(f"split: got {split!r}, valid splits are {valid}")
    rng = np.random.default_rng(seed)
    files = {n: sorted((lfw / n).glob(f"{n}_*.jpg")) for n in sorted(splits[split])}
    names = [n for n, f in files.items() if len(f) >= 2]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit: got {limit!r}, expected a number of identities >= 1")
        if limit < len(names):
            names = sorted(rng.choice(names, size=limit, replace=False).tolist())
    photos: list[Photo] = []
    pairs: list[np.ndarray] = []
    for k, name in enumerate(names):
        start = len(photos)
        photos += [Photo(f, k, j < b_photos_per_identity) for j, f in enumerate(files[name])]
        idx = np.arange(start, len(photos))
        ij = np.array([(a, b) for a in idx for b in idx if a != b], dtype=np.int64)
        if len(ij) > max_pairs_per_identity:
            ij = ij[np.sort(rng.choice(len(ij), max_pairs_per_identity, replace=False))]
        pairs.append(ij)
    same = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
    return EvalSet(split, tuple(names), tuple(photos), same, seed)


@dataclass(frozen=True)
class IdentityKeys:
    a: Key  # the person's key: every photo is anonymized with it
    b: Key  # a second key of the same person (diversity, unlinkability)
    wrong: Key  # a key that is not the person's (wrong-key rejection)


def identity_keys(name: str, seed: int) -> IdentityKeys:
    """Seeded keys for one identity: ``Key.from_bytes(sha256(label))``, reproducible by design."""

    def key(role: str) -> Key:
        return Key.from_bytes(hashlib.sha256(f"kfaar-eval|seed={seed}|{name}|{role}".encode()).digest())

    return IdentityKeys(key("a"), key("b"), key("wrong"))
