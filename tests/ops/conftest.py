"""Backends under test: the C++ kernels always (the build is part of the install), CUDA only
where a device exists (marked ``cuda``, skipped cleanly elsewhere)."""

from __future__ import annotations

import numpy as np
import pytest

from kfaar.ops import _dispatch

NATIVE_BACKENDS = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(params=NATIVE_BACKENDS)
def backend(request) -> str:
    """A native backend to compare against the reference; skips when it cannot run here."""
    if _dispatch.native_module() is None:
        pytest.skip(f"kfaar._C is not compiled; {_dispatch.BUILD_HINT}")
    if request.param == "cuda" and not _dispatch.cuda_devices():
        pytest.skip("no CUDA device visible (CUDA tests run only on a machine with a GPU)")
    return request.param


@pytest.fixture
def native() -> str:
    """The C++ backend, for the host-only ops (no CUDA twin); skips where it is not compiled."""
    if _dispatch.native_module() is None:
        pytest.skip(f"kfaar._C is not compiled; {_dispatch.BUILD_HINT}")
    return "cpu"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)

