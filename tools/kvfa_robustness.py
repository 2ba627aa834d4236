"""How KVFA holds up when a virtual photo is re-encoded or rescaled, through the public API.

For each of LIMIT dev identities (``kfaar eval``'s seed-0 draw): its first photo is
anonymized with a key of its own; the virtual photo is then passed through each edit below
and recovered with that key (and with a wrong key), and scored against templates enrolled
from the same photo and from the person's second photo, at the Authenticator's threshold.

    python tools/kvfa_robustness.py --limit 100      # ~5 min on 2 cores
    python tools/kvfa_robustness.py --model B.safetensors --model-sha256 HEX   # a candidate bundle (torch)

Prints one line per edit: TAR (same photo, other photo) and wrong-key acceptance.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from PIL import Image

import kfaar
from kfaar.eval.protocol import default_data_dir, load_eval_set
from kfaar.faces import load_image
from kfaar.faces.image import jpeg_roundtrip
from kfaar.keys import Key
from kfaar.pipeline import AnonymizerOptions, AuthenticatorOptions


def rescale(rgb: np.ndarray, s: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((round(w * s), round(h * s)), Image.BICUBIC))


EDITS = {
    "png (lossless)": lambda a: a,
    "jpeg q95": lambda a: jpeg_roundtrip(a, 95),
    "jpeg q85": lambda a: jpeg_roundtrip(a, 85),
    "jpeg q75": lambda a: jpeg_roundtrip(a, 75),
    "jpeg q50": lambda a: jpeg_roundtrip(a, 50),
    "scale 0.75": lambda a: rescale(a, 0.75),
    "scale 0.5": lambda a: rescale(a, 0.5),
    "scale 0.75 + jpeg q85": lambda a: jpeg_roundtrip(rescale(a, 0.75), 85),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=100, help="dev identities (default 100)")
    ap.add_argument("--model", default=None, help="a bundle (.safetensors) instead of the shipped model")
    ap.add_argument("--model-sha256", default=None,
                    help="the bundle's SHA-256, checked before loading (without it: loaded unverified, with a warning)")
    args = ap.parse_args()
    es = load_eval_set(default_data_dir(), "dev", limit=args.limit, seed=0)
    photos: dict[int, list] = {}
    for p in es.photos:
        photos.setdefault(p.identity, []).append(p)
    model = {"model": args.model, "model_sha256": args.model_sha256}
    anonymizer = kfaar.Anonymizer(AnonymizerOptions(**model))
    auth = kfaar.Authenticator(AuthenticatorOptions(**model))
    scores = {e: ([], [], []) for e in EDITS}  # same photo, other photo, wrong key
    t0 = time.time()
    for k, (_, ph) in enumerate(sorted(photos.items())):
        key = Key.from_bytes(k.to_bytes(2, "little") + bytes(30))
        wrong = Key.from_bytes(k.to_bytes(2, "little") + b"\x01" + bytes(29))
        rgb = load_image(ph[0].path)
        same, other = auth.enroll(rgb), auth.enroll(load_image(ph[1].path))
        virtual = anonymizer.anonymize(rgb, key)
        for name, edit in EDITS.items():
            x = edit(virtual)
            try:
                e, ew = auth.recover(x, key), auth.recover(x, wrong)
                s = (auth.score(e, same), auth.score(e, other), auth.score(ew, same))
            except kfaar.NoFaceFoundError:  # no face found again: a rejection
                s = (-1.0, -1.0, -1.0)
            for lst, v in zip(scores[name], s):
                lst.append(v)
    thr = auth.threshold
    print(f"{len(photos)} identities, threshold {thr:.4f}, {time.time() - t0:.0f} s")
    for name, (s, o, w) in scores.items():
        s, o, w = map(np.asarray, (s, o, w))
        print(f"{name:22s} TAR same photo {np.mean(s >= thr):6.1%}  other photo {np.mean(o >= thr):6.1%}  "
              f"wrong-key acceptance {np.mean(w >= thr):5.1%}  median score {np.median(s):.3f}")


if __name__ == "__main__":
    main()
