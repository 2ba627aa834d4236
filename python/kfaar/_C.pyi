"""Types of the compiled module ``kfaar._C`` (csrc/). Call the ops in :mod:`kfaar.ops`, not these.

Every kernel takes float32 (perms: int32), C-contiguous, aligned numpy arrays with every axis
>= 1 and finite values, and raises ValueError/TypeError naming the argument otherwise. The
``*_cuda`` twins exist only in a build with CUDA; they copy host arrays to the device and back.
"""

from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import numpy.typing as npt

_F32 = npt.NDArray[np.float32]
_I32 = npt.NDArray[np.int32]

class BuildInfo(TypedDict):
    build_type: str
    cxx_compiler: str
    cpu_flags: str
    openmp: str  # _OPENMP date, "" without OpenMP
    omp_max_threads: int
    cuda_compiled: bool
    cuda_architectures: str
    cuda_runtime_version: int  # e.g. 13000; 0 without CUDA
    cuda_driver_version: int  # 0 without a driver

def build_info() -> BuildInfo: ...
def cpu_threads() -> int: ...  # threads a large C++ call uses now: 1 while load >= cores + 1
def cuda_devices() -> list[str]: ...

# z (batch, dim), dim a power of two; signs/perms (rounds, dim); mean (dim,), whiten/color (dim, dim)
def projection_cpu(
    z: _F32,
    signs: _F32,
    perms: _I32,
    inverse: bool = False,
    mean: _F32 | None = None,
    whiten: _F32 | None = None,
    color: _F32 | None = None,
) -> _F32: ...
def projection_cuda(
    z: _F32,
    signs: _F32,
    perms: _I32,
    inverse: bool = False,
    mean: _F32 | None = None,
    whiten: _F32 | None = None,
    color: _F32 | None = None,
) -> _F32: ...

# x (batch, in_dim); weights[l] (out, in); biases[l] (out,); style_weight (n_styles, style_dim, hidden);
# style_bias (n_styles, style_dim); mix (batch, n_styles, style_dim); alpha (n_styles,) -> (batch, n_styles, style_dim)
def mapping_cpu(
    x: _F32,
    weights: Sequence[_F32],
    biases: Sequence[_F32],
    style_weight: _F32,
    style_bias: _F32,
    *,
    mix: _F32 | None = None,
    alpha: _F32 | None = None,
    slope: float = 0.2,
    gain: float = 1.4142135623730951,
    check_weights: bool = True,
) -> _F32: ...
def mapping_cuda(
    x: _F32,
    weights: Sequence[_F32],
    biases: Sequence[_F32],
    style_weight: _F32,
    style_bias: _F32,
    *,
    mix: _F32 | None = None,
    alpha: _F32 | None = None,
    slope: float = 0.2,
    gain: float = 1.4142135623730951,
    check_weights: bool = True,
) -> _F32: ...

# probes (P, dim), templates (T, dim) -> (P, T)
def scoring_cpu(probes: _F32, templates: _F32) -> _F32: ...
def scoring_cuda(probes: _F32, templates: _F32) -> _F32: ...
