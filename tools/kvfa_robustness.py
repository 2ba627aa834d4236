"""How KVFA holds up when a virtual photo is re-encoded or rescaled, through the public API.

For each of LIMIT dev identities (``kfaar eval``'s seed-0 draw): its first photo is
anonymized with a key of its own; the virtual photo is then passed through each edit below
and recovered with that key (and with a wrong key), and scored against templates enrolled
from the same photo and from the person's second photo, at the Authenticator's threshold.

    python tools/kvfa_robustness.py --limit 100      # ~5 min on 2 cores
    python tools/kvfa_robustness.py --model B.safetensors --model-sha256 HEX   # a candidate bundle (torch)

Prints one line per edit: TAR (same photo, other photo) and wrong-key acceptance, and the
code carrier's pilot match of the right-key reads (``Authenticator.recover_result``). Then
what faces *without* a code get when presented with the person's key: the person's own second
photo, another person's photo (each as it is and as a JPEG q75), and the virtual photo made
greyscale (its chroma code gone): acceptance at the threshold, without a code gate and with
the Authenticator's ``min_code_match`` at each of GATES.
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


def jpeg444(rgb: np.ndarray, quality: int) -> np.ndarray:
    """As ``kfaar anonymize --format jpeg --jpeg-quality Q`` writes it (Pillow, 4:4:4) and it reads back."""
    import io

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality, subsampling=0)
    return np.asarray(Image.open(buf).convert("RGB"))


EDITS = {
    "png (lossless)": lambda a: a,
    "--format jpeg (q95)": lambda a: jpeg444(a, 95),
    "--format jpeg, q85": lambda a: jpeg444(a, 85),
    "--format jpeg, q75": lambda a: jpeg444(a, 75),
    "jpeg q95": lambda a: jpeg_roundtrip(a, 95),
    "jpeg q85": lambda a: jpeg_roundtrip(a, 85),
    "jpeg q75": lambda a: jpeg_roundtrip(a, 75),
    "jpeg q50": lambda a: jpeg_roundtrip(a, 50),
    "scale 0.75": lambda a: rescale(a, 0.75),
    "scale 0.5": lambda a: rescale(a, 0.5),
    "scale 0.75 + jpeg q85": lambda a: jpeg_roundtrip(rescale(a, 0.75), 85),
}


def _grey(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(np.asarray(Image.fromarray(rgb).convert("L"))[:, :, None], 3, axis=2)


# faces without a readable code: (the person's second photo, a stranger's photo, the virtual photo) -> photo
CODELESS = {
    "the person's own other photo": lambda second, stranger, virtual: second,
    "the person's own other photo, q75": lambda second, stranger, virtual: jpeg_roundtrip(second, 75),
    "a stranger's photo": lambda second, stranger, virtual: stranger,
    "a stranger's photo, q75": lambda second, stranger, virtual: jpeg_roundtrip(stranger, 75),
    "the virtual photo made grey": lambda second, stranger, virtual: _grey(virtual),
}
GATES = (0.75, 0.8, 0.85)


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
    scores = {e: ([], [], [], []) for e in EDITS}  # same photo, other photo, wrong key, pilot match
    codeless = {c: ([], []) for c in CODELESS}  # score against the person's template, pilot match
    t0 = time.time()
    people = sorted(photos.items())
    for k, (_, ph) in enumerate(people):
        key = Key.from_bytes(k.to_bytes(2, "little") + bytes(30))
        wrong = Key.from_bytes(k.to_bytes(2, "little") + b"\x01" + bytes(29))
        rgb = load_image(ph[0].path)
        second = load_image(ph[1].path)
        same, other = auth.enroll(rgb), auth.enroll(second)
        virtual = anonymizer.anonymize(rgb, key)
        for name, edit in EDITS.items():
            x = edit(virtual)
            try:
                r, ew = auth.recover_result(x, key), auth.recover_result(x, wrong).embedding
                s = (auth.score(r.embedding, same), auth.score(r.embedding, other), auth.score(ew, same), r.code_match)
            except kfaar.NoFaceFoundError:  # no face found again: a rejection
                s = (-1.0, -1.0, -1.0, 0.0)
            for lst, v in zip(scores[name], s):
                lst.append(v)
        stranger = load_image(people[(k + 1) % len(people)][1][0].path)  # the next person's first photo
        for name, make in CODELESS.items():
            try:
                r = auth.recover_result(make(second, stranger, virtual), key)
                s = (auth.score(r.embedding, same), r.code_match)
            except kfaar.NoFaceFoundError:
                s = (-1.0, 0.0)
            for lst, v in zip(codeless[name], s):
                lst.append(v)
    thr = auth.threshold
    print(f"{len(photos)} identities, threshold {thr:.4f}, {time.time() - t0:.0f} s")
    for name, (s, o, w, m) in scores.items():
        s, o, w, m = map(np.asarray, (s, o, w, m))
        print(f"{name:22s} TAR same photo {np.mean(s >= thr):6.1%}  other photo {np.mean(o >= thr):6.1%}  "
              f"wrong-key acceptance {np.mean(w >= thr):5.1%}  median score {np.median(s):.3f}  "
              f"pilot match min / p1 / p5 / median {m.min():.3f} / {np.percentile(m, 1):.3f} / "
              f"{np.percentile(m, 5):.3f} / {np.median(m):.3f}")
        gated = "  ".join(f">= {g:.2f}: TAR {np.mean((s >= thr) & (m >= g)):6.1%}" for g in GATES)
        print(f"{'':22s} with a code gate  {gated}")
    print("no code in the face, read with the person's key against their template:")
    for name, (s, m) in codeless.items():
        s, m = np.asarray(s), np.asarray(m)
        gated = "  ".join(f"{np.mean((s >= thr) & (m >= g)):5.1%}" for g in GATES)
        print(f"{name:36s} accepted {np.mean(s >= thr):5.1%} ({int(np.sum(s >= thr))} of {len(s)}), with a gate at "
              f"{' / '.join(f'{g:.2f}' for g in GATES)}: {gated}  pilot match median / p95 / p99 / max "
              f"{np.median(m):.3f} / {np.percentile(m, 95):.3f} / {np.percentile(m, 99):.3f} / {m.max():.3f}")


if __name__ == "__main__":
    main()
