"""Evaluation of face anonymizers against independent judges (``kfaar eval``).

>>> from kfaar.eval import EvalConfig, Method, evaluate
>>> res = evaluate(EvalConfig(limit=20, out_dir="out"), extra_methods=[Method("mine", my_anonymize)])
>>> res.metrics["methods"]["mine"]["anonymity"]

See docs/EVALUATION.md for how to run it and what each property means. Names are imported
on first use so ``kfaar eval --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfaar._lazy import lazy_getattr

__all__ = [
    "EvalConfig",
    "EvalOptions",
    "EvalResult",
    "EvaluateResult",
    "Method",
    "MethodResult",
    "RedactOptions",
    "evaluate",
]

_LAZY = {
    "EvalConfig": "kfaar.eval.api",
    "EvaluateResult": "kfaar.eval.api",
    "evaluate": "kfaar.eval.api",
    "Method": "kfaar.eval.methods",
    "RedactOptions": "kfaar.eval.methods",
    "EvalOptions": "kfaar.eval.runner",
    "EvalResult": "kfaar.eval.runner",
    "MethodResult": "kfaar.eval.runner",
}

if TYPE_CHECKING:
    from kfaar.eval.api import EvalConfig, EvaluateResult, evaluate
    from kfaar.eval.methods import Method, RedactOptions
    from kfaar.eval.runner import EvalOptions, EvalResult, MethodResult


__getattr__ = lazy_getattr(__name__, _LAZY)
