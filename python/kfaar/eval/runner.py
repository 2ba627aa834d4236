"""Run methods over an evaluation set, judge every image once, compute every property.

Flow: each photo and each virtual photo goes into an :class:`_ImageStore` keyed by its
content hash (key-independent baselines give the same image for keys A and B, and the
identity baseline gives the original back, so each distinct image is judged once). The
store runs YuNet + SFace in this process and queues a PNG for the judges worker, which runs
in subprocesses alongside. The properties are then computed from per-image rows
(:mod:`kfaar.eval.properties`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from kfaar.eval import metrics as M
from kfaar.eval.judges import JudgeCache, JudgeRunner, JudgeTable, default_judge_cache
from kfaar.eval.methods import Method
from kfaar.eval.properties import (
    DLIB_THRESHOLD,
    JUDGES,
    KVFA_JPEG_QUALITY,
    SFACE_THRESHOLD,
    Features,
    MethodResult,
    MethodRows,
    method_properties,
)
from kfaar.eval.protocol import EvalSet, identity_keys
from kfaar.faces.image import jpeg_roundtrip

__all__ = [
    "DLIB_THRESHOLD",
    "JUDGES",
    "KVFA_JPEG_QUALITY",
    "SFACE_THRESHOLD",
    "EvalOptions",
    "EvalResult",
    "MethodResult",
    "run_evaluation",
]

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class EvalOptions:
    fars: tuple[float, ...] = (1e-2, 1e-3)  # TAR is reported at these FARs
    grid_identities: int = 6  # photos shown in the report's image grid
    jobs: int = 2  # judges worker processes
    judge_batch: int = 200  # images per judges worker run
    judge_cache: bool = True  # reuse judge rows of images judged before (same pins and worker)

    def __post_init__(self) -> None:
        if not self.fars or not all(0 < f < 1 for f in self.fars):
            raise ValueError(f"fars: got {self.fars!r}, expected rates in (0, 1)")
        if self.jobs < 1:
            raise ValueError(f"jobs: got {self.jobs!r}, expected >= 1")


@dataclass(frozen=True)
class EvalResult:
    methods: list[MethodResult]
    unavailable: dict[str, str]
    counts: dict[str, int]
    judge_versions: dict[str, str]
    seconds: float
    originals: dict = field(default_factory=dict)  # judges on the genuine photos: face found, SFace TAR@FAR
    reference: M.RocResult | None = None  # SFace, genuine photo vs genuine photo: the bar KVFA is held to


class _ImageStore:
    """Distinct images by content hash -> row; YuNet + SFace here, judges in subprocesses."""

    def __init__(self, workdir: Path, judges: JudgeRunner, detector, encoder, cache: JudgeCache | None = None) -> None:
        self.dir = Path(workdir) / "images"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.judges = judges
        self.cache = cache
        self.detector, self.encoder = detector, encoder
        self.rows: dict[str, int] = {}
        self.found: list[bool] = []
        self._judged: list[tuple[int, str]] = []  # (row, digest) sent to the judges, in order
        self.n_cached = 0
        self._crops: list[np.ndarray] = []  # aligned 112 px crops waiting for a batch encode
        self._crop_rows: list[int] = []
        self._emb: dict[int, np.ndarray] = {}
        self._paths: list[str] = []

    def add(self, rgb: np.ndarray) -> int:
        from kfaar.faces import align_face, main_face

        rgb = np.ascontiguousarray(rgb)
        digest = hashlib.blake2b(rgb.tobytes(), digest_size=16)
        digest.update(str(rgb.shape).encode())
        h = digest.hexdigest()
        self.judges.poll()  # keep both judge slots busy even while a slow method runs
        row = self.rows.get(h)
        if row is not None:
            return row
        row = len(self.found)
        self.rows[h] = row
        if self.cache is not None and h in self.cache:
            self.n_cached += 1
        else:
            path = self.dir / f"{h}.png"
            cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 0])
            self._paths.append(str(path))
            self._judged.append((row, h))
            if len(self._paths) >= 50:
                self.judges.submit(self._paths)
                self._paths = []
        face = main_face(self.detector.detect(rgb), rgb.shape)
        self.found.append(face is not None)
        if face is not None:
            self._crops.append(align_face(rgb, face.landmarks, size=112).crop)
            self._crop_rows.append(row)
            if len(self._crops) >= 64:
                self._encode()
        return row

    def _encode(self) -> None:
        if self._crops:
            z = self.encoder.encode(np.stack(self._crops))
            self._emb.update(zip(self._crop_rows, z))
            self._crops, self._crop_rows = [], []

    def flush(self) -> None:
        """Encode the waiting crops and hand the waiting PNGs to the judges."""
        self._encode()
        if self._paths:
            self.judges.submit(self._paths)
            self._paths = []

    def finish(self, progress=None) -> tuple[np.ndarray, np.ndarray, JudgeTable]:
        """(yunet_found (M,), sface_emb (M, 128) nan where none, judge table with M rows)."""
        self.flush()
        emb = np.full((len(self.found), 128), np.nan, np.float32)
        for r, z in self._emb.items():
            emb[r] = z
        fresh = self.judges.collect(progress=progress)
        if len(fresh.dlib_found) != len(self._judged):
            raise RuntimeError(f"judges returned {len(fresh.dlib_found)} rows for {len(self._judged)} images")
        table = JudgeTable.empty(len(self.found))
        rows = np.array([r for r, _ in self._judged], np.int64)
        for k in JudgeTable.__dataclass_fields__:
            getattr(table, k)[rows] = getattr(fresh, k)
        if self.cache is not None:
            for h, r in self.rows.items():
                if h in self.cache:
                    for k, v in self.cache.row(h).items():
                        getattr(table, k)[r] = v
            self.cache.add([h for _, h in self._judged], fresh)
        return np.asarray(self.found, bool), emb, table


def _checked(virtual, photo: np.ndarray) -> np.ndarray:
    v = np.asarray(virtual)
    if v.shape != photo.shape or v.dtype != np.uint8:
        raise ValueError(f"anonymize returned {v.dtype} {v.shape}, expected uint8 {photo.shape} like its input")
    return v


def _stack(vectors: list[np.ndarray | None]) -> np.ndarray:
    dim = next((v.size for v in vectors if v is not None), 1)
    out = np.full((len(vectors), dim), np.nan, np.float32)
    for i, v in enumerate(vectors):
        if v is not None and v.size == dim:
            out[i] = v
    return out


def _run_method(method: Method, es: EvalSet, photos: list[np.ndarray], store: _ImageStore,
                grid_ids: set[int], bar) -> MethodRows:
    n = len(es.photos)
    rows = MethodRows(a=np.full(n, -1, np.int64), b=np.full(n, -1, np.int64))
    rec, rec_wrong, rec_jpeg, rec_plain, tmpl = [], [], [], [], []
    keys = {k: identity_keys(es.names[k], es.seed) for k in {p.identity for p in es.photos}}
    for i, (photo, meta) in enumerate(zip(photos, es.photos)):
        k = keys[meta.identity]
        va = vb = None
        t = time.perf_counter()
        try:  # copies: a method that edits its input in place must not change what others see
            va = _checked(method.anonymize(photo.copy(), k.a), photo)
            if meta.b_key:
                vb = _checked(method.anonymize(photo.copy(), k.b), photo)
        except Exception as exc:  # one bad photo must not stop the run; counted and reported
            rows.failures += 1
            (log.warning if rows.failures == 1 else log.debug)("%s failed on %s: %r", method.name, meta.path, exc)
            va = vb = None
        rows.seconds += time.perf_counter() - t
        if va is not None:
            rows.a[i] = store.add(va)
        if vb is not None:
            rows.b[i] = store.add(vb)
        if method.recover is not None:
            t = time.perf_counter()
            rec.append(_safe(method.recover, va.copy(), k.a) if va is not None else None)
            rec_wrong.append(_safe(method.recover, va.copy(), k.wrong) if va is not None else None)
            rec_jpeg.append(_safe(method.recover, jpeg_roundtrip(va, KVFA_JPEG_QUALITY), k.a)
                            if va is not None else None)
            rec_plain.append(_safe(method.recover, photo.copy(), k.a))  # the original: no code in it
            tmpl.append(_safe(method.enroll, photo.copy()) if method.enroll is not None else None)
            rows.recover_seconds += time.perf_counter() - t
        if i in grid_ids and va is not None and vb is not None:
            rows.grid.append((photo, va, vb))
        bar.update(1)
    if method.recover is not None:
        rows.recovered, rows.recovered_wrong, rows.recovered_jpeg = _stack(rec), _stack(rec_wrong), _stack(rec_jpeg)
        rows.recovered_plain = _stack(rec_plain)
        rows.templates = _stack(tmpl) if method.enroll is not None else None
    if rows.failures:
        log.warning("%s failed on %d of %d photos", method.name, rows.failures, n)
    return rows


def _safe(fn, *args) -> np.ndarray | None:
    """``fn(*args)`` as a flat float32 vector, or None when it fails or finds no face."""
    try:
        z = fn(*args)
        return None if z is None else np.asarray(z, np.float32).ravel()
    except Exception as exc:
        log.debug("%s failed: %s", getattr(fn, "__name__", fn), exc)
        return None


def run_evaluation(
    methods: list[Method],
    es: EvalSet,
    judges: JudgeRunner,
    workdir: Path,
    options: EvalOptions | None = None,
    *,
    unavailable: dict[str, str] | None = None,
    judge_versions: dict[str, str] | None = None,
    judge_cache_dir: Path | None = None,
    progress: bool = True,
) -> EvalResult:
    """Anonymize every photo with every method, judge all distinct images, compute the properties."""
    from tqdm.auto import tqdm

    from kfaar.faces import FaceDetector, SFaceEncoder, load_image

    options = options or EvalOptions()
    t0 = time.perf_counter()
    n = len(es.photos)
    # one ORT thread: the judges run beside us, and ORT's spinning pool collapses on a busy CPU
    with FaceDetector() as detector, SFaceEncoder(threads=1) as encoder:
        cache = None
        if options.judge_cache:
            cache = JudgeCache(judge_cache_dir if judge_cache_dir is not None else default_judge_cache(), judges.env)
        store = _ImageStore(workdir, judges, detector, encoder, cache)
        bar = tqdm(total=n * (1 + len(methods)), desc="anonymize + encode", unit="photo", disable=not progress)
        photos, orig_rows = [], np.zeros(n, np.int64)
        for i, p in enumerate(es.photos):
            photos.append(load_image(p.path))
            orig_rows[i] = store.add(photos[-1])
            bar.update(1)
        first = {}
        for i, p in enumerate(es.photos):
            first.setdefault(p.identity, i)
        grid_ids = set(sorted(first.values())[: options.grid_identities])
        per_method = {m.name: _run_method(m, es, photos, store, grid_ids, bar) for m in methods}
        bar.close()
        store.flush()
        if store.n_cached:
            log.info("judge cache: %d of %d distinct images already judged", store.n_cached, len(store.found))
        jbar = tqdm(total=judges.n_submitted, desc="judges (dlib, FaceMesh)", unit="img", disable=not progress)
        yunet, sface, table = store.finish(progress=jbar.update)
        jbar.close()

    feats = Features(yunet, sface, table)
    labels = es.labels
    orig = feats.take(orig_rows)
    results = [
        method_properties(m, per_method[m.name], feats, orig, labels, es, options.fars) for m in methods
    ]
    # reference: plain SFace between genuine photos (same pairs, all impostors), what KVFA is compared with
    ok = orig["yunet"]
    i, j = es.same_pairs.T
    sims = orig["sface_emb"] @ np.nan_to_num(orig["sface_emb"]).T
    genuine = sims[i, j][ok[i] & ok[j]]
    impostor = sims[(labels[:, None] != labels[None, :]) & ok[:, None] & ok[None, :]]
    reference = M.roc_curve(genuine, impostor)
    originals = {
        "face_found": {
            "yunet": M.share(orig["yunet"]).to_json(),
            "dlib": M.share(orig["dlib"][0]).to_json(),
            "facemesh": M.share(orig["mesh"]).to_json(),
        },
        "sface_verification": {
            "auc": M.json_float(reference.auc),
            **{f"tar_at_far_{f:g}": M.tar_at_far(genuine, impostor, f).to_json() for f in options.fars},
        },
    }
    return EvalResult(results, dict(unavailable or {}), es.counts(), dict(judge_versions or {}),
                      time.perf_counter() - t0, originals, reference)
