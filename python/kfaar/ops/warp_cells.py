"""Cell sums of warped crops: the code carrier's pilot read for many candidate alignments of
one photo at once (recovery's re-alignment search, :mod:`kfaar.runtime.realign`).

Candidate ``c`` is the crop ``warp_affine(photo, matrices[c], (2 * res, 2 * res))``
(:mod:`kfaar.ops.warp_affine`: OpenCV 4's bilinear warp, the border replicated) would give;
cell ``k`` (row-major in the ``res x res`` grid) is its 2 x 2 block of pixels at rows
``2 * (k // res) + {0, 1}``, columns ``2 * (k % res) + {0, 1}``, and

    out[c, i, ch] = the sum of that block's four uint8 pixels of channel ch, k = cells[i].

The C++ kernel samples only those pixels, with the warp's own fixed-point arithmetic, so its
sums equal the warped crops' bit for bit; a whole-pixel shift (a window of ``photo``) costs a
copy. It has no CUDA twin: it reads a host photo and the search is a host step, so where the
CUDA kernels run (or are asked for) this op runs on the C++ build.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from kfaar.ops import _checks, _dispatch

__all__ = ["warp_cell_sums"]

_UINT8, _FLOAT64, _INT32 = np.dtype(np.uint8), np.dtype(np.float64), np.dtype(np.int32)
MAX_RES = 1 << 14


def _check_call(photo: object, matrices: object, cells: object, res: object) -> tuple[np.ndarray, ...]:
    photo = _checks.checked(photo, "photo", 3, "(height, width, 3)", _UINT8)
    _checks.check_axis(photo, "photo", 2, 3, "3 channels (RGB)")
    matrices = _checks.checked(matrices, "matrices", 3, "(n_candidates, 2, 3)", _FLOAT64)
    _checks.check_axis(matrices, "matrices", 1, 2, "2 rows")
    _checks.check_axis(matrices, "matrices", 2, 3, "3 columns")
    _checks.check_finite(matrices, "matrices")
    cells = _checks.checked(cells, "cells", 1, "(n_cells,)", _INT32)
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)):
        raise TypeError(f"res: expected an int, got {type(res).__name__}")
    if not 1 <= res <= MAX_RES:
        raise ValueError(f"res: expected 1 <= res <= {MAX_RES}, got {res}")
    bad = np.flatnonzero((cells < 0) | (cells >= res * res))
    if len(bad):
        raise ValueError(f"cells: expected indices in [0, res * res = {res * res}), got {cells[bad[0]]} at {bad[0]}")
    return photo, matrices, cells


def warp_cell_sums(photo: np.ndarray, matrices: np.ndarray, cells: np.ndarray, res: int, *,
                   backend: str | None = None) -> np.ndarray:
    """(N, n, 3) uint16: the sums of cells ``cells`` (int32 indices into the ``res x res`` grid)
    of each crop ``warp_affine(photo, matrices[c], (2 * res, 2 * res))`` would give, for a
    uint8 RGB ``photo`` (H, W, 3) and float64 photo -> crop ``matrices`` (N, 2, 3)."""
    photo, matrices, cells = _check_call(photo, matrices, cells, res)
    chosen = _dispatch.resolve("warp_cells", backend)
    if chosen == "ref":
        return _warp_cell_sums_ref(photo, matrices, cells, int(res))
    return _dispatch.native_kernel("warp_cells", chosen)(photo, matrices, cells, int(res))


def _warp_cell_sums_ref(photo: np.ndarray, matrices: np.ndarray, cells: np.ndarray, res: int,
                        warp: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None) -> np.ndarray:
    """Reference twin of the kernel: each crop warped whole, then its cells summed. ``warp(photo,
    matrix, size)`` makes a crop (bilinear, the border replicated): by default the warp's numpy
    reference (``kfaar bench kernels`` passes OpenCV's, its baseline)."""
    from kfaar.ops.warp_affine import _warp_affine_ref

    if warp is None:
        def warp(photo: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
            return _warp_affine_ref(photo, m, size, size, True)

    ci, cj = np.divmod(cells.astype(np.int64), res)
    out = np.empty((len(matrices), len(cells), 3), np.uint16)
    for c, m in enumerate(matrices):
        crop = warp(photo, m, 2 * res).astype(np.uint16)
        blocks = crop[0::2, 0::2] + crop[1::2, 0::2] + crop[0::2, 1::2] + crop[1::2, 1::2]
        out[c] = blocks[ci, cj]
    return out
