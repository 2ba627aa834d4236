"""Every property of DESIGN.md's table, from per-image judge outputs (no images, no judges here).

Inputs are rows into the evaluation's image store: originals, each method's key-A and key-B
virtuals (-1 where the method failed), and, for methods with ``recover``, the recovered
embeddings. Definitions: docs/EVALUATION.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kfaar.eval import metrics as M
from kfaar.eval.judges import JudgeTable
from kfaar.eval.methods import Method
from kfaar.eval.protocol import EvalSet

SFACE_THRESHOLD = 0.363  # cosine >= this: same person (OpenCV's SFace operating point)
DLIB_THRESHOLD = 0.6  # L2 < this: same person (dlib's documented operating point)
JUDGES = ("dlib", "sface")
# KVFA is measured again on the key-A virtual saved as a JPEG of this quality (libjpeg's
# 4:2:0 default; PIL's default quality and about what photo-sharing services re-encode at)
KVFA_JPEG_QUALITY = 75


@dataclass
class MethodRows:
    """Store rows of one method's images (-1 where the method failed on the photo)."""

    a: np.ndarray  # (N,) every photo with its identity's key A
    b: np.ndarray  # (N,) photos with b_key under key B, -1 elsewhere
    recovered: np.ndarray | None = None  # (N, D) recover(virtual_a, key A), nan rows where None
    recovered_wrong: np.ndarray | None = None  # (N, D) recover(virtual_a, wrong key)
    recovered_jpeg: np.ndarray | None = None  # (N, D) recover(virtual_a as JPEG KVFA_JPEG_QUALITY, key A)
    recovered_plain: np.ndarray | None = None  # (N, D) recover(the original photo, key A): a face with no code
    templates: np.ndarray | None = None  # (N, D) method.enroll(original)
    grid: list = field(default_factory=list)
    seconds: float = 0.0  # in method.anonymize
    recover_seconds: float = 0.0  # in method.recover (four times per photo) and method.enroll
    failures: int = 0


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


class Features:
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


def method_properties(method: Method, rows: MethodRows, feats: Features, orig: dict, labels: np.ndarray,
                      es: EvalSet, fars: tuple[float, ...]) -> MethodResult:
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
    props["attack"] = {}
    for judge in JUDGES:
        c = curves[f"attack/{judge}"]
        props["attack"][judge] = {"auc": M.json_float(c.auc), "n_genuine": c.n_genuine, "n_impostor": c.n_impostor}
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
    props["code_free_acceptance"] = None
    if rows.recovered is not None:
        props["authentication"], props["wrong_key_acceptance"], kv = kvfa(method, rows, orig, labels, pairs, fars)
        curves["kvfa"] = kv
        if rows.recovered_plain is not None:
            props["code_free_acceptance"] = code_free(method, rows, orig, pairs, props["wrong_key_acceptance"]["threshold"])
    return MethodResult(method.name, method.description, props, curves, pose, rows.grid, rows.seconds)


