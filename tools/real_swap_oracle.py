"""What a face swap with *real* people scores on ``kfaar eval``'s protocol: the ceiling of a
renderer that draws photographic faces, for reading issue 4's targets against.

The method ``real-swap`` replaces every face the way kfaar's pipeline does (YuNet, the
five-point 128-px alignment, kfaar-v2's paste mask and paste-back) with the face of a real
train-split person instead of a rendered one: the key picks the person (one of the train
identities with ``--min-photos`` photos or more, by a hash of the key's public fingerprint;
never a dev identity), and of that person's photos the one whose nose position (YuNet's
five points, from the eye-mouth midpoint) is nearest the input's, so the donor's head is
turned about as the input's is. The donor crop is shifted to the input's mean colour under
the mask, as kfaar's faces are, and pasted back through the same mask. So two keys give two
real people in the input's head, hair and background, and one key gives one real person
across a person's photos — what a perfect renderer of other people's faces would give, less
the input's exact pose and expression, which a donor photo only approximates.

    python tools/real_swap_oracle.py --limit 100 --out runs/real-swap
    # the judges venv is needed (`kfaar eval --setup-judges`); ~9 min with --limit 100 --with-kfaar on 2 cores

The donors are train-split faces read from the faces cache at run time (never written
anywhere but the eval's own output folder, which holds grids of the virtual photos: keep it
out of the repository, as ``runs/`` is). Prints the eval's table; ``--with-kfaar`` puts the
shipped model's column beside it (same photos and keys).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

from kfaar.eval import EvalConfig, Method, evaluate
from kfaar.eval.report import markdown_table
from kfaar.faces import FaceDetector, align_face, transform_points
from kfaar.faces.align import nose_position, paste_into
from kfaar.keys import Key
from kfaar.runtime.engine import load_engine
from kfaar.train.data import identity_groups, load_faces


class RealSwap:
    """anonymize(photo, key): every face replaced by a key-chosen real train person's face."""

    def __init__(self, min_photos: int = 8) -> None:
        fs = load_faces("train")
        if fs.landmarks is None:
            raise SystemExit("the train faces cache has no landmarks: run `kfaar data prepare --split train`")
        self.people = [g for g in identity_groups(fs.labels) if len(g) >= min_photos]
        self.crops, self.nose = fs.crops, nose_position(fs.landmarks)
        self.detector = FaceDetector()
        self.mask = load_engine().paste_mask  # kfaar-v2's paste mask (128 x 128 float)

    def donor(self, key: Key, nose: np.ndarray) -> np.ndarray:
        pick = int.from_bytes(hashlib.sha256(b"real-swap" + key.fingerprint.encode()).digest()[:8], "little")
        photos = self.people[pick % len(self.people)]
        return self.crops[photos[np.argmin(np.linalg.norm(self.nose[photos] - nose, axis=1))]]

    def anonymize(self, photo: np.ndarray, key: Key) -> np.ndarray:
        out = photo.copy()
        m = self.mask[:, :, None]
        for face in self.detector.detect(photo):
            a = align_face(photo, face.landmarks)
            nose = nose_position(transform_points(a.matrix, face.landmarks)[None])[0]
            d = self.donor(key, nose).astype(np.float32)
            shift = ((a.crop - d) * m).sum((0, 1)) / m.sum()  # the input's mean colour under the mask
            paste_into(out, np.clip(np.rint(d + shift), 0, 255).astype(np.uint8), a.matrix, mask=self.mask)
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=100, help="dev identities (the eval's seeded choice)")
    ap.add_argument("--out", type=Path, default=Path("runs/real-swap"))
    ap.add_argument("--min-photos", type=int, default=8, help="donor identities: train people with this many photos")
    ap.add_argument("--with-kfaar", action="store_true", help="evaluate the shipped model beside it")
    args = ap.parse_args()
    swap = RealSwap(args.min_photos)
    print(f"donors: {len(swap.people)} train identities with >= {args.min_photos} photos")
    res = evaluate(EvalConfig(methods=("kfaar",) if args.with_kfaar else (), limit=args.limit, out_dir=args.out),
                   extra_methods=[Method("real-swap", swap.anonymize,
                                         description="a key-chosen real train person's face, nearest in nose position")])
    print(markdown_table(res.metrics))
    print(f"\n{res.files.metrics}\n{res.files.html}")


if __name__ == "__main__":
    main()
