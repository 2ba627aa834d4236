"""Affine warps of photos: the alignment of a face to its crop, recovery's crops and the
canvases of its re-alignment search (:mod:`kfaar.runtime.realign`), and the paste of a
virtual face back into its photo (:func:`kfaar.faces.align.paste_into`).

``warp_affine(photo, matrix, (width, height))`` gives what
``cv2.warpAffine(photo, matrix, (width, height), flags=..., borderMode=...)`` gives under
OpenCV 4.11-4.14: output pixel (x, y) is ``photo`` sampled at ``inverse(matrix) @ (x, y, 1)``
(at ``matrix @ (x, y, 1)`` with ``inverse=True``, OpenCV's ``WARP_INVERSE_MAP``), the
coordinates in 1/1024 px rounded to 1/32 px, with OpenCV's weight tables:

- uint8, ``interpolation="linear"``: four 15-bit integer weights summing to 2^15, the result
  rounded to the nearest uint8; ``"cubic"``: sixteen (OpenCV's bicubic table, A = -0.75),
  rounded and saturated. Both the very bytes OpenCV 4 writes.
- float32 (linear only): float weights, the four products summed in OpenCV's scalar order; its
  vectorised interior sums them otherwise and may differ in the last bit (<= 1.2e-7 here).

Outside the photo its taps are the nearest edge pixel (``border="replicate"``) or 0
(``"constant"``). OpenCV 5.0's warpAffine rounds otherwise (a crop: up to 5 grey levels on 60%
of its pixels): kfaar's crops and pasted faces, and so its virtual faces and recovered codes,
are the same whatever OpenCV is installed. The C++ kernel (``csrc/cpu/warp_affine.cpp``) and
the numpy reference below compute the same numbers; like the cell sums it has no CUDA twin
(host photos, host steps).
"""

from __future__ import annotations

import functools

import numpy as np

from kfaar.ops import _checks, _dispatch

__all__ = ["warp_affine"]

_UINT8, _FLOAT32, _FLOAT64 = np.dtype(np.uint8), np.dtype(np.float32), np.dtype(np.float64)
BORDERS = ("replicate", "constant")
INTERPOLATIONS = ("linear", "cubic")
MAX_SIDE = 1 << 20
# OpenCV's fixed point: coordinates in 1/1024 px, rounded to 1/32 px, weights summing to 2^15
_AB_BITS, _INTER_BITS, _COEF_BITS = 10, 5, 15
_TAB = 1 << _INTER_BITS
_ROUND_DELTA = (1 << _AB_BITS) >> (_INTER_BITS + 1)


