"""The kernels refuse a CPU without the instructions they were built for instead of dying of
SIGILL: the Python ops fall back to the numpy reference, the bindings raise, the C SDK returns
KFAAR_ERROR_UNSUPPORTED_CPU. On this machine by a stand-in for the CPU check; where QEMU's user
mode is installed, for real, on an emulated CPU without AVX (Nehalem)."""

from __future__ import annotations

import logging
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kfaar import Key
from kfaar.errors import BackendUnavailableError
from kfaar.ops import ProjectionParams, _dispatch, project, warp_cell_sums

_C = _dispatch.native_module()
pytestmark = pytest.mark.skipif(_C is None, reason="kfaar._C is not compiled")
PARAMS = ProjectionParams.from_key(Key.from_bytes(bytes(range(32))), dim=16, rounds=3)


def test_the_build_reports_what_the_kernels_use_and_what_this_cpu_lacks():
    info = _C.build_info()
    if platform.machine() in ("x86_64", "AMD64") and "x86-64-v3" in info["cpu_flags"]:
        assert {"AVX2", "FMA", "BMI2"} <= set(info["kernels_isa"].split(", "))
    assert info["cpu_missing"] == _dispatch.cpu_missing()
    assert (_dispatch.best_available() == "ref") == bool(info["cpu_missing"]) or _dispatch.best_available() == "cuda"


@pytest.fixture
def old_cpu(monkeypatch):
    """This process as if its CPU lacked AVX2 and FMA."""
    best = _dispatch.best_available  # cached: cleared on the way in and out (a test may replace it)
    monkeypatch.setattr(_dispatch, "cpu_missing", lambda: "AVX2, FMA")
    monkeypatch.delenv(_dispatch.ENV_VAR, raising=False)
    best.cache_clear()
    yield
    best.cache_clear()


def test_without_the_instructions_the_ops_run_the_reference_and_say_why(old_cpu, caplog):
    with caplog.at_level(logging.WARNING, logger="kfaar.ops._dispatch"):
        assert _dispatch.best_available() in ("ref", "cuda")
    if _dispatch.best_available() == "ref":
        assert "this CPU lacks (AVX2, FMA)" in caplog.text
        assert _dispatch.resolve("projection") == "ref" and _dispatch.resolve("warp_cells") == "ref"
    with pytest.raises(BackendUnavailableError, match=r"'cpu' was requested but the C\+\+ kernels were built for "
                                                      r"instructions this CPU lacks \(AVX2, FMA\)"):
        project(np.ones((2, 16), np.float32), PARAMS, backend="cpu")
    z = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    # the reference here; where a CUDA device leads, its kernel (whose sums round differently)
    np.testing.assert_array_equal(project(z, PARAMS, backend=_dispatch.resolve("projection")), project(z, PARAMS))


def test_host_op_falls_back_to_the_reference_where_cuda_would_lead(old_cpu, monkeypatch):
    monkeypatch.setattr(_dispatch, "best_available", lambda: "cuda")
    assert _dispatch.resolve("warp_cells") == "ref" and _dispatch.resolve("projection") == "cuda"
    photo = np.zeros((8, 8, 3), np.uint8)
    m = np.array([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert warp_cell_sums(photo, m, np.array([0], np.int32), 2).shape == (1, 1, 3)


QEMU = shutil.which("qemu-x86_64")
on_emulated_nehalem = pytest.mark.skipif(
    QEMU is None or platform.machine() != "x86_64",
    reason="QEMU user mode (qemu-x86_64, Debian's qemu-user) is not installed: the CPU without AVX is emulated by it",
)


@on_emulated_nehalem
def test_on_an_emulated_cpu_without_avx_python_falls_back_and_nothing_crashes():
    code = (
        "import numpy as np\n"
        "from kfaar import Key, _C\n"
        "from kfaar.ops import ProjectionParams, _dispatch, project\n"
        "p = ProjectionParams.from_key(Key.from_bytes(bytes(range(32))), dim=16, rounds=3)\n"
        "z = np.linspace(-1, 1, 48, dtype=np.float32).reshape(3, 16)\n"
        "print(_dispatch.cpu_missing()); print(_dispatch.best_available())\n"
        "print(np.array_equal(project(z, p), project(z, p, backend='ref')))\n"
        "try:\n    _C.projection_cpu(z, p.signs, p.perms)\nexcept RuntimeError as e:\n    print('refused', e)\n"
    )
    r = subprocess.run([QEMU, "-cpu", "Nehalem", sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    missing, best, same, refused = r.stdout.splitlines()[:4]
    assert "AVX2" in missing and "FMA" in missing and best == "ref" and same == "True"
    assert refused.startswith("refused the C++ kernels were built for instructions this CPU lacks (AVX")


@on_emulated_nehalem
def test_on_an_emulated_cpu_without_avx_the_sdk_returns_a_status(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    from kfaar.ops import sdk_paths

    include, lib = sdk_paths()
    exe = tmp_path / "example"
    example = Path(__file__).parents[2] / "sdk" / "examples" / "example.c"
    subprocess.run([cc, "-std=c99", str(example), f"-I{include}", f"-L{lib}", f"-Wl,-rpath,{lib}", "-lkfaar_sdk",
                    "-lm", "-o", str(exe)], check=True, capture_output=True)
    r = subprocess.run([QEMU, "-cpu", "Nehalem", str(exe)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and r.stdout.startswith("cpu_unsupported 7 this CPU lacks instructions"), (r.stdout, r.stderr)
