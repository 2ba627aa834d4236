"""Run methods over an evaluation set, judge every image once, compute every property.

Flow: each photo and each virtual photo goes into an :class:`_ImageStore` keyed by its
content hash (key-independent baselines give the same image for keys A and B, and the
identity baseline gives the original back, so each distinct image is judged once). The
store runs YuNet + SFace in this process and queues a PNG for the judges worker, which runs
in subprocesses alongside. Metrics are then computed from per-image rows.
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
from kfaar.eval.judges import JudgeRunner, JudgeTable
from kfaar.eval.methods import Method
from kfaar.eval.protocol import EvalSet, identity_keys

log = logging.getLogger(__name__)

SFACE_THRESHOLD = 0.363  # cosine >= this: same person (OpenCV's SFace operating point)
DLIB_THRESHOLD = 0.6  # L2 < this: same person (dlib's documented operating point)
JUDGES = ("dlib", "sface")


@dataclass(frozen=True)
class EvalOptions:
    fars: tuple[float, ...] = (1e-2, 1e-3)  # TAR is reported at these FARs
    grid_identities: int = 6  # photos shown in the report's image grid
    jobs: int = 2  # judges worker processes
    judge_batch: int = 200  # images per judges worker run

    def __post_init__(self) -> None:
        if not self.fars or not all(0 < f < 1 for f in self.fars):
            raise ValueError(f"fars: got {self.fars!r}, expected rates in (0, 1)")
        if self.jobs < 1:
            raise ValueError(f"jobs: got {self.jobs!r}, expected >= 1")


@dataclass(frozen=True)
class MethodResult:
    """Everything measured for one method: JSON-ready properties plus what the plots need."""

    name: str
    description: str
    properties: dict  # JSON-ready, see docs/EVALUATION.md
    curves: dict[str, M.RocResult]  # "attack/<judge>", "kvfa"
    pose: dict[str, tuple[np.ndarray, np.ndarray]]  # yaw/pitch/roll/mouth_ratio -> (original, virtual)
    grid: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (original, key A, key B) photos
    seconds: float


@dataclass(frozen=True)
class EvalResult:
    methods: list[MethodResult]
    unavailable: dict[str, str]
    counts: dict[str, int]
    judge_versions: dict[str, str]
    seconds: float
    originals: dict = field(default_factory=dict)  # judge face-found rates on the genuine photos


class _ImageStore:
    """Distinct images by content hash -> row; YuNet + SFace here, judges in subprocesses."""

    def __init__(self, workdir: Path, judges: JudgeRunner, detector, encoder) -> None:
        self.dir = Path(workdir) / "images"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.judges = judges
        self.detector, self.encoder = detector, encoder
        self.rows: dict[str, int] = {}
        self.found: list[bool] = []
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
        row = self.rows.get(h)
        if row is not None:
            return row
        row = len(self.found)
        self.rows[h] = row
        path = self.dir / f"{h}.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 0])
        self._paths.append(str(path))
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
        table = self.judges.collect(progress=progress)
        if len(table.dlib_found) != len(self.found):
            raise RuntimeError(f"judges returned {len(table.dlib_found)} rows for {len(self.found)} images")
        return np.asarray(self.found, bool), emb, table


@dataclass
class _Rows:
    """Store rows of one method's images (-1 where the method failed on the photo)."""

    a: np.ndarray  # (N,) every photo with its identity's key A
    b: np.ndarray  # (N,) photos with b_key under key B, -1 elsewhere
    recovered: np.ndarray | None = None  # (N, D) recover(virtual_a, key A), nan rows where None
    recovered_wrong: np.ndarray | None = None  # (N, D) recover(virtual_a, wrong key)
    templates: np.ndarray | None = None  # (N, D) method.enroll(original)
    grid: list = field(default_factory=list)
    seconds: float = 0.0  # in method.anonymize
    recover_seconds: float = 0.0  # in method.recover (twice per photo) and method.enroll
    failures: int = 0


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
                grid_ids: set[int], bar) -> _Rows:
    n = len(es.photos)
    rows = _Rows(a=np.full(n, -1, np.int64), b=np.full(n, -1, np.int64))
    rec, rec_wrong, tmpl = [], [], []
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
            tmpl.append(_safe(method.enroll, photo.copy()) if method.enroll is not None else None)
            rows.recover_seconds += time.perf_counter() - t
        if i in grid_ids and va is not None and vb is not None:
            rows.grid.append((photo, va, vb))
        bar.update(1)
    if method.recover is not None:
        rows.recovered, rows.recovered_wrong = _stack(rec), _stack(rec_wrong)
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
        store = _ImageStore(workdir, judges, detector, encoder)
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
        jbar = tqdm(total=judges.n_submitted, desc="judges (dlib, FaceMesh)", unit="img", disable=not progress)
        yunet, sface, table = store.finish(progress=jbar.update)
        jbar.close()

    feats = _Features(yunet, sface, table)
    labels = es.labels
    orig = feats.take(orig_rows)
    results = [
        _properties(m, per_method[m.name], feats, orig, labels, es, options) for m in methods
    ]
    originals = {
        "face_found": {
            "yunet": M.share(orig["yunet"]).to_json(),
            "dlib": M.share(orig["dlib"][0]).to_json(),
            "facemesh": M.share(orig["mesh"]).to_json(),
        }
    }
    return EvalResult(results, dict(unavailable or {}), es.counts(), dict(judge_versions or {}),
                      time.perf_counter() - t0, originals)


