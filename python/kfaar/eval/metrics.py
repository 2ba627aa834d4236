"""Metric functions on score arrays: pure numpy, no judges, no images.

Conventions: a *score* is a similarity (higher = more alike); a pair is accepted when
``score > threshold``. dlib distances enter as ``-L2`` so the same code serves both judges.
Every function returns a frozen ``…Result`` dataclass; empty inputs give ``nan`` values and
``n = 0`` rather than raising, because a method may leave a property undefined (a black box
has no face to judge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _finite(x: np.ndarray | list[float], name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size and not np.all(np.isfinite(a)):
        raise ValueError(f"{name}: expected finite scores, got {int((~np.isfinite(a)).sum())} nan/inf values")
    return a


@dataclass(frozen=True)
class ShareResult:
    """Share of ``n`` cases that satisfy a condition; ``value`` is nan when ``n == 0``."""

    value: float
    n: int

    def to_json(self) -> dict:
        return {"value": json_float(self.value), "n": self.n}


def share(mask: np.ndarray | list[bool]) -> ShareResult:
    m = np.asarray(mask, dtype=bool).ravel()
    return ShareResult(float(m.mean()) if m.size else float("nan"), int(m.size))


@dataclass(frozen=True)
class RocResult:
    """ROC curve, downsampled to at most a few hundred points for plots and JSON."""

    far: np.ndarray  # (P,) false accept rate, decreasing with threshold
    tar: np.ndarray  # (P,) true accept rate
    thresholds: np.ndarray  # (P,) accept when score > threshold
    auc: float  # P(genuine score > impostor score), ties counted half
    n_genuine: int
    n_impostor: int

    def to_json(self) -> dict:
        return {
            "auc": json_float(self.auc),
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
            "far": [round(float(v), 6) for v in self.far],
            "tar": [round(float(v), 6) for v in self.tar],
        }


def roc_curve(genuine: np.ndarray, impostor: np.ndarray, *, max_points: int = 400) -> RocResult:
    g = np.sort(_finite(genuine, "genuine"))
    i = np.sort(_finite(impostor, "impostor"))
    if g.size == 0 or i.size == 0:
        e = np.zeros(0)
        return RocResult(e, e, e, float("nan"), int(g.size), int(i.size))
    # Thresholds at every distinct score, plus one below everything (accept all).
    t = np.unique(np.concatenate([g, i]))
    t = np.concatenate([[t[0] - 1.0], t])
    far = 1.0 - np.searchsorted(i, t, side="right") / i.size  # share of impostors > t
    tar = 1.0 - np.searchsorted(g, t, side="right") / g.size
    if t.size > max_points:
        # keep points evenly spaced in log-FAR so the low-FAR end stays resolved
        keep = np.unique(
            np.concatenate(
                [
                    np.linspace(0, t.size - 1, max_points // 2).astype(int),
                    np.searchsorted(-far, -np.geomspace(1.0, 1.0 / i.size, max_points // 2)).clip(0, t.size - 1),
                ]
            )
        )
        far, tar, t = far[keep], tar[keep], t[keep]
    return RocResult(far, tar, t, _auc(g, i), int(g.size), int(i.size))


def _auc(g: np.ndarray, i: np.ndarray) -> float:
    """Mann-Whitney U / (n_g n_i), with average ranks for ties."""
    both = np.concatenate([g, i])
    order = np.argsort(both, kind="mergesort")
    ranks = np.empty(both.size, dtype=np.float64)
    sorted_scores = both[order]
    # average rank over each run of equal scores
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0  # 1-based average rank of each run
    ranks[order] = np.repeat(avg, counts)
    u = ranks[: g.size].sum() - g.size * (g.size + 1) / 2.0
    return float(u / (g.size * i.size))


@dataclass(frozen=True)
class TarAtFarResult:
    """True accept rate at the threshold where the false accept rate first drops to ``far``."""

    far_target: float
    tar: float
    threshold: float
    far: float  # achieved FAR (<= far_target; lower when scores tie)
    n_genuine: int
    n_impostor: int

    def to_json(self) -> dict:
        return {
            "far_target": self.far_target,
            "tar": json_float(self.tar),
            "threshold": json_float(self.threshold),
            "far": json_float(self.far),
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
        }


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> TarAtFarResult:
    """TAR at FAR ``far``: threshold = the smallest impostor score with at most ``far`` above it.

    With n impostors, FAR values below 1/n cannot be resolved; the result then uses the
    largest impostor score as threshold (FAR 0) and says so through ``far``.
    """
    if not 0.0 < far < 1.0:
        raise ValueError(f"far: expected a rate in (0, 1), got {far!r}")
    g = _finite(genuine, "genuine")
    i = np.sort(_finite(impostor, "impostor"))
    if g.size == 0 or i.size == 0:
        return TarAtFarResult(far, float("nan"), float("nan"), float("nan"), int(g.size), int(i.size))
    k = int(np.floor(far * i.size))  # impostors allowed strictly above the threshold
    thr = float(i[i.size - 1 - k]) if k < i.size else float(i[0]) - 1.0
    return TarAtFarResult(
        far_target=far,
        tar=float(np.mean(g > thr)),
        threshold=thr,
        far=float(np.mean(i > thr)),
        n_genuine=int(g.size),
        n_impostor=int(i.size),
    )


@dataclass(frozen=True)
class UnlinkabilityResult:
    """Global linkability D<->sys in [0, 1] (0: unlinkable, 1: fully linkable) and its local curve."""

    dsys: float
    bin_edges: np.ndarray  # (B+1,)
    local_d: np.ndarray  # (B,) D<->(s) per bin
    n_mated: int
    n_non_mated: int

    def to_json(self) -> dict:
        return {"dsys": json_float(self.dsys), "n_mated": self.n_mated, "n_non_mated": self.n_non_mated}


def dsys(mated: np.ndarray, non_mated: np.ndarray, *, omega: float = 1.0, n_bins: int | None = None) -> UnlinkabilityResult:
    """Global unlinkability metric D<->sys of Gomez-Barrero et al.

    M. Gomez-Barrero, J. Galbally, C. Rathgeb, C. Busch, "General Framework to Evaluate
    Unlinkability in Biometric Template Protection Systems", IEEE Trans. Information
    Forensics and Security 13(6):1406-1420, 2018 (online 2017).

    With mated scores (templates of the same subject made with different keys) and
    non-mated scores (different subjects), the local measure at score s is

        D<->(s) = 2 * omega * LR(s) / (1 + omega * LR(s)) - 1   if omega * LR(s) > 1, else 0,

    where LR(s) = p(s | mated) / p(s | non-mated) and omega = P(mated) / P(non-mated) is the
    prior ratio (1: no prior knowledge). Where only mated scores occur, LR is infinite and
    D<->(s) = 1. The global measure weights it by the mated score density:

        D<->sys = integral of p(s | mated) * D<->(s) ds  in [0, 1].

    Densities are histograms on shared bins (``n_bins`` default ``min(100, n_mated // 10)``,
    at least 10), and the integral is the sum over bins of the mated mass times D<->.
    Finite samples bias D<->sys slightly above 0 for identical distributions.
    """
    m = _finite(mated, "mated")
    nm = _finite(non_mated, "non_mated")
    if omega <= 0:
        raise ValueError(f"omega: expected a prior ratio > 0, got {omega!r}")
    if m.size == 0 or nm.size == 0:
        e = np.zeros(0)
        return UnlinkabilityResult(float("nan"), e, e, int(m.size), int(nm.size))
    bins = n_bins if n_bins is not None else max(10, min(100, m.size // 10))
    lo, hi = min(m.min(), nm.min()), max(m.max(), nm.max())
    if hi <= lo:
        hi = lo + 1e-9
    edges = np.linspace(lo, hi, bins + 1)
    pm = np.histogram(m, edges)[0] / m.size  # mass per bin
    pn = np.histogram(nm, edges)[0] / nm.size
    lr = np.divide(pm, pn, out=np.ones_like(pm), where=pn > 0)  # ratio of masses = ratio of densities
    d = np.where(omega * lr > 1, 2 * omega * lr / (1 + omega * lr) - 1, 0.0)
    d[(pn == 0) & (pm > 0)] = 1.0
    return UnlinkabilityResult(float(np.sum(pm * d)), edges, d, int(m.size), int(nm.size))


@dataclass(frozen=True)
class AbsErrorResult:
    """Median and 90th percentile of |a - b| over pairs where both are finite."""

    median: float
    p90: float
    n: int

    def to_json(self) -> dict:
        return {"median": json_float(self.median), "p90": json_float(self.p90), "n": self.n}


def abs_error(a: np.ndarray, b: np.ndarray, *, period: float | None = None) -> AbsErrorResult:
    """|a - b| statistics; with ``period`` (e.g. 360 for degrees) differences wrap to the short way."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"abs_error: a and b must have the same length, got {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    if period is not None:
        d = (d + period / 2) % period - period / 2
    d = np.abs(d)
    if d.size == 0:
        return AbsErrorResult(float("nan"), float("nan"), 0)
    return AbsErrorResult(float(np.median(d)), float(np.percentile(d, 90)), int(d.size))


@dataclass(frozen=True)
class CorrelationResult:
    """Pearson correlation over pairs where both are finite (nan if fewer than 3 or constant)."""

    r: float
    n: int

    def to_json(self) -> dict:
        return {"r": json_float(self.r), "n": self.n}


def correlation(a: np.ndarray, b: np.ndarray) -> CorrelationResult:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"correlation: a and b must have the same length, got {a.size} and {b.size}")
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return CorrelationResult(float("nan"), int(a.size))
    return CorrelationResult(float(np.corrcoef(a, b)[0, 1]), int(a.size))


def json_float(v: float) -> float | None:
    """JSON has no nan: undefined values become null."""
    return None if v is None or not np.isfinite(v) else round(float(v), 6)
