"""Recovery's re-alignment search (``search``, both engines), its candidates read a cell at a time.

Both engines' ``realign`` score thousands of candidate photo->crop alignments of a virtual
face (``(tx, ty, scale, angle)``: a shift in crop pixels after a scale and rotation about
the crop centre, on top of the detector's alignment) by the code carrier's pilot match.
Warping the photo once per candidate made recovery of a full photo spend most of its time
in ~5,000 small warps. Candidates that share a scale and angle differ by a shift only, so
the photo is warped once per (scale, angle, sub-pixel part of the shift) onto a canvas wide
enough for all their shifts, and each candidate is a window of it: the
same bilinear samples of the photo as its own warp, up to the warp's fixed-point coordinate
rounding (1/32 px: on a virtual photo 0.3% of the pixels of the first stage's candidates
move, by a few grey levels at sharp edges; ``tests/runtime/test_realign.py``). Scored by the
carrier's pilot rows (``pilot_scores``), a candidate is only its cells' 2 x 2 sums, which the
cell-sum kernel (:func:`kfaar.ops.warp_cell_sums`) reads from a canvas's window, or, for a
candidate sharing its canvas with few others, from the photo itself, exactly as its own warp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

Params = tuple[float, float, float, float]  # (tx, ty, scale, angle in degrees)
Candidates = Sequence[Params] | np.ndarray  # (N, 4) rows of Params
Grid = tuple[tuple[list[float], list[float], list[float]], ...]  # per stage: (shifts px, scales, angles deg)

# candidates kept from each stage for the next: landmarks re-detected on a virtual face can be
# tens of pixels off (YuNet reads the new interior), and the best coarse candidate is not
# always the one that refines best
BEAM = 6


def _on_base(base: np.ndarray, scale: np.ndarray, angle: np.ndarray, crop_size: int) -> np.ndarray:
    """(G, 2, 3) photo -> crop matrices: a scale and rotation (degrees) about the crop centre,
    with cv2.getRotationMatrix2D's arithmetic, on top of the (2, 3) alignment ``base``."""
    c = (crop_size - 1) / 2.0
    rad = np.asarray(angle, np.float64) * (np.pi / 180)
    alpha, beta = np.cos(rad) * scale, np.sin(rad) * scale
    t = np.stack([np.stack([alpha, beta, (1 - alpha) * c - beta * c], -1),
                  np.stack([-beta, alpha, beta * c + (1 - alpha) * c], -1)], -2)
    b = np.asarray(base, np.float64)
    m = np.empty_like(t)
    m[..., :2] = t[..., :2] @ b[:, :2]
    m[..., 2] = t[..., :2] @ b[:, 2] + t[..., 2]
    return m


def candidate_matrix(base: np.ndarray, p: Params, crop_size: int) -> np.ndarray:
    """(3, 3) photo -> crop matrix of candidate ``p`` on top of the (2, 3) alignment ``base``."""
    out = np.eye(3)
    out[:2] = _on_base(base, np.array([p[2]]), np.array([p[3]]), crop_size)[0]
    out[:2, 2] += p[:2]
    return out


@dataclass(frozen=True)
class PilotRows:
    """The code carrier's pilot read on the cells where the crop's mask is 1 (from
    ``CodeCarrier.pilot_rows``; the ONNX set's params carry them): a candidate's pilot match is
    the cosine of ``rows`` times its cells' 2 x 2 means (a ``2 * res``-px crop in [-1, 1]) to
    ``pilot``. Scoring this way takes each candidate's cells straight from its canvas or the
    photo: no crop of thousands is materialised, converted to float or run through the graph."""

    rows: np.ndarray  # (P, 3, n) float
    cells: np.ndarray  # (n,) int: indices into the res x res grid, row-major
    pilot: np.ndarray  # (P,)
    res: int

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], res: int) -> PilotRows:
        return cls(np.asarray(arrays["pilot_rows"], np.float64), np.asarray(arrays["pilot_cells"], np.int64),
                   np.asarray(arrays["pilot"], np.float64), int(res))

    @cached_property
    def _weights(self) -> np.ndarray:
        """(n * 3, P) float32: the rows in the layout of (n, 3) cell means flattened."""
        return self.rows.transpose(2, 1, 0).reshape(-1, len(self.pilot)).astype(np.float32)

    def match(self, means: np.ndarray) -> np.ndarray:
        """(N, n, 3) cell means -> (N,) cosine of the pilot read to the pilot vector."""
        read = means.reshape(len(means), -1) @ self._weights
        norm = np.linalg.norm(read, axis=1) * np.float32(np.linalg.norm(self.pilot))
        return (read @ self.pilot.astype(np.float32)) / np.maximum(norm, np.float32(1e-8))


