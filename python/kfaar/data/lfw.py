"""The LFW cache: detect, align and encode every image of a split once, in resumable shards.

Layout under ``out`` (outside git; default ``cache/lfw``)::

    manifest.json              settings + per split: shards done and images skipped
    train/shard-00000.npz      512 images each, in the sorted order of their relative paths
    dev/shard-00000.npz

A shard is reused when its file exists and the manifest records the same list of images
(their SHA-256), so an interrupted run resumes and a ``--limit`` run grows into a full one.
The train and dev identities come from ``lfw/splits.json`` and are never mixed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kfaar._atomic import atomic_write
from kfaar.faces.align import align_face, transform_points
from kfaar.faces.detect import DetectorOptions, FaceDetector, main_face
from kfaar.faces.encode import EMBEDDING_DIM, SFaceEncoder
from kfaar.faces.image import load_image
from kfaar.faces.models import SFACE, YUNET, ort_model_path

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SPLITS = ("train", "dev")
MANIFEST = "manifest.json"
# YuNet finds every LFW subject at 0.3 in a 400-image sample; 0.6 keeps a margin without clutter.
PREPARE_DETECTOR = DetectorOptions(score_threshold=0.6, min_face_size=24)


@dataclass(frozen=True)
class PrepareOptions:
    size: int = 128                 # aligned crop side in pixels
    shard_size: int = 512           # images per shard file
    workers: int = 2                # processes; 1 runs in this process
    chunk: int = 16                 # images per task sent to a worker
    limit: int | None = None        # first N images of each split (sorted order), None = all
    detector: DetectorOptions = field(default_factory=lambda: PREPARE_DETECTOR)

    def __post_init__(self) -> None:
        for name in ("size", "shard_size", "workers", "chunk"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: got {v!r}, expected an int >= 1")
        if self.size < 16:
            raise ValueError(f"size: got {self.size}, expected >= 16")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise ValueError(f"limit: got {self.limit!r}, expected None or an int >= 1")


@dataclass(frozen=True)
class PrepareResult:
    out: Path
    images: dict[str, int]     # split -> images considered
    faces: dict[str, int]      # split -> images with a face in the cache
    skipped: dict[str, int]    # split -> images without a usable face
    processed: int             # images actually processed in this run (not resumed)
    seconds: float             # wall time of this run

    @property
    def rate(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, eq=False)
class LfwSplit:
    """One split of the cache, shards concatenated. Row i of every array is one face."""

    split: str
    size: int
    crops: np.ndarray           # (N, S, S, 3) uint8 RGB, aligned to canonical_template(S)
    landmarks: np.ndarray       # (N, 5, 2) float32, photo pixels (YuNet order)
    crop_landmarks: np.ndarray  # (N, 5, 2) float32, crop pixels
    matrices: np.ndarray        # (N, 2, 3) float64, photo -> crop
    embeddings: np.ndarray      # (N, 128) float32, unit rows: SFace of `crops`
    labels: np.ndarray          # (N,) str identity (LFW folder name)
    paths: np.ndarray           # (N,) str path relative to lfw/
    scores: np.ndarray          # (N,) float32 detection score
    bboxes: np.ndarray          # (N, 4) float32 (x, y, w, h) photo pixels
    n_faces: np.ndarray         # (N,) int16 faces detected in the photo (1 = subject alone)
    skipped: list[tuple[str, str]]  # (path relative to lfw/, reason) of images left out

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def label_ids(self) -> np.ndarray:
        """(N,) int64 identity index into ``np.unique(labels)``."""
        return np.unique(self.labels, return_inverse=True)[1].reshape(-1)


# ---------------------------------------------------------------------------------------
# listing


def list_split(lfw_dir: Path, split: str) -> list[tuple[str, str]]:
    """Sorted ``(relative path, identity)`` of every image of ``split`` per ``splits.json``."""
    if split not in SPLITS:
        raise ValueError(f"split: got {split!r}, expected one of {SPLITS}")
    spec_path = lfw_dir / "splits.json"
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path} is missing; it assigns identities to train/dev")
    spec = json.loads(spec_path.read_text())
    names = spec.get(split)
    if not isinstance(names, list):
        raise ValueError(f"{spec_path}: no list of names under {split!r}")
    other = set(spec.get("dev" if split == "train" else "train", []))
    overlap = other.intersection(names)
    if overlap:  # the one rule that must never break
        raise ValueError(f"{spec_path}: identities in both train and dev: {sorted(overlap)[:5]}")
    items = []
    for name in names:
        d = lfw_dir / name
        if not d.is_dir():
            log.warning("%s lists %s but %s is missing", spec_path.name, name, d)
            continue
        items += [(f"{name}/{f.name}", name) for f in d.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png")]
    return sorted(items)


def _paths_digest(rels: list[str]) -> str:
    return hashlib.sha256("\n".join(rels).encode()).hexdigest()


# ---------------------------------------------------------------------------------------
# the per-image work (runs in worker processes)

_WORKER: dict = {}


def _init_worker(lfw_dir: str, size: int, detector: DetectorOptions, in_process: bool) -> None:
    if not in_process:
        import cv2

        cv2.setNumThreads(1)  # this process is one of `workers`; one core each
    _WORKER.update(
        lfw_dir=Path(lfw_dir),
        size=size,
        det=FaceDetector(detector, threads=None if in_process else 1),
        enc=SFaceEncoder(threads=1, batch_size=8),
    )


def _process_chunk(rels: list[str]) -> dict:
    """Detect, align and encode ``rels``; returns the rows for the faces and the skips."""
    w = _WORKER
    size = w["size"]
    rows: dict[str, list] = {k: [] for k in ("rel", "crop", "lm", "mat", "score", "bbox", "nf")}
    skipped: list[tuple[str, str]] = []
    for rel in rels:
        try:
            rgb = load_image(w["lfw_dir"] / rel)
        except Exception as e:  # noqa: BLE001 - recorded, the batch goes on
            skipped.append((rel, f"unreadable: {e}"))
            continue
        try:
            faces = w["det"].detect(rgb)
            face = main_face(faces, rgb.shape)
            al = align_face(rgb, face.landmarks, size) if face is not None else None
        except Exception as e:  # noqa: BLE001 - recorded, the batch goes on
            log.warning("%s: detection/alignment failed: %s", rel, e)
            skipped.append((rel, f"failed: {type(e).__name__}: {e}"))
            continue
        if face is None or al is None:
            skipped.append((rel, "no face detected"))
            continue
        rows["rel"].append(rel)
        rows["crop"].append(al.crop)
        rows["lm"].append(face.landmarks)
        rows["mat"].append(al.matrix)
        rows["score"].append(face.score)
        rows["bbox"].append(face.bbox)
        rows["nf"].append(len(faces))
    crops = np.stack(rows["crop"]) if rows["crop"] else np.zeros((0, size, size, 3), np.uint8)
    return {
        "rel": rows["rel"],
        "crops": crops,
        "landmarks": np.asarray(rows["lm"], np.float32).reshape(-1, 5, 2),
        "matrices": np.asarray(rows["mat"], np.float64).reshape(-1, 2, 3),
        "embeddings": w["enc"].encode(crops),
        "scores": np.asarray(rows["score"], np.float32),
        "bboxes": np.asarray(rows["bbox"], np.float32).reshape(-1, 4),
        "n_faces": np.asarray(rows["nf"], np.int16),
        "skipped": skipped,
    }


# ---------------------------------------------------------------------------------------
# shards and manifest


def _write_manifest(path: Path, manifest: dict) -> None:
    with atomic_write(path) as f:
        f.write(json.dumps(manifest, indent=1).encode())


def _write_shard(path: Path, parts: list[dict], labels_of: dict[str, str], size: int) -> dict:
    rel = [r for p in parts for r in p["rel"]]
    skipped = [s for p in parts for s in p["skipped"]]
    crops = np.concatenate([p["crops"] for p in parts]) if parts else np.zeros((0, size, size, 3), np.uint8)
    matrices = np.concatenate([p["matrices"] for p in parts])
    landmarks = np.concatenate([p["landmarks"] for p in parts])
    arrays = {
        "crops": crops,
        "landmarks": landmarks,
        "crop_landmarks": np.stack([transform_points(m, lm) for m, lm in zip(matrices, landmarks)])
        if len(rel) else np.zeros((0, 5, 2), np.float32),
        "matrices": matrices,
        "embeddings": np.concatenate([p["embeddings"] for p in parts]).reshape(-1, EMBEDDING_DIM),
        "labels": np.array([labels_of[r] for r in rel], dtype=str).reshape(-1),
        "paths": np.array(rel, dtype=str).reshape(-1),
        "scores": np.concatenate([p["scores"] for p in parts]),
        "bboxes": np.concatenate([p["bboxes"] for p in parts]),
        "n_faces": np.concatenate([p["n_faces"] for p in parts]),
        "skipped_paths": np.array([s[0] for s in skipped], dtype=str).reshape(-1),
        "skipped_reasons": np.array([s[1] for s in skipped], dtype=str).reshape(-1),
    }
    with atomic_write(path) as f:
        np.savez(f, **arrays)
    return {"n_faces": len(rel), "skipped": [list(s) for s in skipped]}


def _settings(opts: PrepareOptions) -> dict:
    return {
        "format": FORMAT_VERSION,
        "size": opts.size,
        "align": "arcface5-umeyama-bilinear-black",  # align_face defaults; change => new cache
        "shard_size": opts.shard_size,
        "detector": _detector_settings(opts.detector),
        "models": {"yunet": YUNET.sha256, "sface": SFACE.sha256},
    }


def _detector_settings(detector) -> dict:
    """The detector's options as a manifest records them (JSON: lists for tuples). ``rotations``
    is recorded only when it is not the upright-only default, so caches made before the option
    existed keep matching the settings they were made with."""
    d = {k: v for k, v in asdict(detector).items() if k != "model_path"}
    if tuple(d.get("rotations", (0,))) == (0,):
        d.pop("rotations", None)
    else:
        d["rotations"] = list(d["rotations"])
    return d


def _read_manifest(out: Path) -> dict | None:
    p = out / MANIFEST
    return json.loads(p.read_text()) if p.is_file() else None


# ---------------------------------------------------------------------------------------
# prepare


def prepare(
    lfw_dir: str | os.PathLike,
    out: str | os.PathLike,
    splits: tuple[str, ...] = SPLITS,
    options: PrepareOptions | None = None,
    *,
    progress: bool = True,
) -> PrepareResult:
    """Build (or resume) the cache of ``splits`` from ``lfw_dir`` into ``out``."""
    from tqdm import tqdm

    opts = options or PrepareOptions()
    lfw_dir, out = Path(lfw_dir), Path(out)
    if not lfw_dir.is_dir():
        raise FileNotFoundError(f"LFW not found at {lfw_dir}")
    for s in splits:
        if s not in SPLITS:
            raise ValueError(f"splits: got {s!r}, expected names from {SPLITS}")
    settings = _settings(opts)
    manifest = _read_manifest(out) or {**settings, "splits": {}}
    old = {k: manifest.get(k) for k in settings}
    if old != settings:
        raise ValueError(
            f"{out / MANIFEST} was built with different settings ({old}); "
            f"use another --out for {settings}"
        )
    manifest["lfw_dir"] = str(lfw_dir.resolve())

    # plan: which shards still need work
    todo: list[tuple[str, int, list[str]]] = []
    listed: dict[str, list[tuple[str, str]]] = {}
    for split in splits:
        items = list_split(lfw_dir, split)
        if opts.limit is not None:
            items = items[: opts.limit]
        listed[split] = items
        entry = manifest["splits"].setdefault(split, {"shards": []})
        old_shards = {sh["file"]: sh for sh in entry["shards"]}
        shards = []
        for i in range(0, len(items), opts.shard_size):
            rels = [r for r, _ in items[i : i + opts.shard_size]]
            fname = f"{split}/shard-{i // opts.shard_size:05d}.npz"
            prev = old_shards.get(fname)
            if prev and prev.get("done") and prev["paths_sha256"] == _paths_digest(rels) and (out / fname).is_file():
                shards.append(prev)
            else:
                shards.append({"file": fname, "paths_sha256": _paths_digest(rels), "n_images": len(rels),
                               "done": False})
                todo.append((split, i // opts.shard_size, rels))
        entry["shards"] = shards
        entry["n_images"] = len(items)
    _write_manifest(out / MANIFEST, manifest)

    n_todo = sum(len(r) for _, _, r in todo)
    labels_of = {r: lab for items in listed.values() for r, lab in items}
    t0 = time.perf_counter()
    if n_todo:
        ort_model_path(SFACE)  # convert once here, not racing in every worker
        init_args = (str(lfw_dir), opts.size, opts.detector)
        tasks = [(s, k, rels[j : j + opts.chunk]) for s, k, rels in todo for j in range(0, len(rels), opts.chunk)]
        with tqdm(total=n_todo, desc="prepare lfw", unit="img", disable=not progress) as bar:
            if opts.workers == 1:
                _init_worker(*init_args, True)
                results = (_process_chunk(r) for _, _, r in tasks)
                _collect(tasks, results, todo, manifest, out, labels_of, opts, bar)
                _WORKER.clear()
            else:
                import multiprocessing as mp

                # spawn: no inherited ORT/OpenCV thread pools; each worker builds its own sessions
                ctx = mp.get_context("spawn")
                with ctx.Pool(opts.workers, _init_worker, (*init_args, False)) as pool:
                    results = pool.imap(_process_chunk, [r for _, _, r in tasks])
                    _collect(tasks, results, todo, manifest, out, labels_of, opts, bar)
    seconds = time.perf_counter() - t0
    if n_todo:
        manifest["last_run"] = {"images": n_todo, "seconds": round(seconds, 1), "workers": opts.workers,
                                "images_per_s": round(n_todo / seconds, 1) if seconds > 0 else None}
        _write_manifest(out / MANIFEST, manifest)

    counts = {}
    for split in splits:
        entry = manifest["splits"][split]
        counts[split] = (
            entry["n_images"],
            sum(sh.get("n_faces", 0) for sh in entry["shards"]),
            sum(len(sh.get("skipped", [])) for sh in entry["shards"]),
        )
    return PrepareResult(
        out=out,
        images={s: c[0] for s, c in counts.items()},
        faces={s: c[1] for s, c in counts.items()},
        skipped={s: c[2] for s, c in counts.items()},
        processed=n_todo,
        seconds=seconds,
    )


def _collect(tasks, results, todo, manifest, out, labels_of, opts, bar) -> None:
    """Gather chunk results in order; write each shard (and the manifest) as soon as it is whole."""
    remaining = {(s, k): len(rels) for s, k, rels in todo}
    parts: dict[tuple[str, int], list[dict]] = {}
    for (split, k, rels), res in zip(tasks, results):
        key = (split, k)
        parts.setdefault(key, []).append(res)
        remaining[key] -= len(rels)
        bar.update(len(rels))
        if remaining[key]:
            continue
        fname = f"{split}/shard-{k:05d}.npz"
        info = _write_shard(out / fname, parts.pop(key), labels_of, opts.size)
        for sh in manifest["splits"][split]["shards"]:
            if sh["file"] == fname:
                sh.update(info, done=True)
        _write_manifest(out / MANIFEST, manifest)
        log.info("wrote %s (%d faces, %d skipped)", fname, info["n_faces"], len(info["skipped"]))


# ---------------------------------------------------------------------------------------
# loading


def load_split(cache_dir: str | os.PathLike, split: str) -> LfwSplit:
    """Concatenate the finished shards of ``split`` from a cache written by :func:`prepare`."""
    cache_dir = Path(cache_dir)
    if split not in SPLITS:
        raise ValueError(f"split: got {split!r}, expected one of {SPLITS}")
    manifest = _read_manifest(cache_dir)
    if manifest is None:
        raise FileNotFoundError(f"no LFW cache at {cache_dir} (missing {MANIFEST}); run `kfaar data prepare`")
    entry = manifest["splits"].get(split)
    if entry is None:
        raise FileNotFoundError(f"{cache_dir} has no {split!r} split; run `kfaar data prepare --split {split}`")
    shards = [sh for sh in entry["shards"] if sh.get("done")]
    if len(shards) < len(entry["shards"]):
        log.warning("%s/%s: %d of %d shards are unfinished and left out; rerun prepare to finish them",
                    cache_dir, split, len(entry["shards"]) - len(shards), len(entry["shards"]))
    size = int(manifest["size"])
    keys = ("crops", "landmarks", "crop_landmarks", "matrices", "embeddings", "labels", "paths",
            "scores", "bboxes", "n_faces")
    acc: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    skipped: list[tuple[str, str]] = []
    for sh in shards:
        with np.load(cache_dir / sh["file"]) as z:
            for k in keys:
                acc[k].append(z[k])
            skipped += list(zip(z["skipped_paths"].tolist(), z["skipped_reasons"].tolist()))
    empty = {
        "crops": np.zeros((0, size, size, 3), np.uint8), "landmarks": np.zeros((0, 5, 2), np.float32),
        "crop_landmarks": np.zeros((0, 5, 2), np.float32), "matrices": np.zeros((0, 2, 3)),
        "embeddings": np.zeros((0, EMBEDDING_DIM), np.float32), "labels": np.zeros(0, str),
        "paths": np.zeros(0, str), "scores": np.zeros(0, np.float32), "bboxes": np.zeros((0, 4), np.float32),
        "n_faces": np.zeros(0, np.int16),
    }
    arrays = {k: np.concatenate(v) if v else empty[k] for k, v in acc.items()}
    return LfwSplit(split=split, size=size, skipped=skipped, **arrays)
