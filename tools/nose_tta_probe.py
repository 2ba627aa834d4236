"""Probe: does averaging YuNet over many versions of a crop read the nose's height well enough?

Moving the virtual face's nose tip to the input's is the pitch lever (model card, "Why the
misses"), but YuNet's nose height on a 128-px crop tracks FaceMesh's only at correlation ~0.6.
This probe runs YuNet on test-time-augmented versions of N dev crops (upscaled 2.5-4x, padded
by 25 or 50% with the border replicated, mirrored or not, turned -4 / 0 / 4 degrees: 48 in
all), maps each version's landmarks back to the crop, and reports the correlation of the nose
tip's height (from the eye-mouth midpoint, in eye distances) with FaceMesh's on the same crops
(the judge, in its own venv, used here only to score the estimate), per version and averaged:

    python tools/nose_tta_probe.py --limit 600

Measured 2026-11-27 (model card, "Tried in the session of 2026-11-27, sixteenth"): 0.53-0.65
per version, 0.70 averaged over all 48; a landmark estimate good to ~0.9 is what the lever needs.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from itertools import product
from pathlib import Path

import cv2
import numpy as np

# FaceMesh (refined) points in YuNet's order: irises (468, 473), nose tip (1), mouth corners (61, 291)
MESH = """
import sys, numpy as np, cv2, mediapipe as mp
crops = np.load(sys.argv[1])["crops"]
mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True)
out = np.full((len(crops), 5, 2), np.nan)
for i, c in enumerate(crops):
    r = mesh.process(cv2.resize(c, (256, 256), interpolation=cv2.INTER_CUBIC))
    if r.multi_face_landmarks:
        p = np.array([(q.x * 128, q.y * 128) for q in r.multi_face_landmarks[0].landmark])
        out[i] = p[[468, 473, 1, 61, 291]]
np.save(sys.argv[2], out)
"""


def nose_height(lm: np.ndarray) -> float:
    from kfaar.faces.align import nose_position

    return float(nose_position(lm[None])[0, 1] / np.linalg.norm(lm[1] - lm[0]))


def yunet(det, crop: np.ndarray, scale: float, pad: float, flip: bool, angle: float) -> np.ndarray | None:
    """YuNet's five points on one version of ``crop``, in the crop's own pixels."""
    s = int(round(crop.shape[0] * scale))
    im = cv2.resize(crop, (s, s), interpolation=cv2.INTER_CUBIC)
    if flip:
        im = im[:, ::-1].copy()
    p = int(pad * s)
    im = cv2.copyMakeBorder(im, p, p, p, p, cv2.BORDER_REPLICATE)
    turn = cv2.getRotationMatrix2D(((im.shape[1] - 1) / 2, (im.shape[0] - 1) / 2), angle, 1.0)
    im = cv2.warpAffine(im, turn, im.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    faces = det.detect(im)
    if not faces:
        return None
    back = cv2.invertAffineTransform(turn)
    lm = (np.asarray(max(faces, key=lambda f: f.size).landmarks, np.float64) @ back[:, :2].T + back[:, 2] - p) / scale
    if flip:  # mirrored back: x, and the left / right points swapped
        lm[:, 0] = crop.shape[1] - 1 / scale - lm[:, 0]
        lm = lm[[1, 0, 2, 4, 3]]
    return lm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=600, help="dev crops (the data cache's first)")
    args = ap.parse_args()

    from kfaar.data.lfw import load_split
    from kfaar.eval.judges import find_judges
    from kfaar.faces.detect import FaceDetector
    from kfaar.train.data import repo_root

    judges = find_judges()
    if judges is None:
        raise SystemExit("the judges venv is missing: run `kfaar eval --setup-judges`")
    crops = load_split(repo_root() / "cache" / "lfw", "dev").crops[: args.limit]
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(Path(tmp) / "crops.npz", crops=crops)
        subprocess.run([str(judges.python), "-c", MESH, str(Path(tmp) / "crops.npz"), str(Path(tmp) / "mesh.npy")],
                       check=True, capture_output=True, timeout=3600)
        mesh = np.load(Path(tmp) / "mesh.npy")
    truth = np.array([nose_height(m) if np.isfinite(m).all() else np.nan for m in mesh])
    versions = list(product((2.5, 3.0, 3.5, 4.0), (0.25, 0.5), (False, True), (-4.0, 0.0, 4.0)))
    read = np.full((len(crops), len(versions)), np.nan)
    with FaceDetector() as det:
        for i, crop in enumerate(crops):
            for j, v in enumerate(versions):
                lm = yunet(det, crop, *v)
                if lm is not None:
                    read[i, j] = nose_height(lm)
    ok = np.isfinite(truth) & np.isfinite(read).all(1)
    r = [np.corrcoef(read[ok, j], truth[ok])[0, 1] for j in range(len(versions))]
    print(f"{ok.sum()} of {len(crops)} crops read by FaceMesh and every version")
    for v, rv in zip(versions, r):
        print(f"scale {v[0]:.1f} pad {v[1]:.2f} mirrored {v[2]!s:<5} turned {v[3]:+.0f}: r {rv:.3f}")
    print(f"per version r {min(r):.3f}-{max(r):.3f}; averaged over all {len(versions)}: "
          f"r {np.corrcoef(read[ok].mean(1), truth[ok])[0, 1]:.3f}")


if __name__ == "__main__":
    main()
