"""Recovery's re-alignment search (``search``, both engines), its candidates warped a canvas at a time.

Both engines' ``realign`` score thousands of candidate photo->crop alignments of a virtual
face (``(tx, ty, scale, angle)``: a shift in crop pixels after a scale and rotation about
the crop centre, on top of the detector's alignment) by the code carrier's pilot match.
Warping the photo once per candidate made recovery of a full photo spend most of its time
in ~4,400 small ``cv2.warpAffine`` calls. Candidates that share a scale and angle differ by
a shift only, so here the photo is warped once per (scale, angle, sub-pixel part of the
shift) onto a canvas wide enough for all their shifts, and each candidate is a window of it:
the same bilinear samples of the photo as its own warp, up to the warp's fixed-point
coordinate rounding (1/32 px: on a virtual photo 0.3% of the pixels of the first stage's
candidates move, by a few grey levels at sharp edges; ``tests/runtime/test_realign.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Params = tuple[float, float, float, float]  # (tx, ty, scale, angle in degrees)
Grid = tuple[tuple[list[float], list[float], list[float]], ...]  # per stage: (shifts px, scales, angles deg)

# candidates kept from each stage for the next: landmarks re-detected on a virtual face can be
# tens of pixels off (YuNet reads the new interior), and the best coarse candidate is not
# always the one that refines best
BEAM = 6


def candidate_matrix(base: np.ndarray, p: Params, crop_size: int) -> np.ndarray:
    """(3, 3) photo -> crop matrix of candidate ``p`` on top of the (2, 3) alignment ``base``."""
    import cv2

    c = (crop_size - 1) / 2.0
    t = cv2.getRotationMatrix2D((c, c), p[3], p[2])
    t[:, 2] += p[:2]
    return np.vstack([t, [0, 0, 1]]) @ np.vstack([np.asarray(base, np.float64), [0, 0, 1]])


def warp_candidates(rgb: np.ndarray, base: np.ndarray, params: list[Params], crop_size: int, size: int,
                    flags: int | None = None, *, channels_first: bool = False) -> np.ndarray:
    """(N, size, size, 3) uint8: ``rgb`` warped by each candidate alignment in ``params`` (in
    their order), shrunk from ``crop_size`` to ``size`` px, as
    ``cv2.warpAffine(rgb, (down @ candidate_matrix(base, p, crop_size))[:2], (size, size), flags,
    BORDER_REPLICATE)`` per candidate would give them (``flags``: cv2.INTER_AREA by default,
    which warpAffine samples bilinearly). ``channels_first``: (N, 3, size, size) instead, as a
    network takes them (no transposing copy of thousands of crops)."""
    import cv2

    flags = cv2.INTER_AREA if flags is None else flags
    k = size / crop_size
    down = np.diag([k, k, 1.0])
    p = np.asarray(params, np.float64).reshape(-1, 4)
    shift = k * p[:, :2]  # the shifts in small-crop pixels
    whole = np.floor(shift + 1e-9)
    frac = np.round(shift - whole, 9)
    whole = whole.astype(np.int64)
    c = rgb.shape[2]
    out = np.empty((len(p), c, size, size) if channels_first else (len(p), size, size, c), np.uint8)
    groups, which = np.unique(np.column_stack([p[:, 2:], frac]), axis=0, return_inverse=True)
    for g, (scale, angle, fx, fy) in enumerate(groups):
        members = np.flatnonzero(which.reshape(-1) == g)
        lo, hi = whole[members].min(0), whole[members].max(0)
        # the canvas is warped shifted by hi + frac: its pixel q - whole + hi is the candidate's pixel q
        m = down @ candidate_matrix(base, (0.0, 0.0, float(scale), float(angle)), crop_size)
        m[:2, 2] += (hi[0] + fx, hi[1] + fy)
        w, h = size + int(hi[0] - lo[0]), size + int(hi[1] - lo[1])
        canvas = cv2.warpAffine(rgb, m[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        if len(members) == 1:  # the canvas is the candidate
            out[members[0]] = canvas.transpose(2, 0, 1) if channels_first else canvas
            continue
        windows = np.lib.stride_tricks.sliding_window_view(canvas, (size, size), axis=(0, 1))  # (h', w', 3, s, s)
        x0, y0 = hi[0] - whole[members, 0], hi[1] - whole[members, 1]
        picked = windows[y0, x0]  # (n, 3, s, s)
        out[members] = picked if channels_first else picked.transpose(0, 2, 3, 1)
    return out


def search(rgb: np.ndarray, matrix: np.ndarray, crop_size: int, size: int, grid: Grid,
           score: Callable[[np.ndarray], np.ndarray], *, beam: int = BEAM,
           channels_first: bool = False) -> tuple[np.ndarray, float]:
    """The coarse-to-fine alignment search both engines' ``realign`` run: at each stage of
    ``grid``, every combination of its shifts (x and y), scales and angles around each of the
    ``beam`` best candidates so far is warped (``warp_candidates``, ``size`` px) and scored by
    ``score`` ((N, ...) uint8 crops -> (N,) pilot match); returns the best candidate's (2, 3)
    photo -> crop matrix on top of ``matrix`` and its score."""
    kept: list[tuple[float, Params]] = [(-np.inf, (0.0, 0.0, 1.0, 0.0))]
    for shifts, scales, angles in grid:
        params = sorted({(b[0] + dx, b[1] + dy, b[2] * sc, b[3] + ang)
                         for _, b in kept for dy in shifts for dx in shifts for sc in scales for ang in angles})
        s = np.asarray(score(warp_candidates(rgb, matrix, params, crop_size, size, channels_first=channels_first)))
        top = np.argsort(-s, kind="stable")[:beam]
        kept = sorted(kept + [(float(s[i]), params[i]) for i in top], key=lambda t: -t[0])[:beam]
    best_score, best = kept[0]
    return candidate_matrix(matrix, best, crop_size)[:2], best_score
