"""Protected templates against plain ones on dev faces: the same scores, the same decisions.

For each of LIMIT dev identities with two photos: the first photo's aligned crop is
anonymized with a key of the person's own, the second photo enrolled (plain template, and
protected under that key). Every virtual face is then scored against every person's
template: plain = recovered with *that person's* key and scored against their plain template
(what a service holding keys and plain templates computes), protected = the code read from
the face against their protected template (no key). Genuine = a person's own pair.

    python tools/protected_templates.py --limit 200      # ~20 s on 2 cores

Prints the largest score difference, the share of equal accept decisions at the
Authenticator's threshold, and genuine / impostor acceptance.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np

from kfaar import Anonymizer, Authenticator, Key
from kfaar.data import load_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=200, help="identities (with two photos) of the dev split")
    ap.add_argument("--cache", default=None, help="prepared LFW cache (kfaar data prepare); default: the repo's")
    args = ap.parse_args()
    d = load_split(args.cache or Path(__file__).resolve().parents[1] / "cache" / "lfw", "dev")
    photos: dict[int, list[int]] = {}
    for i, label in enumerate(d.label_ids):
        photos.setdefault(int(label), []).append(i)
    pairs = [(v[0], v[1]) for v in photos.values() if len(v) >= 2][: args.limit]
    probe, gallery = (np.array(p) for p in zip(*pairs))
    keys = [Key.from_bytes(hashlib.sha256(f"protected-templates/{i}".encode()).digest()) for i in range(len(pairs))]
    t0 = time.perf_counter()
    with Anonymizer() as anon, Authenticator() as auth:
        engine = auth._engine  # crops in, raw reads out: the photo-level API realigns first
        templates = auth.enroll_crops(d.crops[gallery])
        reads = np.concatenate([engine.read(anon.anonymize_crops(d.crops[[p]], k, d.crop_landmarks[[p]]))
                                for p, k in zip(probe, keys)])
        protected = np.stack([auth.protect(t, k).code for t, k in zip(templates, keys)])
        plain = np.stack([auth.scores(engine.codes.from_read(reads, k), t[None])[:, 0]
                          for t, k in zip(templates, keys)], axis=1)  # (virtual face, account)
        prot = engine.code_scores(reads, protected)
        thr = auth.threshold
    n = len(pairs)
    off = ~np.eye(n, dtype=bool)
    print(f"{n} identities, {n * (n - 1)} impostor pairs ({time.perf_counter() - t0:.0f} s)")
    print(f"max |protected - plain| score {np.abs(prot - plain).max():.2e}; "
          f"same decision at {thr:.4f}: {np.mean((prot >= thr) == (plain >= thr)):.4%}")
    print(f"genuine accepted {np.mean(np.diag(prot) >= thr):.2%}; impostor accepted {np.mean(prot[off] >= thr):.3%}")


if __name__ == "__main__":
    main()