@dataclass(frozen=True)
class _Canvases:
    """Candidates grouped by scale, angle and the sub-pixel part of their shift: each group's
    members are windows of one warp of the photo (a canvas as wide as their shifts), candidate
    ``i`` the window at (``x0[i]``, ``y0[i]``) of canvas ``group[i]``."""

    order: np.ndarray  # (N,) the candidates, group by group
    bounds: np.ndarray  # (G + 1,) group g is order[bounds[g]:bounds[g + 1]]
    matrix: np.ndarray  # (G, 2, 3) photo -> canvas
    size: np.ndarray  # (G, 2) canvas width, height
    group: np.ndarray  # (N,) each candidate's canvas
    x0: np.ndarray  # (N,)
    y0: np.ndarray  # (N,)

    def members(self, g: int) -> np.ndarray:
        return self.order[self.bounds[g]:self.bounds[g + 1]]

    def warp(self, rgb: np.ndarray, g: int) -> np.ndarray:
        """(h, w, 3) canvas ``g`` of ``rgb``, bilinear, its border replicated (:func:`kfaar.ops.warp_affine`)."""
        from kfaar.ops import warp_affine

        return warp_affine(rgb, self.matrix[g], (int(self.size[g, 0]), int(self.size[g, 1])))

    def own_matrices(self, which: np.ndarray) -> np.ndarray:
        """(len(which), 2, 3) candidates ``which``'s own photo -> crop matrices: their canvas's,
        moved by their window's offset."""
        m = self.matrix[self.group[which]]
        m[:, 0, 2] -= self.x0[which]
        m[:, 1, 2] -= self.y0[which]
        return m


def _canvases(base: np.ndarray, params: Candidates, crop_size: int, size: int) -> _Canvases:
    """The canvases holding the ``size``-px candidates ``params`` (on top of ``base``)."""
    k = size / crop_size
    p = np.asarray(params, np.float64).reshape(-1, 4)
    if not len(p):
        z = np.zeros(0, np.int64)
        return _Canvases(z, np.zeros(1, np.int64), np.zeros((0, 2, 3)), np.zeros((0, 2), np.int64), z, z, z)
    shift = k * p[:, :2]  # the shifts in small-crop pixels
    whole = np.floor(shift + 1e-9)
    frac = np.round(shift - whole, 9)
    whole = whole.astype(np.int64)
    groups, which = np.unique(np.column_stack([p[:, 2:], frac]), axis=0, return_inverse=True)
    which = which.reshape(-1)
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(len(groups) + 1))
    lo = np.minimum.reduceat(whole[order], bounds[:-1])  # (G, 2) each canvas's least and largest shift
    hi = np.maximum.reduceat(whole[order], bounds[:-1])
    # each group's photo -> small-crop matrix at zero shift, then moved by hi + frac: the canvas
    # pixel q - whole + hi is the candidate's pixel q
    m = k * _on_base(base, groups[:, 0], groups[:, 1], crop_size)
    m[:, :, 2] += hi + groups[:, 2:]
    offset = hi[which] - whole
    return _Canvases(order, bounds, m, size + (hi - lo), which, offset[:, 0], offset[:, 1])


