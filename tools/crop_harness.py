"""The crop harness: candidate bundles side by side on the judges, in minutes instead of an eval.

For the first two photos of LIMIT dev identities (the faces cache, with their landmarks),
each bundle makes virtual crops through ``Anonymizer.anonymize_crops`` (the detector's
landmarks feeding the pose warp, as in the pipeline): photo 1 under keys A and B, photo 2
under key A. The judges of ``kfaar eval`` (dlib, match if L2 < 0.6; FaceMesh's pose and
mouth ratio) see the 128-px crops resized to 256 px; SFace (kfaar's own encoder, match if
cosine >= 0.363) the crops themselves. Crops are not full photos, so the figures sit apart
from ``kfaar eval``'s (pose errors lower, for one): compare bundles within one run.

    python tools/crop_harness.py --limit 150 --model A.safetensors --model B.safetensors
    # ~1 min per bundle on 2 cores with 150 identities; judges venv needed; no --model: the shipped bundle

Prints one column per bundle: mouth-ratio correlation, median abs. yaw / pitch / roll error
(and yaw p90), diversity (photo 1, keys A vs B: judged different), consistency (photos 1 and
2, key A: judged the same), anonymity (photo 1 vs its key-A face: judged different), and the
key-A faces' fine detail (``detail``: the mean absolute second difference of the grey level
over the central 48 x 48 px, horizontal and vertical averaged; the inputs' is printed first).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from kfaar import Anonymizer
from kfaar.eval.judges import judge_crops
from kfaar.eval.properties import DLIB_THRESHOLD, SFACE_THRESHOLD
from kfaar.keys import Key
from kfaar.pipeline import AnonymizerOptions
from kfaar.train.data import identity_groups, load_faces


def detail(crops: np.ndarray) -> float:
    """(N, S, S, 3) uint8 crops -> the mean absolute second difference of their grey level
    over the central 48 x 48 px (horizontal and vertical averaged), in grey levels."""
    s = crops.shape[1]
    c = crops[:, s // 2 - 24: s // 2 + 24, s // 2 - 24: s // 2 + 24].astype(np.float64) @ [0.299, 0.587, 0.114]
    dx = np.abs(c[:, :, 2:] - 2 * c[:, :, 1:-1] + c[:, :, :-2]).mean()
    dy = np.abs(c[:, 2:] - 2 * c[:, 1:-1] + c[:, :-2]).mean()
    return float((dx + dy) / 2)


def dlib_distances(ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
    """The L2 distances of paired dlib embeddings (N, 128), less the pairs with a face dlib did
    not find (NaN embeddings)."""
    d = np.linalg.norm(ea - eb, axis=1)
    return d[~np.isnan(d)]


def judged_different(d: np.ndarray) -> str:
    """``dlib_distances`` as printed: the share judged different people, and the median."""
    return f"judged different {100 * np.mean(d >= DLIB_THRESHOLD):5.1f}% (median L2 {np.median(d):.3f})"


def sface_rows(ea: np.ndarray, eb: np.ndarray, e2: np.ndarray, z: np.ndarray, va: np.ndarray) -> dict:
    """One column's SFace rows from the SFace embeddings of photo 1 under keys A and B (``ea``,
    ``eb``), photo 2 under key A (``e2``) and photo 1 itself (``z``), and its key-A crops' detail."""
    return {"diversity SFace": np.mean(np.sum(ea * eb, 1) < SFACE_THRESHOLD),
            "consistency SFace": np.mean(np.sum(ea * e2, 1) >= SFACE_THRESHOLD),
            "anonymity SFace": np.mean(np.sum(ea * z, 1) < SFACE_THRESHOLD),
            "detail (grey levels)": detail(va)}


def report(images: list[np.ndarray], columns: dict[str, dict]) -> None:
    """Judge ``images`` ([photos 1, then per column: photo 1 under key A, under key B, photo 2
    under key A]), add the judges' rows to ``columns`` (one dict per column, in order) and print
    the table."""
    t = judge_crops(np.concatenate(images))
    n = len(images[0])

    def rows(block: int) -> slice:
        return slice(block * n, (block + 1) * n)

    def share(d: np.ndarray, different: bool) -> float:
        return float(np.mean(d >= DLIB_THRESHOLD if different else d < DLIB_THRESHOLD))

    orig = rows(0)
    for k, col in enumerate(columns.values()):
        a, b, c = rows(1 + 3 * k), rows(2 + 3 * k), rows(3 + 3 * k)
        ok = np.isfinite(t.mouth_ratio[orig]) & np.isfinite(t.mouth_ratio[a])
        col["mouth-ratio corr"] = float(np.corrcoef(t.mouth_ratio[orig][ok], t.mouth_ratio[a][ok])[0, 1])
        for angle in ("yaw", "pitch", "roll"):
            err = np.abs(getattr(t, angle)[orig] - getattr(t, angle)[a])
            err = err[np.isfinite(err)]
            col[f"{angle} median (deg)"] = float(np.median(err))
            if angle == "yaw":
                col["yaw p90 (deg)"] = float(np.percentile(err, 90))
        dist = lambda p, q: dlib_distances(t.dlib_emb[p], t.dlib_emb[q])  # noqa: E731
        col["diversity dlib"] = share(dist(a, b), True)
        col["consistency dlib"] = share(dist(a, c), False)
        col["anonymity dlib"] = share(dist(orig, a), True)
    print(f"{n} dev identities (first two photos each); keys A, B; the inputs' detail {detail(images[0]):.3f}")
    names = list(columns)
    print(f"{'':22s}" + "".join(f"{m[:16]:>18s}" for m in names))
    for row in columns[names[0]]:
        print(f"{row:22s}" + "".join(f"{columns[m][row]:18.3f}" for m in names))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=150, help="dev identities (default 150)")
    ap.add_argument("--model", action="append", default=[], help="a .safetensors bundle (repeatable)")
    args = ap.parse_args()

    faces = load_faces("dev")
    if faces.landmarks is None:
        raise SystemExit("the dev faces cache has no landmarks: rerun `kfaar data prepare --split dev`")
    pairs = np.array([g[:2] for g in identity_groups(faces.labels)[: args.limit]])
    one, two = pairs[:, 0], pairs[:, 1]
    key_a, key_b = Key.from_bytes(bytes([1] * 32)), Key.from_bytes(bytes([2] * 32))
    models = args.model or [None]
    columns = {}
    images = [faces.crops[one]]
    for model in models:
        opts = AnonymizerOptions() if model is None else AnonymizerOptions(
            model=model, model_sha256=hashlib.sha256(Path(model).read_bytes()).hexdigest())
        anonymizer = Anonymizer(opts)
        va = anonymizer.anonymize_crops(faces.crops[one], key_a, faces.landmarks[one])
        vb = anonymizer.anonymize_crops(faces.crops[one], key_b, faces.landmarks[one])
        v2 = anonymizer.anonymize_crops(faces.crops[two], key_a, faces.landmarks[two])
        images += [va, vb, v2]
        enc = anonymizer._encoder
        ea, eb, e2 = enc.encode(va), enc.encode(vb), enc.encode(v2)
        z = faces.embeddings[one]
        columns["shipped" if model is None else Path(model).stem] = sface_rows(ea, eb, e2, z, va)
    report(images, columns)

if __name__ == "__main__":
    main()