def _check_call(photo: object, matrix: object, size: object, border: object, interpolation: object
                ) -> tuple[np.ndarray, np.ndarray, int, int]:
    if isinstance(photo, np.ndarray) and photo.ndim == 2:
        photo = photo[:, :, None]
    want = _FLOAT32 if isinstance(photo, np.ndarray) and photo.dtype == _FLOAT32 else _UINT8
    photo = _checks.checked(photo, "photo", 3, "(height, width, channels)", want)
    if photo.shape[2] > 4:
        raise ValueError(f"photo: expected 1 to 4 channels on axis 2, got shape {photo.shape}")
    matrix = _checks.checked(matrix, "matrix", 2, "(2, 3)", _FLOAT64)
    _checks.check_axis(matrix, "matrix", 0, 2, "2 rows")
    _checks.check_axis(matrix, "matrix", 1, 3, "3 columns")
    _checks.check_finite(matrix, "matrix")
    try:
        width, height = size
    except (TypeError, ValueError):
        raise TypeError(f"size: expected (width, height), got {size!r}") from None
    for v in (width, height):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"size: expected (width, height) ints, got {size!r}")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"size: expected 1 <= width, height <= {MAX_SIDE}, got ({width}, {height})")
    if border not in BORDERS:
        raise ValueError(f"border: expected one of {', '.join(BORDERS)}, got {border!r}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation: expected one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    if interpolation == "cubic" and photo.dtype == _FLOAT32:
        raise ValueError("interpolation: cubic is for uint8 photos; a float32 one is warped linearly")
    return photo, matrix, int(width), int(height)


def warp_affine(photo: np.ndarray, matrix: np.ndarray, size: tuple[int, int], *, border: str = "replicate",
                interpolation: str = "linear", inverse: bool = False, backend: str | None = None) -> np.ndarray:
    """``photo`` (H, W, C) uint8 or float32 (C 1 to 4; an (H, W) one is read as C = 1) warped by
    the float64 photo -> output ``matrix`` (2, 3) (output -> photo with ``inverse``) onto ``size``
    = (width, height): a new (height, width, C) array of the photo's type, what OpenCV 4's
    ``cv2.warpAffine`` writes. ``border``: "replicate" (the edge pixels continue) or "constant"
    (0); ``interpolation``: "linear" or, for uint8, "cubic"."""
    flat = isinstance(photo, np.ndarray) and photo.ndim == 2
    photo, matrix, width, height = _check_call(photo, matrix, size, border, interpolation)
    replicate, cubic = border == "replicate", interpolation == "cubic"
    chosen = _dispatch.resolve("warp_affine", backend)
    if chosen == "ref":
        out = _warp_affine_ref(photo, matrix, width, height, replicate, cubic=cubic, inverse=bool(inverse))
    else:
        out = _dispatch.native_kernel("warp_affine", chosen)(photo, matrix, width, height, replicate, cubic,
                                                              bool(inverse))
    return out[:, :, 0] if flat else out


def _round_sat(v: np.ndarray) -> np.ndarray:
    """float64 -> int64 rounded to nearest (ties to even), saturated to int32's range."""
    info = np.iinfo(np.int32)
    return np.rint(np.clip(v, info.min, info.max)).astype(np.int64)


@functools.cache
def _tables() -> tuple[np.ndarray, np.ndarray]:
    """OpenCV's 2-D weight tables, indexed by (fy << 5) | fx: bicubic (1024, 16) int64 and
    bilinear (1024, 4) float32, computed in float32 as its initInterTab2D computes them."""
    f = np.float32
    one, a = f(1), f(-0.75)
    cubic1d, linear1d = np.zeros((_TAB, 4), f), np.zeros((_TAB, 2), f)
    for i in range(_TAB):
        x = f(i) * (one / f(_TAB))
        c0 = ((a * (x + one) - f(5) * a) * (x + one) + f(8) * a) * (x + one) - f(4) * a
        c1 = ((a + f(2)) * x - (a + f(3))) * x * x + one
        c2 = ((a + f(2)) * (one - x) - (a + f(3))) * (one - x) * (one - x) + one
        cubic1d[i] = c0, c1, c2, one - c0 - c1 - c2
        linear1d[i] = one - x, x
    v = (cubic1d[:, None, :, None] * cubic1d[None, :, None, :]).reshape(_TAB * _TAB, 16)  # [i, j, k1, k2]
    cubic = np.clip(np.rint(v * f(1 << _COEF_BITS)), -32768, 32767).astype(np.int64)
    centre = np.array([10, 11, 14, 15])  # taps (2, 2), (2, 3), (3, 2), (3, 3): where OpenCV corrects the sum
    for t in np.flatnonzero(cubic.sum(1) != 1 << _COEF_BITS):
        row, diff = cubic[t], int(cubic[t].sum()) - (1 << _COEF_BITS)
        lo = hi = 10
        for k in centre[1:]:
            if row[k] < row[lo]:
                lo = k
            elif row[k] > row[hi]:
                hi = k
        row[hi if diff < 0 else lo] -= diff
    linear = (linear1d[:, None, :, None] * linear1d[None, :, None, :]).reshape(_TAB * _TAB, 4)
    return cubic, linear


def _warp_affine_ref(photo: np.ndarray, m: np.ndarray, width: int, height: int, replicate: bool, *,
                     cubic: bool = False, inverse: bool = False) -> np.ndarray:
    """Reference twin of the kernel, written out in numpy: the same numbers, a row block at a time."""
    m = m.reshape(-1)
    a11, a12, b1, a21, a22, b2 = m
    if not inverse:
        d = m[0] * m[4] - m[1] * m[3]  # cv2.invertAffineTransform's arithmetic
        d = 1.0 / d if d != 0.0 else 0.0
        a11, a22, a12, a21 = m[4] * d, m[0] * d, -m[1] * d, -m[3] * d
        b1, b2 = -a11 * m[2] - a12 * m[5], -a21 * m[2] - a22 * m[5]
    scale = float(1 << _AB_BITS)
    xs, ys = np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64)
    col_x, col_y = _round_sat(a11 * xs * scale), _round_sat(a21 * xs * scale)
    row_x = _round_sat((a12 * ys + b1) * scale) + _ROUND_DELTA
    row_y = _round_sat((a22 * ys + b2) * scale) + _ROUND_DELTA
    h, w, cn = photo.shape
    is_float = photo.dtype == _FLOAT32
    src = photo if is_float else photo.astype(np.int64)
    cubic_tab, linear_tab = _tables()
    out = np.empty((height, width, cn), photo.dtype)

    def taps(y, x):
        v = src[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]
        if not replicate:  # a tap outside is 0 (+0.0 for floats, as the kernel reads it: not v * 0)
            v = np.where(((x >= 0) & (x < w) & (y >= 0) & (y < h))[..., None], v, v.dtype.type(0))
        return v

    for r0 in range(0, height, 64):
        sx = (row_x[r0:r0 + 64, None] + col_x[None, :]) >> (_AB_BITS - _INTER_BITS)
        sy = (row_y[r0:r0 + 64, None] + col_y[None, :]) >> (_AB_BITS - _INTER_BITS)
        ix, iy, t = sx >> _INTER_BITS, sy >> _INTER_BITS, ((sy & (_TAB - 1)) << _INTER_BITS) | (sx & (_TAB - 1))
        if is_float:  # the four products summed in OpenCV's order, in float32
            wt = linear_tab[t]
            acc = taps(iy, ix) * wt[..., 0:1]
            acc = acc + taps(iy, ix + 1) * wt[..., 1:2]
            acc = acc + taps(iy + 1, ix) * wt[..., 2:3]
            out[r0:r0 + 64] = acc + taps(iy + 1, ix + 1) * wt[..., 3:4]
            continue
        acc = np.full(ix.shape + (cn,), 1 << (_COEF_BITS - 1), np.int64)
        if cubic:
            wt = cubic_tab[t]
            for k in range(16):
                acc += wt[..., k:k + 1] * taps(iy - 1 + k // 4, ix - 1 + k % 4)
        else:
            fx, fy, unit = sx & (_TAB - 1), sy & (_TAB - 1), (1 << _COEF_BITS) >> (2 * _INTER_BITS)
            for dy, wy in ((0, _TAB - fy), (1, fy)):
                for dx, wx in ((0, _TAB - fx), (1, fx)):
                    acc += (wy * wx * unit)[..., None] * taps(iy + dy, ix + dx)
        out[r0:r0 + 64] = np.clip(acc >> _COEF_BITS, 0, 255)
    return out
