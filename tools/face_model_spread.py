"""How far apart dlib puts two real people once a K-component face model has rendered them.

kfaar-v2 draws its faces with a 256-component linear face model at 64 px. Two keys' faces of
one photo must be two people to dlib (issue 4's diversity), so the face model must at least
keep two *real* people apart. For the first aligned crop of LIMIT dev identities (the faces
cache), each face box is reconstructed from its first K principal components (the face model
refitted here on the train split, as ``kfaar train-eigen --mirror`` fits it: every train face
and its mirror image), rendered as the pipeline renders it without the refiner (2x bilinear,
pasted through kfaar-v2's mask onto grey), and each face is judged against the next dev
identity's (dlib, the independent judge of ``kfaar eval``; match if L2 < 0.6). Also the 64-px
pooling alone and some blurs, as references for resolution and softness.

    python tools/face_model_spread.py --limit 300       # ~4 min on 2 cores, judges venv needed

Prints per K the train variance explained, the share of the pairs judged different people
(the real faces themselves: 98.6% on 300) and whether each reconstruction is still judged the
person it came from. Then pairs of 1,024-component faces whose first 256 components (``lo``)
and the rest (``hi``) come from different people: ``own`` is the face's own, ``o1``-``o4`` the
1st to 4th next dev identity's — whether the detail beyond 256 components tells people apart
by itself, with the face it belongs to, or with another's.
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from crop_harness import dlib_distances, judged_different  # this folder's

from kfaar.eval.judges import judge_crops
from kfaar.eval.properties import DLIB_THRESHOLD
from kfaar.models.bundle import load_bundle
from kfaar.runtime.engine import load_engine
from kfaar.train.data import first_faces, load_faces
from kfaar.train.eigen import _boxes, _split_boxes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=300, help="dev identities (default 300)")
    ap.add_argument("--components", type=int, nargs="+", default=[64, 128, 256, 512, 1024, 2048])
    args = ap.parse_args()
    torch.manual_seed(0)
    gen = load_bundle().generator  # kfaar-v2's face box geometry (the model's own basis is not used)
    boxes, _ = _split_boxes(gen, load_faces("train"), mirror=True)
    mean = boxes.mean(0)
    boxes -= mean
    kmax = max(args.components)
    _, s, q = torch.svd_lowrank(boxes, q=kmax + 16, niter=4)
    total = float(boxes.pow(2).sum())
    del boxes

    dev = first_faces("dev", args.limit).crops
    pooled = F.avg_pool2d(torch.from_numpy(dev).permute(0, 3, 1, 2).float() / 127.5 - 1, 2)
    box = _boxes(gen, dev)
    y0, y1, x0, x1 = gen.cfg.box
    mask = load_engine().paste_mask[None, :, :, None]
    grey = np.full_like(dev, 128)

    def onto(faces: np.ndarray) -> np.ndarray:
        return (mask * faces + (1 - mask) * grey).round().astype(np.uint8)

    def rendered(b: torch.Tensor) -> np.ndarray:
        p = pooled.clone()
        p[:, :, y0:y1, x0:x1] = b.view(len(dev), 3, y1 - y0, x1 - x0)
        up = F.interpolate(p, scale_factor=2, mode="bilinear", align_corners=False)
        return ((up.clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy()

    variants = {"real": dev.astype(np.float32)}
    for k in args.components:
        variants[f"K = {k}"] = rendered(mean + ((box - mean) @ q[:, :k]) @ q[:, :k].T)
    variants["64 px, every component"] = rendered(box)
    for sigma in (1.5, 2.5):
        variants[f"Gaussian blur {sigma} px"] = np.stack([cv2.GaussianBlur(c, (0, 0), sigma) for c in dev])
    n = len(dev)
    hybrids = {}
    if kmax >= 1024:
        coeffs = (box - mean) @ q[:, :1024]
        nxt = {name: np.roll(np.arange(n), k) for k, name in enumerate(["own", "o1", "o2", "o3", "o4"])}

        def hybrid(lo: str, hi: str | None) -> np.ndarray:
            c = torch.cat([coeffs[nxt[lo], :256], coeffs[nxt[hi], 256:] if hi else torch.zeros(n, 768)], 1)
            return rendered(mean + c @ q[:, :1024].T)

        for a, b in [(("own", "o1"), ("own", "o2")), (("own", "own"), ("own", "o1")), (("o1", "own"), ("o2", "own")),
                     (("o1", "o3"), ("o2", "o4")), (("o1", "o1"), ("o2", "o2")), (("o1", None), ("o2", None))]:
            name = " vs ".join(f"lo {x} + hi {y or 'none'}" for x, y in (a, b))
            hybrids[name] = (hybrid(*a), hybrid(*b))
    pairs = [im for pair in hybrids.values() for im in pair]
    emb = judge_crops(np.concatenate([onto(v) for v in [*variants.values(), *pairs]])).dlib_emb
    blocks = [emb[i * n:(i + 1) * n] for i in range(len(variants) + len(pairs))]
    real, other = blocks[0], np.roll(np.arange(n), 1)
    print(f"{n} dev identities, each against the next; dlib match if L2 < {DLIB_THRESHOLD}")
    for name, e in zip(variants, blocks):
        own = dlib_distances(e, real)
        k = name.removeprefix("K = ")
        explained = f"  (train variance {float(s[:int(k)].pow(2).sum()) / total:.3f})" if k.isdigit() else ""
        print(f"{name:24s} two people {judged_different(dlib_distances(e, e[other]))}; "
              f"judged its own real face {100 * np.mean(own < DLIB_THRESHOLD):5.1f}%{explained}")
    for i, name in enumerate(hybrids):
        a, b = blocks[len(variants) + 2 * i: len(variants) + 2 * i + 2]
        print(f"{name:44s} {judged_different(dlib_distances(a, b))}")

if __name__ == "__main__":
    main()
