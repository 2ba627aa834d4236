"""Cell sums of warped crops: the C++ kernel equals the warped crops' cells bit for bit (general
maps, whole-pixel windows, the border), checks its arguments as the op does, and is host-only.
The warps themselves equal OpenCV 4's: tests/ops/test_warp_affine.py."""

from __future__ import annotations

import numpy as np
import pytest

from kfaar.ops import _dispatch, warp_cell_sums
from kfaar.ops.warp_cells import _warp_cell_sums_ref


def _similarities(rng, n, photo_size, crop_size):
    """Photo -> crop matrices: turned, scaled and shifted so the crops fall in, across and off the photo."""
    m = np.empty((n, 2, 3))
    for i in range(n):
        s = rng.uniform(0.5, 2.0) * crop_size / photo_size
        a = rng.uniform(-0.6, 0.6)
        m[i, :, :2] = s * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        m[i, :, 2] = rng.uniform(-1.2, 0.5, 2) * crop_size
    return m


@pytest.mark.parametrize(("height", "width", "res", "n_cells"), [(97, 130, 24, 262), (40, 33, 8, 64), (1, 1, 3, 9)])
def test_native_equals_the_warps_bit_for_bit(native, rng, height, width, res, n_cells):
    photo = rng.integers(0, 256, (height, width, 3), np.uint8)
    cells = np.sort(rng.choice(res * res, n_cells, replace=False)).astype(np.int32)
    m = _similarities(rng, 60, max(height, width), 2 * res)
    m[0] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]  # the identity and whole-pixel windows, some off the photo
    m[1] = [[1.0, 0.0, -3.0], [0.0, 1.0, 2.0]]
    m[2] = [[1.0, 0.0, 5.0e3], [0.0, 1.0, -7.0]]
    m[3] = [[1.0, 0.0, 0.5], [0.0, 1.0, -0.25]]  # sub-pixel: the general path
    got = warp_cell_sums(photo, m, cells, res, backend=native)
    assert got.dtype == np.uint16 and got.shape == (60, n_cells, 3)
    np.testing.assert_array_equal(got, _warp_cell_sums_ref(photo, m, cells, res))


def test_reference_is_the_cells_of_the_warped_crop(rng):
    from kfaar.ops import warp_affine

    photo = rng.integers(0, 256, (50, 60, 3), np.uint8)
    m = _similarities(rng, 1, 60, 16)
    crop = warp_affine(photo, m[0], (16, 16), backend="ref").astype(int)
    got = warp_cell_sums(photo, m, np.array([0, 9, 63], np.int32), 8, backend="ref")
    for i, k in enumerate((0, 9, 63)):
        r, c = 2 * (k // 8), 2 * (k % 8)
        np.testing.assert_array_equal(got[0, i], crop[r:r + 2, c:c + 2].sum((0, 1)))


def test_a_search_sized_batch_is_threaded_and_still_exact(native, rng):
    photo = rng.integers(0, 256, (300, 280, 3), np.uint8)
    cells = np.arange(0, 576, 2, dtype=np.int32)
    m = _similarities(rng, 700, 300, 48)
    np.testing.assert_array_equal(warp_cell_sums(photo, m, cells, 24, backend=native),
                                  _warp_cell_sums_ref(photo, m, cells, 24))


GOOD = (np.zeros((4, 5, 3), np.uint8), np.tile(np.eye(2, 3), (2, 1, 1)), np.array([0, 3], np.int32), 2)


@pytest.mark.parametrize(("which", "bad", "error", "match"), [
    (0, np.zeros((4, 5, 3), np.float32), TypeError, "photo: expected dtype uint8, got float32"),
    (0, np.zeros((4, 5, 4), np.uint8), ValueError, r"photo: expected 3 channels \(RGB\) = 3 on axis 2"),
    (0, np.zeros((4, 5), np.uint8), ValueError, "photo: expected 3 dimensions"),
    (1, np.eye(2, 3), ValueError, "matrices: expected 3 dimensions"),
    (1, np.ones((2, 3, 3)), ValueError, "matrices: expected 2 rows = 2 on axis 1"),
    (1, np.ones((2, 2, 3), np.float32), TypeError, "matrices: expected dtype float64, got float32"),
    (1, np.full((2, 2, 3), np.nan), ValueError, "matrices: expected finite values"),
    (2, np.array([0, 4], np.int32), ValueError, r"cells: expected indices in \[0, res \* res = 4\), got 4 at 1"),
    (2, np.array([-1], np.int32), ValueError, r"cells: expected indices in \[0, res \* res = 4\), got -1 at 0"),
    (2, np.array([0], np.int64), TypeError, "cells: expected dtype int32, got int64"),
    (3, 0, ValueError, "res: expected 1 <= res <= 16384, got 0"),
])
def test_bad_arguments_are_named_the_same_by_op_and_binding(which, bad, error, match):
    args = list(GOOD)
    args[which] = bad
    with pytest.raises(error, match=match):
        warp_cell_sums(*args, backend="ref")
    native = _dispatch.native_module()
    if native is not None:
        with pytest.raises(error, match=match):
            native.warp_cells_cpu(*args)


def test_huge_and_singular_matrices_are_taken_as_the_warp_takes_them(native, rng):
    """float64 values may overflow the op's one-pass finiteness sum without being inf; a
    singular matrix maps every crop pixel to the photo's corner, as cv2.invertAffineTransform's
    zero inverse does."""
    m = np.array([[[1e308, 1e308, 0.0], [0.0, 1.0, 0.0]], [[1.0, 2.0, 3.0], [2.0, 4.0, 1.0]]])
    photo = rng.integers(0, 256, (6, 7, 3), np.uint8)
    cells = np.array([0, 3], np.int32)
    got = warp_cell_sums(photo, m, cells, 2, backend=native)
    np.testing.assert_array_equal(got, warp_cell_sums(photo, m, cells, 2, backend="ref"))


@pytest.mark.parametrize("op", _dispatch.HOST_OPS)
def test_host_only_ops_run_on_the_cpu_where_cuda_is_asked_for(monkeypatch, op):
    if _dispatch.native_module() is None:
        pytest.skip("no native build")
    monkeypatch.setenv("KFAAR_KERNELS", "cuda")
    assert _dispatch.resolve(op) == "cpu"
    assert _dispatch.resolve(op, "cuda") == "cpu"
    monkeypatch.delenv("KFAAR_KERNELS")
    assert _dispatch.resolve(op) == "cpu"


def test_asking_for_cuda_without_a_build_says_what_ran_instead(monkeypatch):
    from kfaar.errors import BackendUnavailableError

    monkeypatch.setattr(_dispatch, "native_module", lambda: None)
    with pytest.raises(BackendUnavailableError,
                       match=r"warp_cells: backend 'cuda' \(for this op the C\+\+ build: it has no CUDA twin\) "
                             r"was requested but kfaar._C is not compiled"):
        _dispatch.resolve("warp_cells", "cuda")
