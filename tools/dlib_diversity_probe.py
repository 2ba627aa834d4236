"""Where dlib sees one person in two keys' virtual faces: the face interior or the shared rest.

For the first aligned crop of each of LIMIT dev identities (the faces cache), two keys'
virtual crops are made through ``Anonymizer.anonymize_crops`` (the detector's landmarks
feeding the pose warp, as in the pipeline) and judged by dlib (the independent judge of
``kfaar eval``; match if L2 < 0.6) in pairs:

- as is: the same photo under keys A and B (``kfaar eval``'s diversity, on crops);
- interior only: the same pair with everything outside the paste mask set to grey;
- other exteriors: the two virtual interiors pasted onto two other people's crops;
- original vs virtual, interior only: the input's own face against key A's;
- other person, other key, interior only: two unrelated virtual faces;
- two real people, interior only: two dev identities' own faces (the reference spread).

    python tools/dlib_diversity_probe.py --limit 150      # ~2 min on 2 cores, judges venv needed
    python tools/dlib_diversity_probe.py --model B.safetensors --model-sha256 HEX   # another bundle

Prints one line per pairing: faces found, share judged different people, median L2. With
``--keys K`` (K > 2) the photos are also rendered under K keys (A and B the first two) and
every pair of them judged: the share per key pair, and how many of a photo's K(K-1)/2 pairs
dlib calls one person, against the counts if every pair failed independently at the overall
rate (binomial) — whether the failures belong to some photos or fall anywhere.
"""

from __future__ import annotations

import argparse

import numpy as np

from crop_harness import dlib_distances, judged_different  # this folder's

from kfaar import Anonymizer
from kfaar.eval.judges import judge_crops
from kfaar.eval.properties import DLIB_THRESHOLD
from kfaar.keys import Key
from kfaar.pipeline import AnonymizerOptions
from kfaar.runtime.engine import load_engine
from kfaar.train.data import first_faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=150, help="dev identities (default 150)")
    ap.add_argument("--keys", type=int, default=2, help="keys per photo for the key-pair counts (default 2: none)")
    ap.add_argument("--model", help="a bundle (.safetensors) instead of the shipped model")
    ap.add_argument("--model-sha256", help="its SHA-256 (unpinned bundles load with a warning)")
    args = ap.parse_args()
    if not 2 <= args.keys <= 10:
        raise SystemExit(f"--keys: 2 to 10, got {args.keys}")

    try:
        faces = first_faces("dev", args.limit)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    crops, landmarks = faces.crops, faces.landmarks
    anonymizer = Anonymizer(AnonymizerOptions(model=args.model, model_sha256=args.model_sha256))
    mask = load_engine(args.model, args.model_sha256).paste_mask[None, :, :, None]
    virtual = [anonymizer.anonymize_crops(crops, Key.from_bytes(bytes([i + 1] * 32)), landmarks)
               for i in range(args.keys)]
    va, vb = virtual[:2]

    def onto(face: np.ndarray, rest: np.ndarray) -> np.ndarray:
        return (mask * face + (1 - mask) * rest).round().astype(np.uint8)

    grey = np.full_like(crops, 128)
    other, other2 = np.roll(np.arange(len(crops)), 1), np.roll(np.arange(len(crops)), 2)
    pairings = {
        "as is": (va, vb),
        "interior only": (onto(va, grey), onto(vb, grey)),
        "other exteriors": (onto(va, crops[other]), onto(vb, crops[other2])),
        "original vs virtual, interior only": (onto(crops, grey), onto(va, grey)),
        "other person, other key, interior": (onto(va, grey), onto(vb[other], grey)),
        "two real people, interior only": (onto(crops, grey), onto(crops[other], grey)),
    }
    extra = virtual[2:]  # keys C, D, ...: judged after the pairings
    emb = judge_crops(np.concatenate([im for pair in pairings.values() for im in pair] + extra)).dlib_emb
    n = len(crops)
    print(f"{n} dev identities, dlib match if L2 < {DLIB_THRESHOLD}")
    for p, name in enumerate(pairings):
        ea, eb = emb[2 * p * n:(2 * p + 1) * n], emb[(2 * p + 1) * n:(2 * p + 2) * n]
        d = dlib_distances(ea, eb)
        print(f"{name:36s} found {len(d):4d}/{n}  {judged_different(d)}")

    if args.keys > 2:
        after = 2 * len(pairings)  # the pairings' images come first, keys A and B as the first pair
        per_key = [emb[:n], emb[n:2 * n]] + [emb[(after + k) * n:(after + k + 1) * n] for k in range(len(extra))]
        key_pairs(per_key)


def key_pairs(per_key: list[np.ndarray]) -> None:
    """Print the share judged different per key pair and the per-photo count of pairs judged one person."""
    from itertools import combinations
    from math import comb

    pairs = list(combinations(range(len(per_key)), 2))
    d = np.stack([np.linalg.norm(per_key[a] - per_key[b], axis=1) for a, b in pairs], 1)
    d = d[np.isfinite(d).all(1)]
    same = d < DLIB_THRESHOLD
    names = "ABCDEFGHIJ"
    print(f"{len(per_key)} keys, {len(d)} photos found under every key: judged different {100 * (1 - same.mean()):.1f}%"
          f", median L2 {np.median(d):.3f}, 5th percentile {np.percentile(d, 5):.3f}")
    print("  per key pair: " + ", ".join(f"{names[a]}{names[b]} {100 * (1 - s):.1f}%"
                                        for (a, b), s in zip(pairs, same.mean(0))))
    m, p = len(pairs), same.mean()
    counts = np.bincount(same.sum(1), minlength=m + 1)
    expected = [comb(m, k) * p ** k * (1 - p) ** (m - k) * len(d) for k in range(m + 1)]
    print("  photos with k pairs judged one person, k = 0..%d: %s (binomial %s)"
          % (m, " ".join(map(str, counts)), " ".join(f"{e:.1f}" for e in expected)))


if __name__ == "__main__":
    main()
