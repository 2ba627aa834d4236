"""kfaar's kernels: keyed projection, fused latent mapping, template scoring, affine warps of
photos (OpenCV 4's bilinear arithmetic, whatever OpenCV is installed) and the cell sums of
warped crops (recovery's re-alignment search).

Each op runs on CUDA, the C++ build (``kfaar._C``) or a numpy reference, chosen at one
dispatch point (:mod:`kfaar.ops._dispatch`; force one with ``KFAAR_KERNELS=ref|cpu|cuda`` or
``backend=``). Torch twins (``*_torch``) serve training and import torch only when called.
"""

from __future__ import annotations

from pathlib import Path

from kfaar.ops._dispatch import resolve as active_backend
from kfaar.ops.mapping import MappingWeights, map_latent, map_latent_torch, torch_mapping
from kfaar.ops.projection import ProjectionParams, Whitening, project, project_torch
from kfaar.ops.scoring import cosine_scores, cosine_scores_torch
from kfaar.ops.warp_affine import warp_affine
from kfaar.ops.warp_cells import warp_cell_sums

__all__ = [
    "MappingWeights",
    "ProjectionParams",
    "SdkPaths",
    "Whitening",
    "active_backend",
    "cosine_scores",
    "cosine_scores_torch",
    "map_latent",
    "map_latent_torch",
    "project",
    "project_torch",
    "sdk_paths",
    "torch_mapping",
    "warp_affine",
    "warp_cell_sums",
]


class SdkPaths(tuple):
    """(include_dir, lib_dir) of the installed C SDK; ``.include`` and ``.lib`` name them."""

    __slots__ = ()

    def __new__(cls, include: Path, lib: Path):
        return super().__new__(cls, (include, lib))

    @property
    def include(self) -> Path:
        return self[0]

    @property
    def lib(self) -> Path:
        return self[1]


def sdk_paths() -> SdkPaths:
    """Where the C SDK is installed: compile with ``-I include`` and link ``-L lib -lkfaar_sdk``.

    Raises FileNotFoundError when this install has no compiled SDK."""
    roots = []
    try:
        from kfaar import _C

        roots.append(Path(_C.__file__).parent)  # an editable install keeps built files beside _C
    except ImportError:
        pass
    roots.append(Path(__file__).resolve().parent.parent)
    for root in roots:
        include, lib = root / "sdk" / "include", root / "sdk" / "lib"
        if (include / "kfaar" / "kfaar.h").is_file() and any(lib.glob("*kfaar_sdk*")):
            return SdkPaths(include, lib)
    raise FileNotFoundError(
        f"the kfaar C SDK is not installed (looked in {', '.join(str(r / 'sdk') for r in roots)}); "
        "build it with `pip install --no-build-isolation -e .`"
    )
