"""The safe recipes: :class:`Anonymizer` and :class:`Authenticator`.

>>> from kfaar import Key, Anonymizer, Authenticator
>>> key = Key.generate()
>>> with Anonymizer() as anon:
...     virtual = anon.anonymize("photo.jpg", key)       # (H, W, 3) uint8, every face replaced
>>> with Authenticator() as auth:
...     t = auth.enroll("genuine.jpg")                   # SFace template, computed on device
...     auth.verify(virtual, key, t)                     # True with the right key
...     pt = auth.enroll_protected("genuine.jpg", key)   # what a service should keep instead
...     auth.verify_protected(virtual, pt)               # True, and the service needs no key

Both run: detect (YuNet) -> 5-point align to a 128-px crop -> networks on the crop. The
anonymizer pastes each virtual crop back through the generator's own face-interior mask, so
only the pixels it changed are blended into the photo. Everything is deterministic: the same
photo and key give the same bytes. Options are frozen dataclasses; objects own their
detector/encoder sessions and release them in :meth:`close` (or a ``with`` block). One object
may serve several threads at once (each thread gets its own detector; the ORT sessions are
shared), with the same results as one thread.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from dataclasses import dataclass, field

import numpy as np

from kfaar.errors import NoCodeFoundError, NoFaceFoundError, TemplateMismatchError
from kfaar.keys import Key
from kfaar.templates import ProtectedTemplate, identity_vector

log = logging.getLogger(__name__)

__all__ = [
    "AnonymizeResult",
    "Anonymizer",
    "AnonymizerOptions",
    "Authenticator",
    "AuthenticatorOptions",
    "CodeRead",
    "NoCodeFoundError",
    "NoFaceFoundError",
    "RecoverResult",
    "VerifyResult",
]



def _detector_options():
    from kfaar.faces import DetectorOptions

    return DetectorOptions()


def _anonymizer_detector_options():
    """Every face YuNet finds at a score of 0.5 or more, however small. A miss leaves a person
    in the photo as they were; a false detection paints a face over something that is not one.
    Measured on LFW photos, each detection viewed: on 1,000, the 24-px floor (where SFace stops
    telling people apart, the Authenticator's) had left 11 faces of 15-21 px in place, every one
    a bystander's; on 2,000, the 125 detections scoring 0.5-0.7 that the 0.7 threshold dropped
    were nearly all faces too (bystanders, faces cut by the frame, blurred ones; about one in
    ten a hand, a sleeve or a blur); below 0.5 the share of non-faces grows.

    Photos over 1,920 px are searched a second time at up to 8,192 px, in tiles: at
    1,280 a 12-megapixel photo's faces under ~40 px are below what YuNet sees (of 60 faces of
    32 px on a synthetic 12-MP crowd, 11 were found; with the second pass 60, and 60 of 60 at
    24 px), for ~0.07 -> 0.35-0.52 s of detection a 12-MP photo on 2 cores (YuNet through
    onnxruntime; 0.10 -> 0.78-1.03 s through OpenCV), at the same peak memory. Up to 4,096
    px until 2026-11-27 21:55, which left a 48-megapixel photo's (8,064 x 6,048) faces under
    ~26 px: on a synthetic crowd there (`tools/small_face_recall.py`), 24-px faces 11 of 60
    found, 59 at 8,192; 20 px 1 and 48; 32 px 40 and 60; detection 0.8 -> 1.8 s."""
    from kfaar.faces import DetectorOptions

    return DetectorOptions(min_face_size=0, score_threshold=0.5, fine_max_side=8192)


@dataclass(frozen=True)
class AnonymizerOptions:
    model: str | os.PathLike | bytes | None = None  # shipped name (default "kfaar-v2"), ONNX set folder, bundle path/bytes
    model_sha256: str | None = None  # required match for your own weights; shipped ones are pinned
    detector: object = field(default_factory=_anonymizer_detector_options)  # kfaar.faces.DetectorOptions: any size, score >= 0.5
    threads: int | None = None  # intra-op threads (ORT sessions, or torch); None = the library's default
    batch_size: int = 16  # faces per generator call
    backend: str | None = None  # "onnx" (onnxruntime, no torch) or "torch"; None: by model (bundles run on torch)
    precision: str = "fp32"  # "int8": the quantized ONNX graphs (onnx backend)


@dataclass(frozen=True)
class AuthenticatorOptions:
    model: str | os.PathLike | bytes | None = None
    model_sha256: str | None = None
    detector: object = field(default_factory=_detector_options)
    threads: int | None = None
    threshold: float | None = None  # None: the shipped operating point (wrong-key acceptance <= 0.5% on train)
    backend: str | None = None
    precision: str = "fp32"
    # recover refuses a face whose code carrier's pilot match is below this (NoCodeFoundError;
    # verify: False). 0, the default, reads every face. Measured on 300 dev identities
    # (tools/kvfa_robustness.py; THREAT_MODEL.md): faces with no code read at most 0.80 (median
    # 0.65), virtual photos 0.76-1.0 as made and lower after JPEG. Without a gate 4 of 1,500
    # code-free faces were accepted at the threshold, with 0.75 none, for no lossless read and
    # 1.3 points of TAR after JPEG q75 (3 after q50).
    min_code_match: float = 0.0

    def __post_init__(self) -> None:
        m = self.min_code_match
        if isinstance(m, bool) or not isinstance(m, (int, float, np.floating)) or not 0.0 <= float(m) <= 1.0:
            raise ValueError(f"min_code_match: got {m!r}, expected a number in [0, 1] (0: read every face)")


@dataclass(frozen=True)
class RecoverResult:
    embedding: np.ndarray  # (128,) float32, the recovered identity embedding (meaningful only with the right key)
    code_match: float  # the code carrier's pilot match after re-alignment: ~1 in a virtual face, lower without a code
    box: tuple  # (x, y, w, h) of the face read, photo pixels


@dataclass(frozen=True)
class CodeRead:
    code: np.ndarray  # (128,) float32 unit: the keyed code the face carries, read without a key (the reader is public)
    code_match: float  # as RecoverResult's
    box: tuple  # (x, y, w, h) of the face read, photo pixels


@dataclass(frozen=True)
class VerifyResult:
    match: bool  # score >= the Authenticator's threshold, and the code readable
    score: float | None  # on score()'s scale; None when the code was not read (code_match below the gate)
    code_match: float  # the code carrier's pilot match after re-alignment
    box: tuple  # (x, y, w, h) of the face read, photo pixels


@dataclass(frozen=True)
class AnonymizeResult:
    image: np.ndarray  # (H, W, 3) uint8 RGB, every detected face replaced
    n_faces: int
    boxes: tuple  # (x, y, w, h) of each replaced face, photo pixels


class _Base:
    def __init__(self, options):
        from kfaar.faces import FaceDetector, SFaceEncoder
        from kfaar.runtime.engine import load_engine

        self.options = options
        self._engine = load_engine(options.model, options.model_sha256, backend=options.backend,
                                   threads=options.threads, precision=options.precision)
        # Each thread that calls in gets its own detector (OpenCV's YuNet network, which kfaar
        # ran before onnxruntime, kept per-input-size state and crashed the process when two
        # threads shared one; a detector is still documented as one thread's). The engine's
        # and the encoder's ORT sessions are shared; their ``run`` is thread-safe.
        self._local = threading.local()
        self._lock = threading.Lock()
        self._local.detector = FaceDetector(options.detector, threads=options.threads)  # this thread's, made here: a bad model fails early
        self._detectors = weakref.WeakSet([self._local.detector])  # to close; a finished thread's goes with it
        self._encoder = SFaceEncoder(threads=options.threads)
        self._closed = False

    @property
    def _detector(self):
        """The calling thread's face detector (created on its first call)."""
        from kfaar.faces import FaceDetector

        det = getattr(self._local, "detector", None)
        if det is None:
            det = FaceDetector(self.options.detector, threads=self.options.threads)
            with self._lock:
                self._check_open()
                self._detectors.add(det)
            self._local.detector = det
        return det

    def __getstate__(self) -> dict:  # pickles for process pools: the detectors are made anew there
        return {k: v for k, v in self.__dict__.items() if k not in ("_local", "_lock", "_detectors")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local, self._lock, self._detectors = threading.local(), threading.Lock(), weakref.WeakSet()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed; create a new one")

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                for det in self._detectors:
                    det.close()
                self._encoder.close()
                self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _load(self, photo) -> np.ndarray:
        """``photo``'s pixels, not copied when they are already RGB uint8 (nothing here writes to
        them; every result is a new array)."""
        from kfaar.faces.image import read_only_rgb

        return read_only_rgb(photo)

    def _faces(self, rgb: np.ndarray) -> list:
        """The photo's faces, its main one (``main_face``: what enroll and recover read) first,
        then the others by detector score."""
        from kfaar.faces import main_face

        faces = self._detector.detect(rgb)
        first = main_face(faces, rgb.shape)
        return [] if first is None else [first] + [f for f in faces if f is not first]

    def _aligned(self, rgb: np.ndarray, face):
        from kfaar.faces import align_face

        return align_face(rgb, face.landmarks, size=self._engine.crop_size)

    def _main_aligned(self, photo, what: str):
        rgb = self._load(photo)
        faces = self._faces(rgb)
        if not faces:
            raise NoFaceFoundError(f"{what}: no face found in the photo ({rgb.shape[1]}x{rgb.shape[0]})")
        return rgb, faces[0], self._aligned(rgb, faces[0])

    def _main_crop(self, photo, what: str) -> np.ndarray:
        return self._main_aligned(photo, what)[2].crop[None]


class Anonymizer(_Base):
    """Replaces every face in a photo with the key's virtual face (HPVFG)."""

    def __init__(self, options: AnonymizerOptions | None = None):
        super().__init__(options or AnonymizerOptions())
        self._paste_mask = self._engine.paste_mask  # the generator's face-interior mask (crop_size, crop_size)

    @classmethod
    def create_from_options(cls, options: AnonymizerOptions) -> Anonymizer:
        return cls(options)

    def anonymize(self, photo, key: Key) -> np.ndarray:
        """photo: (H, W, 3) uint8 RGB array, PIL image or path -> (H, W, 3) uint8 with faces replaced.

        Any other array ``kfaar.faces.load_image`` reads — grey (H, W) or (H, W, 1), RGBA
        (H, W, 4); uint16, float in [0, 1] or bool — comes back in its own shape and dtype:
        the replaced faces' pixels converted to it, every other pixel and the alpha channel
        exactly the input's. A photo without faces comes back unchanged (a copy), and the log
        says so. A grey or bool result cannot hold the colour code the Authenticator reads, so
        its faces will not authenticate (the log warns): pass such a photo as RGB to keep it."""
        if isinstance(photo, np.ndarray) and (photo.dtype != np.uint8 or photo.shape[2:] != (3,)):
            from kfaar.faces.image import like_input

            rgb = self._load(photo)
            result = self.anonymize_result(rgb, key)
            if result.n_faces and (photo.ndim == 2 or photo.shape[2] == 1 or photo.dtype == np.bool_):
                log.warning("anonymize: a %s result cannot hold the colour code the Authenticator reads; its %d "
                            "face(s) will not authenticate (pass the photo as RGB to keep the code)",
                            "black-and-white" if photo.dtype == np.bool_ else "grey", result.n_faces)
            return like_input(photo, rgb, result.image)
        return self.anonymize_result(photo, key).image

    def anonymize_result(self, photo, key: Key) -> AnonymizeResult:
        from kfaar.faces import transform_points
        from kfaar.faces.align import paste_into

        self._check_open()
        rgb = self._load(photo)
        faces = self._detector.detect(rgb)
        if not faces:
            log.info("anonymize: no face found in the %dx%d photo; returned unchanged", rgb.shape[1], rgb.shape[0])
            return AnonymizeResult(rgb.copy(), 0, ())
        aligned = [self._aligned(rgb, f) for f in faces]
        landmarks = np.stack([transform_points(a.matrix, f.landmarks) for a, f in zip(aligned, faces)])
        virtual = self.anonymize_crops(np.stack([a.crop for a in aligned]), key, landmarks)
        out = rgb.copy()  # one copy, every face pasted into it
        for a, v in zip(aligned, virtual):
            paste_into(out, v, a.matrix, mask=self._paste_mask)
        log.info("anonymize: replaced %d face(s)", len(faces))
        return AnonymizeResult(out, len(faces), tuple(f.bbox for f in faces))

    def anonymize_crops(self, crops: np.ndarray, key: Key, landmarks: np.ndarray | None = None) -> np.ndarray:
        """Aligned crops (N, 128, 128, 3) uint8 -> their virtual crops, same shape (the level below anonymize).

        ``landmarks`` (N, 5, 2): the detector's five points in crop pixels, where known; the
        pose warp then follows them instead of reading the head turn from the face."""
        from kfaar.faces.align import nose_offset

        self._check_open()
        crops = _check_crops(crops, self._engine.crop_size)
        if landmarks is not None and np.shape(landmarks) != (len(crops), 5, 2):
            raise ValueError(f"landmarks: got shape {np.shape(landmarks)}, expected ({len(crops)}, 5, 2) crop pixels")
        offsets = None if landmarks is None else nose_offset(landmarks)
        z = self._encoder.encode(crops)
        bs = self.options.batch_size
        return np.concatenate([self._engine.generate(crops[i : i + bs], z[i : i + bs], key,
                                                     None if offsets is None else offsets[i : i + bs])
                               for i in range(0, len(crops), bs)]) if len(crops) else crops.copy()


class Authenticator(_Base):
    """Key-controlled virtual face authentication (KVFA): recover with the key, compare to a template."""

    def __init__(self, options: AuthenticatorOptions | None = None):
        super().__init__(options or AuthenticatorOptions())
        t = self.options.threshold
        self.threshold = float(self._engine.threshold if t is None else t)

    @classmethod
    def create_from_options(cls, options: AuthenticatorOptions) -> Authenticator:
        return cls(options)

    def enroll(self, photo) -> np.ndarray:
        """A genuine photo -> (128,) float32 template: SFace of its main face, computed on device."""
        self._check_open()
        return self._encoder.encode(self._main_crop(photo, "enroll"))[0]

    def enroll_crops(self, crops: np.ndarray) -> np.ndarray:
        """Aligned genuine crops (N, 128, 128, 3) uint8 -> (N, 128) templates."""
        self._check_open()
        return self._encoder.encode(_check_crops(crops, self._engine.crop_size))

    def recover(self, virtual_photo, key: Key) -> np.ndarray:
        """A virtual photo and the key -> (128,) float32 recovered identity embedding of its main face.

        The re-detected alignment is refined on the code carrier's pilot signal first. A face
        whose pilot match stays below ``options.min_code_match`` carries no code to read (not a
        virtual face, or a greyscale or badly re-encoded copy): :class:`NoCodeFoundError`."""
        r = self.recover_result(virtual_photo, key)
        if r.code_match < self.options.min_code_match:
            raise NoCodeFoundError(f"recover: the face carries no readable kfaar code (pilot match {r.code_match:.3f}, "
                                   f"a virtual face reads >= {self.options.min_code_match:.2f}): not a virtual face, "
                                   "or a copy too degraded to read")
        return r.embedding

    def recover_result(self, virtual_photo, key: Key) -> RecoverResult:
        """:meth:`recover`'s embedding with the code's pilot match and the face's box, whatever the match."""
        self._check_open()
        rgb, face, aligned = self._main_aligned(virtual_photo, "recover")
        return self._read(rgb, face, aligned.matrix, key)

    def recover_all(self, virtual_photo, key: Key) -> list[RecoverResult]:
        """Every face of the photo read with the key, the main face (the one :meth:`recover`
        reads) first, then the others by detector score; [] when there is none. For a group
        photo whose faces were all made with one key; a face without a readable code comes
        back with its low ``code_match``, not refused."""
        self._check_open()
        rgb = self._load(virtual_photo)
        return [self._read(rgb, f, self._aligned(rgb, f).matrix, key) for f in self._faces(rgb)]

    def _read(self, rgb: np.ndarray, face, matrix: np.ndarray, key: Key) -> RecoverResult:
        """One face: its alignment refined on the code's pilots, then read and inverted with ``key``."""
        crop, match = self._realigned(rgb, matrix)
        return RecoverResult(self._engine.recover(crop[None], key)[0], match, face.bbox)

    def _realigned(self, rgb: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, float]:
        """The face's crop at the alignment its code's pilots line up at, and their match."""
        from kfaar.ops import warp_affine

        matrix, match = self._engine.realign(rgb, matrix)
        log.debug("recover: pilot match %.3f after re-alignment", match)
        s = self._engine.crop_size
        crop = warp_affine(rgb, np.ascontiguousarray(matrix, np.float64), (s, s))
        return crop, float(match)

    def recover_crops(self, crops: np.ndarray, key: Key) -> np.ndarray:
        """Aligned virtual crops (N, 128, 128, 3) uint8 -> (N, 128) recovered embeddings."""
        self._check_open()
        return self._engine.recover(_check_crops(crops, self._engine.crop_size), key)

    def score(self, embedding: np.ndarray, template: np.ndarray) -> float:
        """Similarity of one recovered embedding and one template (centred, whitened cosine)."""
        if isinstance(template, ProtectedTemplate):
            raise TypeError("template: a ProtectedTemplate is scored against the code a virtual face carries: "
                            "score_code(read_code(virtual_photo).code, template), or verify_protected")
        e, t = np.asarray(embedding, np.float32), np.asarray(template, np.float32)
        if e.shape != (128,) or t.shape != (128,):
            raise ValueError(f"embedding, template: expected (128,) each, got {e.shape} and {t.shape}")
        return float(self._engine.scores(e[None], t[None])[0, 0])

    def scores(self, embeddings: np.ndarray, templates: np.ndarray) -> np.ndarray:
        """(N, 128) x (M, 128) -> (N, M) similarities."""
        return self._engine.scores(np.asarray(embeddings, np.float32), np.asarray(templates, np.float32))

    def verify(self, virtual_photo, key: Key, template: np.ndarray | ProtectedTemplate) -> bool:
        """True when the virtual photo, read with ``key``, matches ``template`` at :attr:`threshold`;
        False too for a face that carries no readable code (below ``options.min_code_match``).

        ``template``: a plain one (:meth:`enroll`) or a :class:`ProtectedTemplate`, which must
        have been made with ``key`` (TemplateMismatchError otherwise: under another key every
        face would read as a stranger's)."""
        if not isinstance(key, Key):
            raise TypeError(f"key: expected kfaar.Key, got {type(key).__name__}")
        return self.verify_result(virtual_photo, key, template).match

    def verify_result(self, virtual_photo, key: Key | None, template: np.ndarray | ProtectedTemplate
                      ) -> VerifyResult:
        """:meth:`verify`'s decision with its score, the code's pilot match and the face's box.
        ``key`` may be None for a protected template (:meth:`verify_protected`); a plain one
        is read with the key."""
        if isinstance(template, ProtectedTemplate):
            self._check_protected(template)
            if key is not None:
                template.check_key(key)
            r = self.read_code(virtual_photo)
        elif key is None:
            raise TypeError("key: a plain template is read with the key (only a ProtectedTemplate is verified "
                            "without one)")
        else:
            r = self.recover_result(virtual_photo, key)
        if r.code_match < self.options.min_code_match:
            return VerifyResult(False, None, r.code_match, r.box)
        if isinstance(template, ProtectedTemplate):
            s = self.score_code(r.code, template)
        else:
            s = self.score(r.embedding, template)
        return VerifyResult(s >= self.threshold, s, r.code_match, r.box)

    # -------------------------------------------------------------- protected templates
    def protect(self, template: np.ndarray, key: Key) -> ProtectedTemplate:
        """A plain template (:meth:`enroll`) -> the person's :class:`ProtectedTemplate` under
        ``key``, for a service to keep instead (it matches only virtual faces made with ``key``;
        a new key revokes it). Run it where the key is, on the device."""
        self._check_open()
        t = identity_vector(template, "template (Authenticator.enroll)").astype(np.float32)
        code = self._engine.protected_code(t[None], key)[0]
        return ProtectedTemplate(code, key.fingerprint, self._engine.space)

    def enroll_protected(self, photo, key: Key) -> ProtectedTemplate:
        """A genuine photo and the key -> the main face's :class:`ProtectedTemplate`; the plain
        template it is made from never leaves this call."""
        return self.protect(self.enroll(photo), key)

    def read_code(self, virtual_photo) -> CodeRead:
        """The keyed code the main face of a virtual photo carries, read without a key, with its
        pilot match and box (whatever the match). Scored against a protected template by
        :meth:`score_code`."""
        self._check_open()
        rgb, face, aligned = self._main_aligned(virtual_photo, "read_code")
        crop, match = self._realigned(rgb, aligned.matrix)
        return CodeRead(self._engine.read(crop[None])[0], match, face.bbox)

    def score_code(self, code: np.ndarray, template: ProtectedTemplate) -> float:
        """Similarity of a code read from a virtual face (:meth:`read_code`) and a protected
        template, on :meth:`score`'s scale (equal to the plain template's score): compare to
        :attr:`threshold`."""
        self._check_protected(template)
        c = np.asarray(code, np.float32)
        if c.shape != (128,):
            raise ValueError(f"code: expected (128,) (Authenticator.read_code), got {c.shape}")
        return float(self._engine.code_scores(c[None], template.code[None])[0, 0])

    def verify_protected(self, virtual_photo, template: ProtectedTemplate) -> bool:
        """True when the virtual photo's main face matches the protected template at
        :attr:`threshold` — no key needed, so a service can check a login with only what it
        stores. False for a face whose code is unreadable (below ``options.min_code_match``).
        It checks only that the face carries this person's code: a copy of one of their virtual
        photos passes as well (THREAT_MODEL.md)."""
        self._check_protected(template)
        return self.verify_result(virtual_photo, None, template).match

    def _check_protected(self, template: object) -> None:
        if not isinstance(template, ProtectedTemplate):
            raise TypeError(f"template: expected kfaar.ProtectedTemplate, got {type(template).__name__}")
        if template.space != self._engine.space:
            raise TemplateMismatchError(
                f"template: made in identity space {template.space}, this model's is {self._engine.space}: "
                "enroll the person again with this model")


def _check_crops(crops: np.ndarray, size: int) -> np.ndarray:
    c = np.asarray(crops)
    if c.dtype != np.uint8 or c.ndim != 4 or c.shape[1:] != (size, size, 3):
        raise ValueError(f"crops: got {c.dtype} array of shape {c.shape}, expected (N, {size}, {size}, 3) uint8 "
                         "aligned crops (kfaar.faces.align_face)")
    return c
