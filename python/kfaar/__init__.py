"""kfaar: key-driven, identity-preserving face anonymization.

Safe recipes first: :class:`Key`, :class:`Anonymizer`, :class:`Authenticator`. Everything else
(kernels in :mod:`kfaar.ops`, face I/O in :mod:`kfaar.faces`) sits behind them. Heavy modules
are imported on first use so ``import kfaar`` stays cheap and never compiles anything.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from kfaar.errors import (
    BackendUnavailableError,
    ImageReadError,
    KeyFormatError,
    KeyVerificationError,
    KfaarError,
    ModelIntegrityError,
)
from kfaar.keys import Key

__version__ = "0.1.0"

__all__ = [
    "Anonymizer",
    "Authenticator",
    "BackendUnavailableError",
    "ImageReadError",
    "Key",
    "KeyFormatError",
    "KeyVerificationError",
    "KfaarError",
    "ModelIntegrityError",
    "__version__",
]

# public name -> module that defines it; imported lazily (PEP 562)
_LAZY = {
    "Anonymizer": "kfaar.pipeline",
    "Authenticator": "kfaar.pipeline",
}

if TYPE_CHECKING:
    from kfaar.pipeline import Anonymizer, Authenticator


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kfaar' has no attribute {name!r}")
    return getattr(import_module(module), name)
