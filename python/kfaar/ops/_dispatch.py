"""The one place that decides which backend runs a kernel: ``cuda``, ``cpu`` (C++) or ``ref``
(numpy reference).

Order of precedence: the ``backend=`` argument of an op, then the ``KFAAR_KERNELS``
environment variable, then the best available (a CUDA device, else the C++ build, else the
reference with one logged warning saying how to build).
"""

from __future__ import annotations

import functools
import logging
import os
from types import ModuleType
from typing import Callable

from kfaar.errors import BackendUnavailableError

log = logging.getLogger(__name__)

BACKENDS = ("cuda", "cpu", "ref")
ENV_VAR = "KFAAR_KERNELS"
OPS = ("projection", "mapping", "scoring", "warp_cells", "warp_affine")
# ops without a CUDA twin (they read host images in host steps): where CUDA would run, or is
# asked for, they run on the C++ build
HOST_OPS = ("warp_cells", "warp_affine")

BUILD_HINT = (
    "did you forget to compile? Build it with `pip install --no-build-isolation -e .` "
    "(needs a C++17 compiler and CMake; nvcc adds the CUDA kernels)"
)


@functools.cache
def native_module() -> ModuleType | None:
    """The compiled ``kfaar._C``, or None (logged once) when this install has no build of it."""
    try:
        from kfaar import _C
    except ImportError as exc:
        log.warning("kfaar._C is not available (%s): using the slow numpy reference kernels; %s", exc, BUILD_HINT)
        return None
    return _C


@functools.cache
def cuda_compiled() -> bool:
    """Whether the native module was built with the CUDA kernels."""
    mod = native_module()
    return mod is not None and bool(mod.build_info()["cuda_compiled"])


@functools.cache
def cuda_devices() -> tuple[str, ...]:
    """Names of the CUDA devices the native module can use (empty without CUDA build or GPU)."""
    return tuple(native_module().cuda_devices()) if cuda_compiled() else ()


@functools.cache
def cpu_missing() -> str:
    """The instructions the C++ kernels were built for that this CPU lacks ("" when it runs them;
    e.g. "AVX, AVX2, FMA, ..." on an x86 CPU older than x86-64-v3, where they would die of SIGILL)."""
    mod = native_module()
    return "" if mod is None else str(mod.build_info().get("cpu_missing", ""))


def _why_not(backend: str) -> str | None:
    """None when ``backend`` can run here, else the reason it cannot."""
    if backend == "ref":
        return None
    mod = native_module()
    if mod is None:
        return f"kfaar._C is not compiled; {BUILD_HINT}"
    if backend == "cpu" and cpu_missing():
        return (f"the C++ kernels were built for instructions this CPU lacks ({cpu_missing()}); rebuild them for "
                "this CPU with `pip install . -C cmake.define.KFAAR_CPU_FLAGS=-O3`")
    if backend == "cuda":
        if not cuda_compiled():
            return "this build of kfaar._C has no CUDA kernels (nvcc was not found, or KFAAR_WITH_CUDA=OFF)"
        if not cuda_devices():
            return "no CUDA device is visible to this process (no GPU, no driver, or CUDA_VISIBLE_DEVICES hides it)"
    return None


def requested(backend: str | None = None) -> str | None:
    """The explicitly requested backend (argument, else environment), checked, or None for auto."""
    source = "backend"
    if backend is None:
        backend = os.environ.get(ENV_VAR)
        if backend is not None:
            backend = backend.strip().lower() or None
        source = ENV_VAR
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"{source}: expected one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def resolve(op: str, backend: str | None = None) -> str:
    """The backend that runs ``op``: forced by ``backend``/``KFAAR_KERNELS``, else the best available."""
    if op not in OPS:
        raise ValueError(f"op: expected one of {', '.join(OPS)}, got {op!r}")
    forced = requested(backend)
    if forced is None:
        best = best_available()
        if op in HOST_OPS and best == "cuda":  # no CUDA twin: the C++ build, where this CPU runs it
            return "cpu" if _why_not("cpu") is None else "ref"
        return best
    run = "cpu" if op in HOST_OPS and forced == "cuda" else forced
    reason = _why_not(run)
    if reason is not None:
        asked = repr(forced) + (" (for this op the C++ build: it has no CUDA twin)" if run != forced else "")
        raise BackendUnavailableError(f"{op}: backend {asked} was requested but {reason}")
    return run


@functools.cache
def best_available() -> str:
    """The first of cuda, cpu, ref that can run in this process (fixed once the build is loaded)."""
    best = next(candidate for candidate in BACKENDS if _why_not(candidate) is None)
    if best == "ref" and native_module() is not None:  # built, but not for this CPU: say so once
        log.warning("using the slow numpy reference kernels: %s", _why_not("cpu"))
    return best


def native_kernel(op: str, backend: str) -> Callable:
    """``kfaar._C.<op>_<backend>`` for a backend ``resolve`` returned (cpu or cuda)."""
    return getattr(native_module(), f"{op}_{backend}")
