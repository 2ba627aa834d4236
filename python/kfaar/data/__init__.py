"""Face data: the LFW cache (``kfaar data prepare``), the Yale set, and where the data lives."""

from __future__ import annotations

from kfaar.data.lfw import LfwSplit, PrepareOptions, PrepareResult, load_split, prepare
from kfaar.data.paths import default_data_dir, require_data_dir
from kfaar.data.yale import iter_yale

__all__ = [
    "LfwSplit",
    "PrepareOptions",
    "PrepareResult",
    "default_data_dir",
    "iter_yale",
    "load_split",
    "prepare",
    "require_data_dir",
]
