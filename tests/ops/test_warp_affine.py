"""Affine warps: the C++ kernel equals its numpy reference bit for bit (similarities, general
maps, whole-pixel shifts, off the photo, both borders, 1 to 4 channels, bilinear and bicubic
uint8, bilinear float32, either direction of the matrix), both equal OpenCV 4's cv2.warpAffine
(where OpenCV 4 is installed: uint8 exactly, float32 to its last bit), golden vectors hold the
numbers whatever OpenCV is installed, arguments are checked alike by the op and the binding, and the
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


KINDS = [("uint8", "linear", False), ("uint8", "linear", True), ("uint8", "cubic", True), ("uint8", "cubic", False),
         ("float32", "linear", True), ("float32", "linear", False)]  # (dtype, interpolation, inverse)


def _photo(rng, shape, dtype):
    """uint8 pixels, or float32 values of either sign (a tap outside reads +0.0, never -0.0)."""
    return rng.integers(0, 256, shape, np.uint8) if dtype == "uint8" else (rng.random(shape, np.float32) - 0.5) * 255


@pytest.mark.parametrize(("height", "width", "channels", "out_w", "out_h"), CASES)
@pytest.mark.parametrize("border", ["replicate", "constant"])
@pytest.mark.parametrize(("dtype", "interpolation", "inverse"), KINDS)
def test_native_equals_the_reference_bit_for_bit(native, rng, height, width, channels, out_w, out_h, border, dtype,
                                                 interpolation, inverse):
    photo = _photo(rng, (height, width, channels), dtype)
    for m in _matrices(rng, 12, max(height, width), max(out_w, out_h)):
        if inverse:
            m = _inverse(m)
        got = warp_affine(photo, m, (out_w, out_h), border=border, interpolation=interpolation, inverse=inverse,
                          backend=native)
        assert got.dtype == photo.dtype and got.shape == (out_h, out_w, channels)
        want = _warp_affine_ref(photo, m, out_w, out_h, border == "replicate", cubic=interpolation == "cubic",
                                inverse=inverse)
        assert got.tobytes() == want.tobytes()  # the same bytes: +0.0 and -0.0 told apart


def _inverse(m):
    """The output -> photo map of a photo -> output one (a WARP_INVERSE_MAP matrix)."""
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.ascontiguousarray(np.linalg.inv(full)[:2]) if abs(np.linalg.det(full)) > 1e-12 else m


def _opencv4():
    cv2 = pytest.importorskip("cv2")
    if int(cv2.__version__.split(".")[0]) >= 5:
        pytest.skip(f"OpenCV {cv2.__version__}: its warpAffine rounds otherwise than 4.x's, which kfaar's warp keeps")
    return cv2


@pytest.mark.parametrize(("height", "width", "channels", "out_w", "out_h"), CASES)
@pytest.mark.parametrize("border", ["replicate", "constant"])
@pytest.mark.parametrize(("dtype", "interpolation", "inverse"), KINDS)
def test_equals_opencv_4(rng, height, width, channels, out_w, out_h, border, dtype, interpolation, inverse):
    """uint8: the same bytes. float32: OpenCV's vectorised interior sums the four products in
    another order than its scalar code (which kfaar follows): the last bit of the sum may differ
    there."""
    cv2 = _opencv4()
    photo = _photo(rng, (height, width, channels), dtype)
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    flags = (cv2.INTER_CUBIC if interpolation == "cubic" else cv2.INTER_LINEAR) | (cv2.WARP_INVERSE_MAP if inverse else 0)
    for m in _matrices(rng, 12, max(height, width), max(out_w, out_h)):
        if inverse:
            m = _inverse(m)
        want = cv2.warpAffine(photo, m, (out_w, out_h), flags=flags, borderMode=mode, borderValue=0)
        got = warp_affine(photo, m, (out_w, out_h), border=border, interpolation=interpolation, inverse=inverse)
        if dtype == "uint8":
            np.testing.assert_array_equal(got, want.reshape(out_h, out_w, channels))
        else:
            # the last bit of the products' sum: of the largest tap's size, where taps of either sign cancel
            np.testing.assert_allclose(got, want.reshape(out_h, out_w, channels), rtol=0,
                                       atol=2.5e-7 * float(np.abs(photo).max()))


def _golden_photo() -> np.ndarray:
    """A (37, 45, 3) photo from integer arithmetic alone (no random stream that could change)."""
    i, j, c = np.meshgrid(np.arange(37), np.arange(45), np.arange(3), indexing="ij")
    return (((i * 7 + j * 13 + c * 101) ^ (i * j)) % 256).astype(np.uint8)


# (matrix, (width, height), border, interpolation, inverse, dtype, SHA-256 of the output's bytes): the
# uint8 ones checked equal to OpenCV 4.14's bytes, the float one within its last bit
GOLDEN = [
    ([[0.83, 0.31, -4.25], [-0.31, 0.83, 7.5]], (40, 33), "replicate", "linear", False, "uint8",
     "8a72e6a510ee2c35ae3a4269ad58720523f4f97e406259264781fb7e9f6c87ca"),
    ([[1.7, -0.2, 3.1], [0.4, 0.9, -12.0]], (50, 41), "constant", "linear", False, "uint8",
     "de8de03d58035c2558a1b7aafc7997a78039cfd6c5698f3238148d066c610887"),
    ([[0.37, 0.05, 30.0], [-0.05, 0.37, -2.0]], (29, 31), "replicate", "linear", False, "uint8",
     "52de22fcc5e3c423ce11ec34cf036510fd97bdb95cbe0ccf44dcda0dcf829462"),
    ([[0.83, 0.31, -4.25], [-0.31, 0.83, 7.5]], (40, 33), "replicate", "cubic", True, "uint8",
     "86ae2121ff8286fd0d3b59b3036ab4d68e97e8372e160f04ac38a3d54d920bd4"),
    ([[1.7, -0.2, 3.1], [0.4, 0.9, -12.0]], (50, 41), "constant", "cubic", False, "uint8",
     "435886e17513a17491c6947aa8bd4ab2c9da81427278fddc2d0d422f81334a78"),
    ([[0.83, 0.31, -4.25], [-0.31, 0.83, 7.5]], (40, 33), "constant", "linear", True, "float32",
     "c645b9d1e07a08d727ae5f2559d7b897e439cc4ee95d3bf1c3cf7f10355fff6d"),
]


@pytest.mark.parametrize(("matrix", "size", "border", "interpolation", "inverse", "dtype", "digest"), GOLDEN)
@pytest.mark.parametrize("backend", ["ref", "cpu"])
def test_golden_vectors(matrix, size, border, interpolation, inverse, dtype, digest, backend):
    if backend == "cpu" and _dispatch.native_module() is None:
        pytest.skip(f"kfaar._C is not compiled; {_dispatch.BUILD_HINT}")
    photo = _golden_photo()
    if dtype == "float32":
        photo = (photo[:, :, 0].astype(np.float32) / 255.0)[:, :, None]  # a mask-like float image
    out = warp_affine(photo, np.array(matrix), size, border=border, interpolation=interpolation, inverse=inverse,
                      backend=backend)
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


def test_cubic_is_for_uint8_only():
    with pytest.raises(ValueError, match="interpolation: cubic is for uint8 photos; a float32 one is warped linearly"):
        warp_affine(np.zeros((4, 5), np.float32), np.eye(2, 3), (3, 2), interpolation="cubic")
    native = _dispatch.native_module()
    if native is not None:
        with pytest.raises(ValueError, match="interpolation: cubic is for uint8 photos"):
            native.warp_affine_cpu(np.zeros((4, 5, 1), np.float32), np.eye(2, 3), 3, 2, True, True, False)
    with pytest.raises(ValueError, match="interpolation: expected one of linear, cubic, got 'area'"):
        warp_affine(GOOD[0], GOOD[1], GOOD[2], interpolation="area")


@pytest.mark.parametrize(("which", "bad", "error", "match"), [
    (0, np.zeros((4, 5, 3), np.float64), TypeError, "photo: expected dtype uint8, got float64"),
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
