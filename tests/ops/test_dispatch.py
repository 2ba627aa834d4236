"""One dispatch point: KFAAR_KERNELS and backend= force a backend, the best one is chosen
otherwise, and a missing build falls back to the reference with one warning."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from kfaar.errors import BackendUnavailableError
from kfaar.ops import ProjectionParams, _dispatch, project

PARAMS = ProjectionParams.from_seed(bytes(32), dim=8, rounds=3)


@pytest.mark.parametrize("op", _dispatch.OPS)
def test_environment_variable_forces_the_reference(monkeypatch, op):
    monkeypatch.setenv("KFAAR_KERNELS", "ref")
    assert _dispatch.resolve(op) == "ref"
    assert _dispatch.resolve(op, "cpu" if _dispatch.native_module() else "ref") in ("cpu", "ref")


def test_best_available_backend_is_chosen(monkeypatch):
    monkeypatch.delenv("KFAAR_KERNELS", raising=False)
    expected = "cuda" if _dispatch.cuda_devices() else ("cpu" if _dispatch.native_module() else "ref")
    assert _dispatch.resolve("projection") == expected


def test_unknown_backend_names_the_choices(monkeypatch):
    monkeypatch.setenv("KFAAR_KERNELS", "gpu")
    with pytest.raises(ValueError, match="KFAAR_KERNELS: expected one of cuda, cpu, ref, got 'gpu'"):
        project(np.ones((1, 8), np.float32), PARAMS)
    with pytest.raises(ValueError, match="backend: expected one of cuda, cpu, ref, got 'tpu'"):
        project(np.ones((1, 8), np.float32), PARAMS, backend="tpu")
    with pytest.raises(ValueError, match="op: expected one of"):
        _dispatch.resolve("conv")


def test_forcing_cuda_without_a_gpu_says_why(monkeypatch):
    if _dispatch.cuda_devices():
        pytest.skip("this machine has a CUDA device")
    monkeypatch.setenv("KFAAR_KERNELS", "cuda")
    with pytest.raises(BackendUnavailableError, match="projection: backend 'cuda' was requested but"):
        project(np.ones((1, 8), np.float32), PARAMS)


def test_missing_build_falls_back_to_the_reference_with_one_warning():
    code = "\n".join(
        [
            "import sys, logging",
            "sys.modules['kfaar._C'] = None  # as if never compiled",
            "logging.basicConfig(level=logging.WARNING)",
            "import numpy as np",
            "from kfaar.ops import ProjectionParams, project, cosine_scores, _dispatch",
            "p = ProjectionParams.from_seed(bytes(32), dim=8, rounds=3)",
            "z = np.ones((2, 8), np.float32)",
            "np.testing.assert_allclose(project(project(z, p), p, inverse=True), z, atol=1e-6)",
            "cosine_scores(z, z)",
            "print(_dispatch.resolve('mapping'))",
            "try:",
            "    _dispatch.resolve('mapping', 'cpu')",
            "except Exception as e:",
            "    print(type(e).__name__)",
        ]
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split() == ["ref", "BackendUnavailableError"]
    assert run.stderr.count("did you forget to compile?") == 1
