"""kfaar: key-driven, identity-preserving face anonymization.

Safe recipes first: :class:`Key`, :class:`Anonymizer`, :class:`Authenticator`. Everything else
(kernels in :mod:`kfaar.ops`, face I/O in :mod:`kfaar.faces`) sits behind them. Heavy modules
are imported on first use so ``import kfaar`` stays cheap and never compiles anything.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kfaar._lazy import lazy_getattr
from kfaar.errors import (
    BackendUnavailableError,
    ImageReadError,
    KeyFormatError,
    KeyVerificationError,
    KfaarError,
    ModelIntegrityError,
    NoCodeFoundError,
    NoFaceFoundError,
    TemplateMismatchError,
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
    "NoCodeFoundError",
    "NoFaceFoundError",
    "ProtectedTemplate",
    "TemplateMismatchError",
    "__version__",
]

# public name -> module that defines it; imported lazily (PEP 562)
_LAZY = {
    "Anonymizer": "kfaar.pipeline",
    "Authenticator": "kfaar.pipeline",
    "ProtectedTemplate": "kfaar.templates",
}

if TYPE_CHECKING:
    from kfaar.pipeline import Anonymizer, Authenticator
    from kfaar.templates import ProtectedTemplate


__getattr__ = lazy_getattr(__name__, _LAZY)
