"""Anonymizers under evaluation: the :class:`Method` protocol, the baselines, the kfaar hook.

Any anonymizer plugs in as a :class:`Method`: a callable ``anonymize(photo, key) -> photo``
and, where it supports key-controlled authentication, ``recover(virtual_photo, key) ->
identity embedding``. The baselines ignore the key; they exist so the report shows the
privacy / utility trade-off of classic redaction beside the model's.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from kfaar.keys import Key

log = logging.getLogger(__name__)

Anonymize = Callable[[np.ndarray, Key], np.ndarray]
Recover = Callable[[np.ndarray, Key], "np.ndarray | None"]
Enroll = Callable[[np.ndarray], "np.ndarray | None"]
Scores = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (N, D) x (M, D) -> (N, M) similarities


@dataclass(frozen=True)
class Method:
    """An anonymizer as the evaluation sees it.

    ``anonymize`` maps an HxWx3 uint8 RGB photo and a key to a photo of the same shape.
    ``recover`` (optional) maps a virtual photo and a key to an identity embedding; it is
    scored against the template of a genuine photo, made by ``enroll`` (default: the
    evaluation's own SFace embedding of the photo's main face), with ``scores`` (a batched
    similarity; default cosine). ``threshold`` is the method's operating threshold on that
    score (None: the FAR-1% threshold measured here).
    """

    name: str
    anonymize: Anonymize
    recover: Recover | None = None
    enroll: Enroll | None = None
    scores: Scores | None = None
    threshold: float | None = None
    description: str = ""


class MethodUnavailableError(Exception):
    """A named method cannot be built here (e.g. kfaar's model is not installed yet)."""


@dataclass(frozen=True)
class RedactOptions:
    """Face-region redaction shared by the baselines."""

    margin: float = 0.15  # the detector's box grown by this fraction of its size on each side
    blur_sigma: float = 0.05  # Gaussian sigma as a fraction of the face box's longer side (~ kernel box/3)
    pixel_blocks: int = 8  # the face box becomes pixel_blocks x pixel_blocks mosaic cells

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin <= 1.0:
            raise ValueError(f"margin: got {self.margin!r}, expected a fraction in [0, 1]")
        if not self.blur_sigma > 0:
            raise ValueError(f"blur_sigma: got {self.blur_sigma!r}, expected > 0")
        if not isinstance(self.pixel_blocks, int) or self.pixel_blocks < 1:
            raise ValueError(f"pixel_blocks: got {self.pixel_blocks!r}, expected an int >= 1")


class FaceRedactor:
    """Detects every face (YuNet) and applies a region operation to each face box."""

    def __init__(self, detector: object | None = None, options: RedactOptions | None = None) -> None:
        from kfaar.faces import FaceDetector

        self.detector = detector if detector is not None else FaceDetector()
        self.options = options or RedactOptions()
        # the three baselines see the same photos: detect each once (bounded, owned here)
        self._faces: dict[bytes, list] = {}

    def _detect(self, photo: np.ndarray) -> list:
        key = hashlib.blake2b(np.ascontiguousarray(photo).tobytes(), digest_size=16).digest() + bytes(
            str(photo.shape), "ascii"
        )
        faces = self._faces.get(key)
        if faces is None:
            if len(self._faces) >= 4096:
                self._faces.clear()
            faces = self._faces[key] = list(self.detector.detect(photo))
        return faces

    def boxes(self, photo: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes grown by the margin and clipped to the photo, as (x0, y0, x1, y1)."""
        h, w = photo.shape[:2]
        out = []
        for face in self._detect(photo):
            x, y, bw, bh = face.bbox
            mx, my = self.options.margin * bw, self.options.margin * bh
            x0, y0 = max(0, int(np.floor(x - mx))), max(0, int(np.floor(y - my)))
            x1, y1 = min(w, int(np.ceil(x + bw + mx))), min(h, int(np.ceil(y + bh + my)))
            if x1 > x0 and y1 > y0:
                out.append((x0, y0, x1, y1))
        return out

    def blur(self, photo: np.ndarray, key: Key | None = None) -> np.ndarray:
        out = photo.copy()
        for x0, y0, x1, y1 in self.boxes(photo):
            sigma = self.options.blur_sigma * max(x1 - x0, y1 - y0)
            out[y0:y1, x0:x1] = cv2.GaussianBlur(out[y0:y1, x0:x1], (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
        return out

    def pixelate(self, photo: np.ndarray, key: Key | None = None) -> np.ndarray:
        out = photo.copy()
        n = self.options.pixel_blocks
        for x0, y0, x1, y1 in self.boxes(photo):
            region = out[y0:y1, x0:x1]
            small = cv2.resize(region, (n, n), interpolation=cv2.INTER_AREA)
            out[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
        return out

    def blackbox(self, photo: np.ndarray, key: Key | None = None) -> np.ndarray:
        out = photo.copy()
        for x0, y0, x1, y1 in self.boxes(photo):
            out[y0:y1, x0:x1] = 0
        return out


def _identity(photo: np.ndarray, key: Key) -> np.ndarray:
    return photo


@dataclass(frozen=True)
class KfaarModelOptions:
    """Which kfaar model the ``kfaar`` method loads (default: the shipped one)."""

    model: str | None = None  # shipped name or a .safetensors bundle path (e.g. from `kfaar export CKPT`)
    sha256: str | None = None  # pin for your own bundle; unpinned files load with a warning
    precision: str = "fp32"  # "int8": the quantized ONNX graphs


def _kfaar_method(options: KfaarModelOptions | None = None) -> Method:
    """Our model, through the public API; imported only when asked for."""
    o = options or KfaarModelOptions()
    try:
        from kfaar.pipeline import Anonymizer, AnonymizerOptions, Authenticator, AuthenticatorOptions
    except ImportError as exc:
        raise MethodUnavailableError(f"kfaar.pipeline is not available ({exc})") from exc
    try:
        anon = Anonymizer(AnonymizerOptions(model=o.model, model_sha256=o.sha256, precision=o.precision))
        auth = Authenticator(AuthenticatorOptions(model=o.model, model_sha256=o.sha256, precision=o.precision))
    except Exception as exc:  # a missing model file, a native module not built, ...
        raise MethodUnavailableError(f"kfaar's Anonymizer/Authenticator cannot be created ({exc})") from exc
    return Method(
        name="kfaar",
        anonymize=anon.anonymize,
        recover=auth.recover,
        enroll=auth.enroll,
        scores=auth.scores,
        threshold=float(auth.threshold),
        description=f"kfaar virtual faces ({o.model or 'shipped model'}, {o.precision}); KVFA recovery with the key",
    )


BASELINES = ("identity", "blur", "pixelate", "blackbox")
METHOD_NAMES = (*BASELINES, "kfaar")


def build_methods(names: list[str], *, detector: object | None = None, redact: RedactOptions | None = None,
                  kfaar_model: KfaarModelOptions | None = None) -> tuple[list[Method], dict[str, str]]:
    """Build the named methods; returns (methods, {name: reason} for those unavailable here)."""
    unknown = [n for n in names if n not in METHOD_NAMES]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; valid names are {', '.join(METHOD_NAMES)}")
    methods: list[Method] = []
    unavailable: dict[str, str] = {}
    redactor = None
    for name in names:
        if name == "identity":
            methods.append(Method("identity", _identity, description="no change (privacy floor, utility ceiling)"))
        elif name in ("blur", "pixelate", "blackbox"):
            redactor = redactor or FaceRedactor(detector, redact)
            o = redactor.options
            desc = {
                "blur": f"Gaussian blur of each face box, sigma {o.blur_sigma:g} x box size",
                "pixelate": f"{o.pixel_blocks}x{o.pixel_blocks} mosaic of each face box",
                "blackbox": "each face box filled with black",
            }[name]
            methods.append(Method(name, getattr(redactor, name), description=desc))
        else:
            try:
                methods.append(_kfaar_method(kfaar_model))
            except MethodUnavailableError as exc:
                log.warning("method %s unavailable: %s", name, exc)
                unavailable[name] = str(exc)
    return methods, unavailable