def _windows(rgb: np.ndarray, base: np.ndarray, params: Candidates, crop_size: int, size: int
             ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per canvas: (the candidates it holds, the canvas (h, w, 3) uint8, their windows' x0 and y0)."""
    c = _canvases(base, params, crop_size, size)
    for g in range(len(c.matrix)):
        members = c.members(g)
        yield members, c.warp(rgb, g), c.x0[members], c.y0[members]


def warp_candidates(rgb: np.ndarray, base: np.ndarray, params: Candidates, crop_size: int, size: int, *,
                    channels_first: bool = False) -> np.ndarray:
    """(N, size, size, 3) uint8: ``rgb`` warped by each candidate alignment in ``params`` (in
    their order), shrunk from ``crop_size`` to ``size`` px, as
    ``warp_affine(rgb, (down @ candidate_matrix(base, p, crop_size))[:2], (size, size))`` per
    candidate would give them (:func:`kfaar.ops.warp_affine`: bilinear, the border replicated;
    up to the canvases' coordinate rounding, above). ``channels_first``: (N, 3, size, size)
    instead, as a network takes them (no transposing copy of thousands of crops)."""
    c = rgb.shape[2]
    out = np.empty((len(params), c, size, size) if channels_first else (len(params), size, size, c), np.uint8)
    for members, canvas, x0, y0 in _windows(rgb, base, params, crop_size, size):
        if len(members) == 1:  # the canvas is the candidate
            out[members[0]] = canvas.transpose(2, 0, 1) if channels_first else canvas
            continue
        windows = np.lib.stride_tricks.sliding_window_view(canvas, (size, size), axis=(0, 1))  # (h', w', 3, s, s)
        picked = windows[y0, x0]  # (n, 3, s, s)
        out[members] = picked if channels_first else picked.transpose(0, 2, 3, 1)
    return out


# a canvas is warped for candidates that share one at least this many times; the rest are
# sampled straight from the photo (the cell-sum kernel reads only their cells' pixels)
CANVAS_MIN_MEMBERS = 4


def pilot_scores(rgb: np.ndarray, base: np.ndarray, params: Candidates, crop_size: int,
                 pilot: PilotRows) -> np.ndarray:
    """(N,) the pilot match of each candidate of ``params``, as the pilot-match graph would score
    ``warp_candidates(..., 2 * pilot.res)``, from the candidates' cells alone
    (:func:`kfaar.ops.warp_cell_sums`): windows of a shared canvas where many candidates share
    one, else sampled from the photo itself, as each candidate's own warp would."""
    from kfaar.ops import warp_cell_sums

    cells = pilot.cells.astype(np.int32)
    sums = np.empty((len(params), len(cells), 3), np.uint16)
    c = _canvases(base, params, crop_size, 2 * pilot.res)
    counts = np.diff(c.bounds)
    for g in np.flatnonzero(counts >= CANVAS_MIN_MEMBERS):
        members = c.members(g)
        canvas = c.warp(rgb, g)
        windows = np.zeros((len(members), 2, 3))  # whole-pixel shifts: canvas pixel (x0, y0) -> crop (0, 0)
        windows[:, 0, 0] = windows[:, 1, 1] = 1.0
        windows[:, 0, 2], windows[:, 1, 2] = -c.x0[members], -c.y0[members]
        sums[members] = warp_cell_sums(canvas, windows, cells, pilot.res)
    alone = np.flatnonzero(counts[c.group] < CANVAS_MIN_MEMBERS)
    if len(alone):
        sums[alone] = warp_cell_sums(np.ascontiguousarray(rgb), c.own_matrices(alone), cells, pilot.res)
    return pilot.match(sums.astype(np.float32) * np.float32(1 / 510) - np.float32(1))


def _around(bases: list[Params], shifts: list[float], scales: list[float], angles: list[float]) -> np.ndarray:
    """(N, 4): every (tx + dx, ty + dy, scale * sc, angle + ang) around each of ``bases``, each
    once, in ascending (tx, ty, scale, angle) order."""
    b = np.asarray(bases, np.float64).reshape(-1, 1, 4)
    dy, dx, sc, ang = (g.reshape(1, -1) for g in np.meshgrid(shifts, shifts, scales, angles, indexing="ij"))
    grid = np.stack([b[..., 0] + dx, b[..., 1] + dy, b[..., 2] * sc, b[..., 3] + ang], -1).reshape(-1, 4)
    return np.unique(grid, axis=0)


def search(rgb: np.ndarray, matrix: np.ndarray, crop_size: int, size: int, grid: Grid,
           score: Callable[[np.ndarray], np.ndarray] | PilotRows, *, beam: int = BEAM,
           channels_first: bool = False) -> tuple[np.ndarray, float]:
    """The coarse-to-fine alignment search both engines' ``realign`` run: at each stage of
    ``grid``, every combination of its shifts (x and y), scales and angles around each of the
    ``beam`` best candidates so far is scored: by ``pilot_scores`` where ``score`` is the
    carrier's ``PilotRows``, else warped (``warp_candidates``, ``size`` px) and scored by
    ``score`` ((N, ...) uint8 crops -> (N,) pilot match). Returns the best candidate's (2, 3)
    photo -> crop matrix on top of ``matrix`` and its score."""
    if isinstance(score, PilotRows) and size != 2 * score.res:
        raise ValueError(f"search: the pilot rows read {2 * score.res}-px candidates, got size {size}")
    kept: list[tuple[float, Params]] = [(-np.inf, (0.0, 0.0, 1.0, 0.0))]
    for shifts, scales, angles in grid:
        params = _around([b for _, b in kept], shifts, scales, angles)
        if isinstance(score, PilotRows):
            s = pilot_scores(rgb, matrix, params, crop_size, score)
        else:
            s = np.asarray(score(warp_candidates(rgb, matrix, params, crop_size, size, channels_first=channels_first)))
        top = np.argsort(-s, kind="stable")[:beam]
        kept = sorted(kept + [(float(s[i]), tuple(params[i].tolist())) for i in top], key=lambda t: -t[0])[:beam]
    best_score, best = kept[0]
    return candidate_matrix(matrix, best, crop_size)[:2], best_score
