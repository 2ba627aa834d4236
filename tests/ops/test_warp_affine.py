"""Affine warps: the C++ kernel equals its numpy reference bit for bit (similarities, general
maps, whole-pixel shifts, off the photo, both borders, 1 to 4 channels), both equal OpenCV 4's
cv2.warpAffine(INTER_LINEAR) (where OpenCV 4 is installed), golden vectors hold the bytes
whatever OpenCV is installed, arguments are checked alike by the op and the binding, and the
op is host-only (test_warp_cells.py checks the dispatch of both host-only ops)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from kfaar.ops import _dispatch, warp_affine
from kfaar.ops.warp_affine import _warp_affine_ref


def _matrices(rng, n, photo_size, out_size):
    """Photo -> output affine maps: turned, scaled (unevenly for some), sheared and shifted, so
    outputs fall in, across and off the photo."""
    m = np.empty((n, 2, 3))
    for i in range(n):
        s = rng.uniform(0.3, 3.0) * out_size / photo_size
        a = rng.uniform(-3.2, 3.2)
        m[i, :, :2] = s * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        if i % 3 == 2:
            m[i, :, :2] += rng.uniform(-0.3, 0.3, (2, 2)) * s
        m[i, :, 2] = rng.uniform(-1.2, 0.7, 2) * out_size
    m[0] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]  # the identity, whole-pixel and half-pixel shifts
    m[1] = [[1.0, 0.0, -3.0], [0.0, 1.0, 2.0]]
    m[2] = [[1.0, 0.0, 0.5], [0.0, 1.0, -0.25]]
    return m


CASES = [(97, 130, 3, 128, 128), (40, 33, 1, 57, 21), (25, 31, 4, 30, 40), (1, 1, 3, 9, 9), (12, 9, 2, 5, 70)]


@pytest.mark.parametrize(("height", "width", "channels", "out_w", "out_h"), CASES)
@pytest.mark.parametrize("border", ["replicate", "constant"])
def test_native_equals_the_reference_bit_for_bit(native, rng, height, width, channels, out_w, out_h, border):
    photo = rng.integers(0, 256, (height, width, channels), np.uint8)
    for m in _matrices(rng, 24, max(height, width), max(out_w, out_h)):
        got = warp_affine(photo, m, (out_w, out_h), border=border, backend=native)
        assert got.dtype == np.uint8 and got.shape == (out_h, out_w, channels)
        np.testing.assert_array_equal(got, _warp_affine_ref(photo, m, out_w, out_h, border == "replicate"))


def _opencv4():
    cv2 = pytest.importorskip("cv2")
    if int(cv2.__version__.split(".")[0]) >= 5:
        pytest.skip(f"OpenCV {cv2.__version__}: its warpAffine rounds otherwise than 4.x's, which kfaar's warp keeps")
    return cv2


@pytest.mark.parametrize(("height", "width", "channels", "out_w", "out_h"), CASES)
@pytest.mark.parametrize("border", ["replicate", "constant"])
def test_equals_opencv_4(rng, height, width, channels, out_w, out_h, border):
    cv2 = _opencv4()
    photo = rng.integers(0, 256, (height, width, channels), np.uint8)
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    for m in _matrices(rng, 24, max(height, width), max(out_w, out_h)):
        want = cv2.warpAffine(photo, m, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=mode, borderValue=0)
        np.testing.assert_array_equal(warp_affine(photo, m, (out_w, out_h), border=border),
                                      want.reshape(out_h, out_w, channels))


def _golden_photo() -> np.ndarray:
    """A (37, 45, 3) photo from integer arithmetic alone (no random stream that could change)."""
    i, j, c = np.meshgrid(np.arange(37), np.arange(45), np.arange(3), indexing="ij")
    return (((i * 7 + j * 13 + c * 101) ^ (i * j)) % 256).astype(np.uint8)


GOLDEN = [  # (matrix, (width, height), border, SHA-256 of the output's bytes), checked against OpenCV 4.14
    ([[0.83, 0.31, -4.25], [-0.31, 0.83, 7.5]], (40, 33), "replicate",
     "8a72e6a510ee2c35ae3a4269ad58720523f4f97e406259264781fb7e9f6c87ca"),
    ([[1.7, -0.2, 3.1], [0.4, 0.9, -12.0]], (50, 41), "constant",
     "de8de03d58035c2558a1b7aafc7997a78039cfd6c5698f3238148d066c610887"),
    ([[0.37, 0.05, 30.0], [-0.05, 0.37, -2.0]], (29, 31), "replicate",
     "52de22fcc5e3c423ce11ec34cf036510fd97bdb95cbe0ccf44dcda0dcf829462"),
]


@pytest.mark.parametrize(("matrix", "size", "border", "digest"), GOLDEN)
@pytest.mark.parametrize("backend", ["ref", "cpu"])
def test_golden_vectors(matrix, size, border, digest, backend):
    if backend == "cpu" and _dispatch.native_module() is None:
        pytest.skip(f"kfaar._C is not compiled; {_dispatch.BUILD_HINT}")
    out = warp_affine(_golden_photo(), np.array(matrix), size, border=border, backend=backend)
    assert hashlib.sha256(out.tobytes()).hexdigest() == digest


def test_a_grey_photo_comes_back_grey(rng):
    photo = rng.integers(0, 256, (20, 30), np.uint8)
    m = np.array([[0.9, 0.1, 2.0], [-0.1, 0.9, 1.0]])
    got = warp_affine(photo, m, (16, 12))
    assert got.shape == (12, 16)
    np.testing.assert_array_equal(got, warp_affine(photo[:, :, None], m, (16, 12))[:, :, 0])


def test_a_large_output_is_threaded_and_still_exact(native, rng):
    photo = rng.integers(0, 256, (300, 280, 3), np.uint8)
    m = np.array([[1.9, 0.4, -20.0], [-0.4, 1.9, -35.0]])
    np.testing.assert_array_equal(warp_affine(photo, m, (512, 480), backend=native),
                                  _warp_affine_ref(photo, m, 512, 480, True))


def test_huge_and_singular_matrices_are_taken_as_the_warp_takes_them(native, rng):
    """A singular matrix maps every pixel to the photo's corner (cv2.invertAffineTransform's
    zero inverse); values beyond int32 in fixed point saturate alike in both."""
    photo = rng.integers(0, 256, (6, 7, 3), np.uint8)
    for m in ([[1.0, 2.0, 3.0], [2.0, 4.0, 1.0]], [[1e-300, 0.0, 0.0], [0.0, 1.0, 0.0]], [[1e308, 0.0, 0.0], [0.0, 1.0, 0.0]]):
        m = np.array(m)
        np.testing.assert_array_equal(warp_affine(photo, m, (5, 4), backend=native),
                                      warp_affine(photo, m, (5, 4), backend="ref"))


GOOD = (np.zeros((4, 5, 3), np.uint8), np.eye(2, 3), (3, 2))


@pytest.mark.parametrize(("which", "bad", "error", "match"), [
    (0, np.zeros((4, 5, 3), np.float32), TypeError, "photo: expected dtype uint8, got float32"),
    (0, np.zeros((4, 5, 5), np.uint8), ValueError, r"photo: expected 1 to 4 channels on axis 2"),
    (0, np.zeros((4, 5, 3, 1), np.uint8), ValueError, "photo: expected 3 dimensions"),
    (0, np.zeros((0, 5, 3), np.uint8), ValueError, "photo: expected every axis"),
    (1, np.eye(3), ValueError, "matrix: expected 2 rows = 2 on axis 0"),
    (1, np.ones((2, 3), np.float32), TypeError, "matrix: expected dtype float64, got float32"),
    (1, np.full((2, 3), np.inf), ValueError, "matrix: expected finite values"),
])
def test_bad_arrays_are_named_the_same_by_op_and_binding(which, bad, error, match):
    args = list(GOOD)
    args[which] = bad
    with pytest.raises(error, match=match):
        warp_affine(*args, backend="ref")
    native = _dispatch.native_module()
    if native is not None:
        with pytest.raises(error, match=match):
            native.warp_affine_cpu(args[0], args[1], 3, 2, True)


@pytest.mark.parametrize(("size", "border", "error", "match"), [
    ((0, 2), "replicate", ValueError, r"size: expected 1 <= width, height <= 1048576, got \(0, 2\)"),
    ((3, 2.0), "replicate", TypeError, "size: expected \\(width, height\\) ints"),
    (3, "replicate", TypeError, "size: expected \\(width, height\\), got 3"),
    ((3, 2), "reflect", ValueError, "border: expected one of replicate, constant, got 'reflect'"),
])
def test_bad_size_or_border(size, border, error, match):
    with pytest.raises(error, match=match):
        warp_affine(GOOD[0], GOOD[1], size, border=border)
