"""Every SDK kernel under AddressSanitizer and UndefinedBehaviorSanitizer: the library is built
again with the sanitizers (CMake, ~2 min on 2 cores), then tests/sdk/fuzz_kernels.c sends 3,000
rounds of random sizes and values through each kernel (invalid permutations, NaN, cells off the
grid, matrices with 1e300 or 0 entries, photos from 1 x 1, warps of 1 to 4 channels with either
border or a bad one), and must finish without a report.
Slow: ``python -m pytest -m slow tests/sdk/test_sdk_sanitized.py``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SANITIZERS = "address,undefined,float-cast-overflow,float-divide-by-zero"


@pytest.mark.slow
def test_the_kernels_run_clean_under_the_sanitizers(tmp_path):
    cc, cmake = shutil.which("gcc") or shutil.which("clang"), shutil.which("cmake")
    if cc is None or cmake is None:
        pytest.skip("needs gcc or clang, and cmake")
    pybind11 = pytest.importorskip("pybind11")
    build = tmp_path / "build"
    flags = f"-fsanitize={SANITIZERS} -fno-omit-frame-pointer"
    subprocess.run([cmake, "-S", str(ROOT), "-B", str(build), "-DKFAAR_WITH_CUDA=OFF", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
                    f"-DCMAKE_CXX_FLAGS={flags}", f"-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize={SANITIZERS}",
                    f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}"],
                   check=True, capture_output=True, timeout=600)
    subprocess.run([cmake, "--build", str(build), "-j2", "--target", "kfaar_sdk"], check=True, capture_output=True,
                   timeout=900)
    exe = tmp_path / "fuzz"
    subprocess.run([cc, "-std=c99", "-O1", "-g", f"-fsanitize={SANITIZERS}", str(Path(__file__).with_name("fuzz_kernels.c")),
                    f"-I{ROOT / 'sdk' / 'include'}", f"-L{build}", f"-Wl,-rpath,{build}", "-lkfaar_sdk", "-lm", "-o", str(exe)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
           "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0 and "runtime error" not in r.stderr and "ERROR: AddressSanitizer" not in r.stderr, r.stderr[-4000:]
    counts = dict(line.split(": ") for line in r.stdout.splitlines())
    # most calls run; the invalid ones are refused with their status, none crash or fail otherwise
    assert int(counts["status 0"]) > 10_000 and int(counts["status 3"]) > 0 and int(counts["status 4"]) > 0
    assert all(int(counts[f"status {k}"]) == 0 for k in (1, 2, 5, 6, 7))
