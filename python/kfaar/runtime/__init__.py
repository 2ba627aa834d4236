"""The edge runtime: the shipped networks as ONNX graphs run by onnxruntime, no torch.

``OrtEngine`` / ``default_engine`` (torch-free) run a model set; ``export_bundle`` /
``export_shipped`` (need torch, ``pip install kfaar[train]``) write one. Names are imported
on first use, so importing this package imports neither onnxruntime nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfaar._lazy import lazy_getattr

__all__ = ["ModelSet", "OrtEngine", "OrtEngineOptions", "default_engine", "export_bundle", "export_shipped",
           "load_model_set"]

_LAZY = {
    "ModelSet": "kfaar.runtime.manifest",
    "load_model_set": "kfaar.runtime.manifest",
    "OrtEngine": "kfaar.runtime.engine",
    "OrtEngineOptions": "kfaar.runtime.engine",
    "default_engine": "kfaar.runtime.engine",
    "export_bundle": "kfaar.runtime.export",
    "export_shipped": "kfaar.runtime.export",
}

if TYPE_CHECKING:
    from kfaar.runtime.engine import OrtEngine, OrtEngineOptions, default_engine
    from kfaar.runtime.export import export_bundle, export_shipped
    from kfaar.runtime.manifest import ModelSet, load_model_set


__getattr__ = lazy_getattr(__name__, _LAZY)
