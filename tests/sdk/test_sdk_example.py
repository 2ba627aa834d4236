"""The C SDK: compile sdk/examples/example.c with the system C compiler against the installed
header and library, run it, and check every array it prints against the Python references.

The same on 64-bit ARM (phones, edge boxes) where a cross toolchain and QEMU's user mode are
installed (Debian: g++-aarch64-linux-gnu, qemu-user): the SDK alone is cross-built with CMake
(-DKFAAR_BUILD_PYTHON=OFF, the portable C++ kernels) and the example run emulated."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kfaar.ops import MappingWeights, ProjectionParams, _dispatch, sdk_paths
from kfaar.ops.mapping import _map_latent_ref
from kfaar.ops.projection import _project_ref
from kfaar.ops.scoring import _cosine_scores_ref
from kfaar.ops.warp_affine import _warp_affine_ref
from kfaar.ops.warp_cells import _warp_cell_sums_ref

EXAMPLE = Path(__file__).parents[2] / "sdk" / "examples" / "example.c"
DTYPES = {"perms": np.int32, "cells": np.int32, "photo": np.uint8, "matrices": np.float64, "cell_sums": np.uint16,
          "warp_matrix": np.float64, "warped": np.uint8, "pasted": np.uint8}


ROOT = Path(__file__).parents[2]
ARM = {"cc": "aarch64-linux-gnu-gcc", "cxx": "aarch64-linux-gnu-g++", "qemu": "qemu-aarch64",
       "sysroot": "/usr/aarch64-linux-gnu"}


def _compile_example(cc: str, include: Path, lib: Path, exe: Path) -> None:
    subprocess.run(
        [cc, "-std=c99", "-Wall", "-Werror", str(EXAMPLE), f"-I{include}", f"-L{lib}", f"-Wl,-rpath,{lib}",
         "-lkfaar_sdk", "-lm", "-o", str(exe)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


def _run_native(tmp: Path) -> str:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc, gcc or clang) on PATH")
    if _dispatch.native_module() is None:
        pytest.skip(f"kfaar is not compiled; {_dispatch.BUILD_HINT}")
    include, lib = sdk_paths()
    _compile_example(cc, include, lib, tmp / "example")
    return subprocess.run([str(tmp / "example")], check=True, capture_output=True, text=True, timeout=60).stdout


def _run_arm64(tmp: Path) -> str:
    missing = [t for t in (ARM["cc"], ARM["cxx"], ARM["qemu"], "cmake") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"no {', '.join(missing)}: the arm64 build needs a cross toolchain and QEMU's user mode "
                    "(Debian: g++-aarch64-linux-gnu qemu-user)")
    build = tmp / "build"
    configure = ["cmake", "-S", str(ROOT), "-B", str(build), "-DKFAAR_BUILD_PYTHON=OFF", "-DKFAAR_WITH_CUDA=OFF",
                 "-DCMAKE_BUILD_TYPE=Release", "-DCMAKE_SYSTEM_NAME=Linux", "-DCMAKE_SYSTEM_PROCESSOR=aarch64",
                 f"-DCMAKE_C_COMPILER={ARM['cc']}", f"-DCMAKE_CXX_COMPILER={ARM['cxx']}"]
    for cmd in (configure, ["cmake", "--build", str(build), "--target", "kfaar_sdk", "-j2"]):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (cmd, r.stdout[-3000:], r.stderr[-3000:])
    _compile_example(ARM["cc"], ROOT / "sdk" / "include", build, tmp / "example")
    return subprocess.run([ARM["qemu"], "-L", ARM["sysroot"], str(tmp / "example")], check=True, capture_output=True,
                          text=True, timeout=120).stdout


@pytest.fixture(scope="module", params=["native", "arm64"])
def example_output(request, tmp_path_factory) -> dict[str, np.ndarray]:
    run = {"native": _run_native, "arm64": _run_arm64}[request.param]
    out = run(tmp_path_factory.mktemp(f"sdk-{request.param}"))
    arrays: dict[str, np.ndarray] = {}
    for line in out.splitlines():
        name, *rest = line.split()
        if name == "bad_batch_status":
            arrays[name] = np.array([int(rest[0])])
            continue
        count, values = int(rest[0]), rest[1:]
        assert len(values) == count, f"{name}: printed {len(values)} of {count} values"
        arrays[name] = np.array(values, DTYPES.get(name, np.float32))
    return arrays


def test_projection_matches_the_reference(example_output):
    a = example_output
    params = ProjectionParams(a["signs"].reshape(4, 16), a["perms"].reshape(4, 16))
    z = a["z"].reshape(3, 16)
    np.testing.assert_allclose(a["projected"].reshape(3, 16), _project_ref(z, params), atol=1e-5)
    np.testing.assert_allclose(a["recovered"].reshape(3, 16), z, atol=1e-5)


def test_mapping_matches_the_reference(example_output):
    a = example_output
    weights = MappingWeights(
        (a["w0"].reshape(16, 8), a["w1"].reshape(16, 16)),
        (a["b0"], a["b1"]),
        a["style_weight"].reshape(3, 4, 16),
        a["style_bias"].reshape(3, 4),
        slope=0.2,
        gain=math.sqrt(2),
    )
    expected = _map_latent_ref(a["x"].reshape(2, 8), weights, mix=a["mix"].reshape(2, 3, 4), alpha=a["alpha"])
    np.testing.assert_allclose(a["wplus"].reshape(2, 3, 4), expected, rtol=1e-5, atol=1e-5)


def test_scoring_matches_the_reference(example_output):
    a = example_output
    expected = _cosine_scores_ref(a["probes"].reshape(2, 16), a["templates"].reshape(3, 16))
    np.testing.assert_allclose(a["scores"].reshape(2, 3), expected, atol=1e-5)


def test_cell_sums_match_the_reference(example_output):
    a = example_output
    expected = _warp_cell_sums_ref(a["photo"].reshape(9, 11, 3), a["matrices"].reshape(3, 2, 3), a["cells"], 4)
    np.testing.assert_array_equal(a["cell_sums"].reshape(3, 3, 3), expected)


def test_warp_matches_the_reference(example_output):
    a = example_output
    photo, m = a["photo"].reshape(9, 11, 3), a["warp_matrix"].reshape(2, 3)
    np.testing.assert_array_equal(a["warped"].reshape(5, 6, 3), _warp_affine_ref(photo, m, 6, 5, False))
    np.testing.assert_array_equal(a["pasted"].reshape(5, 6, 3),
                                  _warp_affine_ref(photo, m, 6, 5, True, cubic=True, inverse=True))
    # the float mask printed to 9 significant digits reads back exactly as float32
    alpha = _warp_affine_ref(a["mask"].reshape(9, 11, 1), m, 6, 5, False, inverse=True)
    np.testing.assert_array_equal(a["mask_warped"].reshape(5, 6), alpha[:, :, 0])


def test_a_bad_call_returns_a_status_code(example_output):
    assert example_output["bad_batch_status"][0] == 2  # KFAAR_ERROR_INVALID_SIZE


def test_sdk_paths_point_at_the_header_and_library():
    if _dispatch.native_module() is None:
        pytest.skip("kfaar is not compiled")
    paths = sdk_paths()
    assert (paths.include / "kfaar" / "kfaar.h").is_file()
    assert any(paths.lib.glob("libkfaar_sdk*"))


def test_the_library_says_whether_this_cpu_runs_it():
    import ctypes

    if _dispatch.native_module() is None:
        pytest.skip(f"kfaar is not compiled; {_dispatch.BUILD_HINT}")
    lib = ctypes.CDLL(str(next(sdk_paths()[1].glob("libkfaar_sdk*"))))
    lib.kfaar_status_string.restype = ctypes.c_char_p
    assert lib.kfaar_abi_version() == 4
    assert lib.kfaar_cpu_supported() == (0 if _dispatch.cpu_missing() else 1)
    assert lib.kfaar_status_string(7).startswith(b"this CPU lacks instructions the kernels were built for")
