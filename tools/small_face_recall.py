"""How many small faces of a large photo the Anonymizer's detector finds, and at what cost.

A synthetic crowd: LFW photos (every 20th ``*_0001.jpg``), each scaled whole so that its face
(YuNet's box on the photo) is SIZE px on its longer side, N of them pasted at random spots
without overlap on a smooth background of W x H; the detector is the Anonymizer's
(``kfaar.pipeline._anonymizer_detector_options``), with the small-face search at each
``--fine`` longer side given (0: none). A pasted face counts as found when a detected box
overlaps it by IoU >= 0.3; other detections are counted apart.

    python tools/small_face_recall.py --size 8064x6048 --faces 60 --px 16 --px 20 --px 24 --fine 4096 --fine 8192
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click
import cv2
import numpy as np


def _faces(data_dir: Path, n: int) -> list[tuple[np.ndarray, tuple]]:
    """(photo, the main face's box) of LFW photos whose main face YuNet finds."""
    from kfaar.faces import FaceDetector, load_image, main_face

    out = []
    with FaceDetector() as det:
        for p in sorted(data_dir.glob("lfw/*/*_0001.jpg"))[::20]:
            rgb = load_image(p)
            face = main_face(det.detect(rgb), rgb.shape)
            if face is not None:
                out.append((rgb, face.bbox))
            if len(out) == n:
                break
    return out


def _crowd(faces: list, px: int, size: tuple[int, int], seed: int) -> tuple[np.ndarray, list]:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    canvas = np.dstack([90 + 60 * xx / w, 110 + 40 * yy / h, 140 - 50 * xx / w]).astype(np.uint8)
    rng = np.random.default_rng(seed)
    placed: list[tuple[int, int, int, int]] = []  # the pasted photos
    truth = []  # the faces in them
    for photo, (fx, fy, fw, fh) in faces:
        s = px / max(fw, fh)
        pw, ph = max(1, round(photo.shape[1] * s)), max(1, round(photo.shape[0] * s))
        for _ in range(1000):
            x, y = int(rng.integers(0, w - pw)), int(rng.integers(0, h - ph))
            if all(x + pw < bx or bx + bw < x or y + ph < by or by + bh < y for bx, by, bw, bh in placed):
                break
        canvas[y:y + ph, x:x + pw] = cv2.resize(photo, (pw, ph), interpolation=cv2.INTER_AREA)
        placed.append((x, y, pw, ph))
        truth.append((x + fx * s, y + fy * s, fw * s, fh * s))
    return canvas, truth


def _iou(a, b) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@click.command()
@click.option("--size", default="8064x6048", show_default=True, help="Canvas W x H.")
@click.option("--faces", "n_faces", type=int, default=60, show_default=True)
@click.option("--px", "sizes", type=int, multiple=True, help="Face size(s), px (default 16, 20, 24, 32).")
@click.option("--fine", "fines", type=int, multiple=True, help="fine_max_side(s); 0 = no small-face search.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
def main(size: str, n_faces: int, sizes: tuple[int, ...], fines: tuple[int, ...], data_dir: Path | None) -> None:
    from kfaar.data.paths import default_data_dir
    from kfaar.faces import FaceDetector
    from kfaar.pipeline import _anonymizer_detector_options

    w, h = (int(v) for v in size.lower().split("x"))
    faces = _faces(data_dir or default_data_dir(), n_faces)
    opts = _anonymizer_detector_options()
    click.echo(f"{w} x {h}, {len(faces)} faces; found / pasted, other detections, median detect s of 3")
    for px in sizes or (16, 20, 24, 32):
        canvas, truth = _crowd(faces, px, (w, h), seed=px)
        for fine in fines or (opts.fine_max_side,):
            o = dataclasses.replace(opts, fine_max_side=fine or None)
            with FaceDetector(o) as det:
                times = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    found = det.detect(canvas)
                    times.append(time.perf_counter() - t0)
            hit = [any(_iou(t, f.bbox) >= 0.3 for f in found) for t in truth]
            other = sum(1 for f in found if all(_iou(t, f.bbox) < 0.3 for t in truth))
            click.echo(f"  {px:>3} px, fine {fine or 'none':>5}: {sum(hit):>3} / {len(truth)}, other {other:>3}, "
                       f"{np.median(times):.2f} s")


if __name__ == "__main__":
    main()
