"""Affine warps of uint8 photos: the alignment of a face to its crop, recovery's crops and the
canvases of its re-alignment search (:mod:`kfaar.runtime.realign`).

``warp_affine(photo, matrix, (width, height))`` gives the bytes
``cv2.warpAffine(photo, matrix, (width, height), flags=INTER_LINEAR, borderMode=...)`` gives
under OpenCV 4.11-4.14: output pixel (x, y) is ``photo`` sampled at ``inverse(matrix) @ (x,
y, 1)``, the coordinates in 1/1024 px rounded to 1/32 px, the four bilinear weights 15-bit
integers summing to 2^15, the result rounded to the nearest uint8. Outside the photo its taps
are the nearest edge pixel (``border="replicate"``) or 0 (``"constant"``). OpenCV 5.0's
warpAffine rounds otherwise (up to 5 grey levels on 60% of a face crop's pixels): kfaar's
crops, and so its virtual faces and recovered codes, are the same bytes whatever OpenCV is
installed. The C++ kernel (``csrc/cpu/warp_affine.cpp``) and the numpy reference below compute
the same integers; like the cell sums it has no CUDA twin (host photos, host steps).
"""

from __future__ import annotations

import numpy as np

from kfaar.ops import _checks, _dispatch

__all__ = ["warp_affine"]

_UINT8, _FLOAT64 = np.dtype(np.uint8), np.dtype(np.float64)
BORDERS = ("replicate", "constant")
MAX_SIDE = 1 << 20
# OpenCV's fixed point: coordinates in 1/1024 px, rounded to 1/32 px, weights summing to 2^15
_AB_BITS, _INTER_BITS, _COEF_BITS = 10, 5, 15
_ROUND_DELTA = (1 << _AB_BITS) >> (_INTER_BITS + 1)


def _check_call(photo: object, matrix: object, size: object, border: object) -> tuple[np.ndarray, np.ndarray, int, int]:
    if isinstance(photo, np.ndarray) and photo.ndim == 2:
        photo = photo[:, :, None]
    photo = _checks.checked(photo, "photo", 3, "(height, width, channels)", _UINT8)
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
    return photo, matrix, int(width), int(height)


def warp_affine(photo: np.ndarray, matrix: np.ndarray, size: tuple[int, int], *, border: str = "replicate",
                backend: str | None = None) -> np.ndarray:
    """``photo`` (H, W, C) uint8 (C 1 to 4; an (H, W) one is read as C = 1) warped by the
    float64 photo -> output ``matrix`` (2, 3) onto ``size`` = (width, height): a new
    (height, width, C) uint8 array, the bytes OpenCV 4's ``cv2.warpAffine(INTER_LINEAR)`` writes.
    ``border``: "replicate" (the edge pixels continue) or "constant" (black)."""
    flat = isinstance(photo, np.ndarray) and photo.ndim == 2
    photo, matrix, width, height = _check_call(photo, matrix, size, border)
    chosen = _dispatch.resolve("warp_affine", backend)
    if chosen == "ref":
        out = _warp_affine_ref(photo, matrix, width, height, border == "replicate")
    else:
        out = _dispatch.native_kernel("warp_affine", chosen)(photo, matrix, width, height, border == "replicate")
    return out[:, :, 0] if flat else out


def _round_sat(v: np.ndarray) -> np.ndarray:
    """float64 -> int64 rounded to nearest (ties to even), saturated to int32's range."""
    info = np.iinfo(np.int32)
    return np.rint(np.clip(v, info.min, info.max)).astype(np.int64)


def _warp_affine_ref(photo: np.ndarray, m: np.ndarray, width: int, height: int, replicate: bool) -> np.ndarray:
    """Reference twin of the kernel, written out in numpy: the same integers, a row block at a time."""
    m = m.reshape(-1)
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
    src = photo.astype(np.int64)
    tab, unit = 1 << _INTER_BITS, (1 << _COEF_BITS) >> (2 * _INTER_BITS)
    out = np.empty((height, width, cn), np.uint8)
    for r0 in range(0, height, 64):
        sx = (row_x[r0:r0 + 64, None] + col_x[None, :]) >> (_AB_BITS - _INTER_BITS)
        sy = (row_y[r0:r0 + 64, None] + col_y[None, :]) >> (_AB_BITS - _INTER_BITS)
        ix, iy, fx, fy = sx >> _INTER_BITS, sy >> _INTER_BITS, sx & (tab - 1), sy & (tab - 1)
        acc = np.full(ix.shape + (cn,), 1 << (_COEF_BITS - 1), np.int64)
        for dy, wy in ((0, tab - fy), (1, fy)):
            for dx, wx in ((0, tab - fx), (1, fx)):
                x, y = ix + dx, iy + dy
                if replicate:
                    v = src[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]
                else:
                    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
                    v = src[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)] * inside[..., None]
                acc += (wy * wx * unit)[..., None] * v
        out[r0:r0 + 64] = acc >> _COEF_BITS
    return out
