"""The exceptions kfaar raises. Every failed key check is one type: :class:`KeyVerificationError`."""

from __future__ import annotations


class KfaarError(Exception):
    """Base class of every kfaar error."""


class KeyVerificationError(KfaarError):
    """A key file could not be opened: wrong passphrase, tampered or truncated file.

    Deliberately one type with one message, so the error is no oracle for which check failed.
    """


class KeyFormatError(KfaarError, ValueError):
    """Key material of the wrong size or kind was passed in."""


class ModelIntegrityError(KfaarError):
    """A model file is missing or does not match its pinned SHA-256."""


class ImageReadError(KfaarError, ValueError):
    """An image could not be read or decoded; the message names the file."""


class BackendUnavailableError(KfaarError, RuntimeError):
    """A requested kernel backend (e.g. CUDA) is not available in this build or on this machine."""


class NoFaceFoundError(KfaarError, ValueError):
    """No face was detected where one is required (enroll, recover, verify)."""


class NoCodeFoundError(KfaarError, ValueError):
    """A face was found where a virtual face was expected, but it carries no readable kfaar code:
    not a virtual face, or a copy too degraded (greyscale, heavy re-encoding) to read."""


class TemplateMismatchError(KfaarError, ValueError):
    """A protected template was used with a key, or a model, other than the one it was made with."""