class _Features:
    """Per-row judge outputs with a ``take(rows)`` that maps -1 (no image) to 'no face'."""

    def __init__(self, yunet: np.ndarray, sface: np.ndarray, table: JudgeTable) -> None:
        self.cols = {
            "yunet": yunet,
            "sface_emb": sface,
            "dlib_found": table.dlib_found,
            "dlib_emb": table.dlib_emb,
            "mesh": table.mesh_found,
            "yaw": table.yaw, "pitch": table.pitch, "roll": table.roll,
            "mouth_ratio": table.mouth_ratio, "eye_ratio": table.eye_ratio,
        }

    def take(self, rows: np.ndarray) -> dict:
        ok = rows >= 0
        r = np.where(ok, rows, 0)
        out = {}
        for k, v in self.cols.items():
            x = v[r].copy()
            if x.dtype == bool:
                x &= ok
            else:
                x[~ok] = np.nan
            out[k] = x
        # per judge: (found (N,), embedding (N, 128))
        out["sface"] = (out["yunet"], out["sface_emb"])
        out["dlib"] = (out["dlib_found"], out["dlib_emb"])
        return out


def _sim(judge: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity matrix (len(a), len(b)): cosine for SFace, -L2 for dlib. nan rows stay nan."""
    if judge == "sface":
        return a @ b.T
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return -np.sqrt(np.maximum(sq, 0))


def _sim_pairs(judge: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise similarity of paired embeddings (P, D) x (P, D) -> (P,)."""
    if judge == "sface":
        return (a * b).sum(1)
    return -np.linalg.norm(a - b, axis=1)


def _match(judge: str, s: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return s >= SFACE_THRESHOLD if judge == "sface" else s > -DLIB_THRESHOLD


def _properties(method: Method, rows: _Rows, feats: _Features, orig: dict, labels: np.ndarray,
                es: EvalSet, o: EvalOptions) -> MethodResult:
    va, vb = feats.take(rows.a), feats.take(rows.b)
    pairs = es.same_pairs
    i, j = pairs[:, 0], pairs[:, 1]
    bidx = es.b_index
    diff_id = labels[:, None] != labels[None, :]
    props: dict = {
        "failures": rows.failures,
        "seconds": {"anonymize": round(rows.seconds, 2), "recover_and_enroll": round(rows.recover_seconds, 2),
                    "anonymize_calls": int((rows.a >= 0).sum() + (rows.b >= 0).sum())},
    }
    anon_o, anon_p, div, cons, unl = {}, {}, {}, {}, {}
    curves: dict[str, M.RocResult] = {}
    for judge in JUDGES:
        fo, eo = orig[judge]
        fa, ea = va[judge]
        fb, eb = vb[judge]
        # anonymity vs the original photo: a virtual with no face the judge can find is "different"
        same = fa & _match(judge, _sim_pairs(judge, eo, ea))
        anon_o[judge] = M.share(~same[fo]).to_json()
        # anonymity vs another genuine photo of the same person
        s_ij = _sim_pairs(judge, ea[i], eo[j])
        anon_p[judge] = M.share((~(fa[i] & _match(judge, s_ij)))[fo[j]]).to_json()
        # attacker's ROC: virtual vs genuine photos (genuine = same person, other photo)
        both = fa[i] & fo[j]
        sm = _sim(judge, np.nan_to_num(ea), np.nan_to_num(eo))
        imp_mask = diff_id & fa[:, None] & fo[None, :]
        curves[f"attack/{judge}"] = M.roc_curve(s_ij[both], sm[imp_mask])
        # diversity: same photo, keys A and B
        ok = fa[bidx] & fb[bidx]
        s_ab = _sim_pairs(judge, ea[bidx], eb[bidx])
        div[judge] = M.share(~_match(judge, s_ab[ok])).to_json()
        # consistency: same person, same key, two photos (each unordered pair once)
        u = i < j
        ok = fa[i[u]] & fa[j[u]]
        cons[judge] = M.share(_match(judge, _sim_pairs(judge, ea[i[u]], ea[j[u]]))[ok]).to_json()
        # unlinkability: key A vs key B virtuals; mated = same person, other photo
        sab = _sim(judge, np.nan_to_num(ea), np.nan_to_num(eb[bidx]))  # (N, B)
        valid = fa[:, None] & fb[bidx][None, :]
        same_person = ~diff_id[:, bidx] & (np.arange(len(labels))[:, None] != bidx[None, :])
        res = M.dsys(sab[valid & same_person], sab[valid & diff_id[:, bidx]])
        unl[judge] = res.to_json()
    props["anonymity"] = {"vs_original": anon_o, "vs_other_photo": anon_p}
    props["attack"] = {
        j: {"auc": M._json_float(c.auc), "n_genuine": c.n_genuine, "n_impostor": c.n_impostor}
        for j, c in ((j, curves[f"attack/{j}"]) for j in JUDGES)
    }
    props["diversity"] = div
    props["consistency"] = cons
    props["unlinkability"] = unl

    # detectability: of the faces YuNet found in the originals, the share it finds in the virtuals
    props["detectability"] = {
        "yunet": M.share(va["yunet"][orig["yunet"]]).to_json(),
        "dlib": M.share(va["dlib_found"][orig["dlib_found"]]).to_json(),
        "facemesh": M.share(va["mesh"][orig["mesh"]]).to_json(),
    }

    # synchronism (MediaPipe FaceMesh): original vs key-A virtual
    sync: dict = {}
    pose: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for a in ("yaw", "pitch", "roll"):
        sync[a] = M.abs_error(orig[a], va[a], period=360.0).to_json()
        pose[a] = (orig[a], va[a])
    for r in ("mouth_ratio", "eye_ratio"):
        sync[f"{r}_corr"] = M.correlation(orig[r], va[r]).to_json()
        sync[f"{r}_abs_error"] = M.abs_error(orig[r], va[r]).to_json()
        pose[r] = (orig[r], va[r])
    props["synchronism"] = sync

    props["authentication"] = None
    props["wrong_key_acceptance"] = None
    if rows.recovered is not None:
        props["authentication"], props["wrong_key_acceptance"], kv = _kvfa(method, rows, orig, labels, pairs, o)
        curves["kvfa"] = kv
    return MethodResult(method.name, method.description, props, curves, pose, rows.grid, rows.seconds)


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x / n


def _cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _unit(a) @ _unit(b).T


def _kvfa(method: Method, rows: _Rows, orig: dict, labels: np.ndarray, pairs: np.ndarray,
          o: EvalOptions) -> tuple[dict, dict, M.RocResult]:
    """Authentication with the right key and acceptance of wrong keys, scored by ``method.scores``."""
    tmpl = rows.templates if rows.templates is not None else orig["sface_emb"]
    r, w = rows.recovered, rows.recovered_wrong
    if r.shape[1] != tmpl.shape[1]:
        raise ValueError(
            f"{method.name}: recover() gives {r.shape[1]}-D embeddings but templates are {tmpl.shape[1]}-D; "
            "give the Method an enroll() that makes matching templates"
        )
    okr, okw, okt = (np.isfinite(x).all(1) for x in (r, w, tmpl))
    score = method.scores or _cosine_scores
    # (N, N) score matrices; rows / columns without an embedding are masked out below.
    # Missing rows are filled with a unit vector so custom score functions see valid input.
    fill = np.zeros(tmpl.shape[1], np.float32)
    fill[0] = 1.0
    t_in = np.where(okt[:, None], tmpl, fill)
    rt = np.asarray(score(np.where(okr[:, None], r, fill), t_in), np.float64)
    wt = np.asarray(score(np.where(okw[:, None], w, fill), t_in), np.float64)
    i, j = pairs[:, 0], pairs[:, 1]
    # a failed recovery (no face found in the virtual photo) is a rejection, not a skipped pair
    floor = float(np.min(rt[okr][:, okt])) - 1.0 if okr.any() and okt.any() else -1.0
    genuine = np.where(okr[i], rt[i, j], floor)[okt[j]]
    imp_mask = (labels[:, None] != labels[None, :]) & okr[:, None] & okt[None, :]
    impostor = rt[imp_mask]
    roc = M.roc_curve(genuine, impostor)
    auth = {"auc": M._json_float(roc.auc), "recovered": M.share(okr).to_json()}
    for far in o.fars:
        auth[f"tar_at_far_{far:g}"] = M.tar_at_far(genuine, impostor, far).to_json()
    if method.threshold is not None:
        thr, source = float(method.threshold), "method"
    else:
        thr, source = M.tar_at_far(genuine, impostor, o.fars[0]).threshold, f"far_{o.fars[0]:g}"
    auth["operating"] = {
        "threshold": thr,
        "source": source,
        "tar": M._json_float(float(np.mean(genuine >= thr)) if genuine.size else float("nan")),
        "far": M._json_float(float(np.mean(impostor >= thr)) if impostor.size else float("nan")),
    }
    # wrong key: the person's photo recovered with a key that is not theirs, vs their template
    accepted = okw[i] & (wt[i, j] >= thr)  # a failed recovery is a rejection here too
    wrong = M.share(accepted[okt[j]]).to_json()
    wrong.update({"threshold": thr, "far_at_threshold": auth["operating"]["far"]})
    return auth, wrong, roc