def _unit(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return x / n


def _cosine_scores(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _unit(a) @ _unit(b).T


def kvfa(method: Method, rows: MethodRows, orig: dict, labels: np.ndarray, pairs: np.ndarray,
         fars: tuple[float, ...]) -> tuple[dict, dict, M.RocResult]:
    """Authentication with the right key and acceptance of wrong keys, scored by ``method.scores``."""
    tmpl = _templates(rows, orig)
    r, w = rows.recovered, rows.recovered_wrong
    if r.shape[1] != tmpl.shape[1]:
        raise ValueError(
            f"{method.name}: recover() gives {r.shape[1]}-D embeddings but templates are {tmpl.shape[1]}-D; "
            "give the Method an enroll() that makes matching templates"
        )
    okr = np.isfinite(r).all(1)
    scores, okt = _template_scores(method, tmpl)

    def genuine_impostor(e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ok = np.isfinite(e).all(1)
        st = scores(e, ok)
        # a failed recovery (no face found in the virtual photo) is a rejection, not a skipped pair
        floor = float(np.min(st[ok][:, okt])) - 1.0 if ok.any() and okt.any() else -1.0
        genuine = np.where(ok[i], st[i, j], floor)[okt[j]]
        return genuine, st[(labels[:, None] != labels[None, :]) & ok[:, None] & okt[None, :]]

    i, j = pairs[:, 0], pairs[:, 1]
    genuine, impostor = genuine_impostor(r)
    roc = M.roc_curve(genuine, impostor)
    auth = {"auc": M.json_float(roc.auc), "recovered": M.share(okr).to_json()}
    for far in fars:
        auth[f"tar_at_far_{far:g}"] = M.tar_at_far(genuine, impostor, far).to_json()
    if method.threshold is not None:
        thr, source = float(method.threshold), "method"
    else:
        thr, source = M.tar_at_far(genuine, impostor, fars[0]).threshold, f"far_{fars[0]:g}"
    auth["operating"] = _operating(genuine, impostor, thr)
    auth["operating"]["source"] = source
    if rows.recovered_jpeg is not None:  # the same, on the virtuals re-encoded as JPEG
        gj, ij = genuine_impostor(rows.recovered_jpeg)
        auth["after_jpeg"] = {"quality": KVFA_JPEG_QUALITY,
                              "recovered": M.share(np.isfinite(rows.recovered_jpeg).all(1)).to_json(),
                              **{f"tar_at_far_{far:g}": M.tar_at_far(gj, ij, far).to_json() for far in fars},
                              "operating": _operating(gj, ij, thr)}
    # wrong key: the person's photo recovered with a key that is not theirs, vs their template
    wrong = _pair_acceptance(scores, okt, w, pairs, thr)
    wrong.update({"threshold": thr, "far_at_threshold": auth["operating"]["far"]})
    return auth, wrong, roc


def code_free(method: Method, rows: MethodRows, orig: dict, pairs: np.ndarray, thr: float) -> dict:
    """An ordinary photo of the person, read with their key, against their template from another
    photo (each same-person pair): what a verifier accepts when shown a face with no code in it.
    A failed recovery (no face, or refused for carrying no code) is a rejection."""
    scores, okt = _template_scores(method, _templates(rows, orig))
    out = _pair_acceptance(scores, okt, rows.recovered_plain, pairs, thr)
    out.update({"threshold": thr, "recovered": M.share(np.isfinite(rows.recovered_plain).all(1)).to_json()})
    return out


def _templates(rows: MethodRows, orig: dict) -> np.ndarray:
    """The method's own templates where it enrolls, else SFace's of the originals."""
    return rows.templates if rows.templates is not None else orig["sface_emb"]


def _template_scores(method: Method, tmpl: np.ndarray):
    """(``scores(e, ok)``: the (N, M) float64 scores of embeddings against ``tmpl`` by
    ``method.scores``, and which templates exist). Rows and templates without an embedding are
    filled with a unit vector so custom score functions see valid input; callers mask them out."""
    okt = np.isfinite(tmpl).all(1)
    score = method.scores or _cosine_scores
    fill = np.zeros(tmpl.shape[1], np.float32)
    fill[0] = 1.0
    t_in = np.where(okt[:, None], tmpl, fill)

    def scores(e: np.ndarray, ok: np.ndarray) -> np.ndarray:
        return np.asarray(score(np.where(ok[:, None], e, fill), t_in), np.float64)

    return scores, okt


def _pair_acceptance(scores, okt: np.ndarray, e: np.ndarray, pairs: np.ndarray, thr: float) -> dict:
    """The share of same-person pairs (i, j), template j present, whose embedding e[i] scores
    >= ``thr`` against template j; a missing e[i] (a failed recovery) is a rejection."""
    ok = np.isfinite(e).all(1)
    i, j = pairs[:, 0], pairs[:, 1]
    accepted = ok[i] & (scores(e, ok)[i, j] >= thr)
    return M.share(accepted[okt[j]]).to_json()


def _operating(genuine: np.ndarray, impostor: np.ndarray, thr: float) -> dict:
    """TAR / FAR at a fixed threshold (accept if score >= threshold)."""
    return {
        "threshold": thr,
        "tar": M.json_float(float(np.mean(genuine >= thr)) if genuine.size else float("nan")),
        "far": M.json_float(float(np.mean(impostor >= thr)) if impostor.size else float("nan")),
    }
