"""Argument checks for the kernels, worded exactly as the C++ bindings word them
(csrc/bindings/checks.h): the message names the argument, what it got and what it needs."""

from __future__ import annotations

import numpy as np

_DTYPE_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64", np.dtype(np.int32): "int32",
                np.dtype(np.uint8): "uint8"}
_FLOAT32 = np.dtype(np.float32)


def checked(x: object, name: str, ndim: int, layout: str, dtype: np.dtype = _FLOAT32) -> np.ndarray:
    """``x`` as it is, once it is a C-contiguous, aligned ``dtype`` array of ``ndim`` non-empty axes."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name}: expected a numpy {_DTYPE_NAMES[np.dtype(dtype)]} array {layout}, got {type(x).__name__}")
    if x.dtype != dtype:
        want = _DTYPE_NAMES[np.dtype(dtype)]
        raise TypeError(f"{name}: expected dtype {want}, got {x.dtype} (convert with .astype(np.{want}))")
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions {layout}, got shape {x.shape}")
    flags = x.flags
    if not flags.c_contiguous:
        raise ValueError(
            f"{name}: expected a C-contiguous array, got a strided view of shape {x.shape} (use np.ascontiguousarray)"
        )
    if not flags.aligned:
        raise ValueError(f"{name}: expected an aligned array, got a misaligned buffer (copy it with np.array)")
    if not x.size:
        raise ValueError(f"{name}: expected every axis of {layout} to be >= 1, got shape {x.shape}")
    return x


def check_axis(x: np.ndarray, name: str, axis: int, expected: int, what: str) -> None:
    if x.shape[axis] != expected:
        raise ValueError(f"{name}: expected {what} = {expected} on axis {axis}, got shape {x.shape}")


def check_finite(x: np.ndarray, name: str) -> None:
    # One float64 pass without a temporary mask: any NaN or inf makes the sum non-finite, and
    # float32 values cannot overflow a float64 sum (float64 ones can: then look element-wise).
    with np.errstate(over="ignore"):
        total = np.add.reduce(x, axis=None, dtype=np.float64)
    if not np.isfinite(total) and (x.dtype != np.float64 or not np.isfinite(x).all()):
        raise ValueError(f"{name}: expected finite values, got NaN or inf")


def is_power_of_two(v: int) -> bool:
    return v >= 2 and v & (v - 1) == 0


def readonly(x: np.ndarray) -> np.ndarray:
    """A private, read-only copy, so parameters cannot change under a kernel or a cache."""
    y = np.array(x, copy=True, order="C")
    y.flags.writeable = False
    return y
