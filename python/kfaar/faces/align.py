"""5-point alignment to the ArcFace template, and its exact inverse (paste a crop back)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

# The ArcFace / InsightFace 5-point template for a 112x112 crop, in YuNet's landmark order
# (subject's right eye = image left, left eye, nose tip, right mouth corner, left mouth corner).
# SFace and OpenCV's FaceRecognizerSF.alignCrop use exactly these points. For a crop of
# `size` pixels the template is scaled by size / 112 (see canonical_template).
CANONICAL_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
CANONICAL_TEMPLATE.setflags(write=False)
TEMPLATE_SIZE = 112


def canonical_template(size: int = 128) -> np.ndarray:
    """``CANONICAL_TEMPLATE`` scaled to a ``size``-pixel crop, (5, 2) float32."""
    return (CANONICAL_TEMPLATE * (size / TEMPLATE_SIZE)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class AlignedFace:
    crop: np.ndarray = field(repr=False)    # (size, size, 3) uint8 RGB
    matrix: np.ndarray = field(repr=False)  # (2, 3) float64, photo pixels -> crop pixels
    size: int = 128

    @property
    def inverse_matrix(self) -> np.ndarray:
        """(2, 3) float64, crop pixels -> photo pixels."""
        return cv2.invertAffineTransform(self.matrix)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src -> dst.

    Umeyama (1991) without reflection; deterministic (no RANSAC), the same estimate
    OpenCV's FaceRecognizerSF.alignCrop computes. Returns (2, 3) float64.
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n = src.shape[0]
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / n                    # (2, 2)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (s_c**2).sum() / n
    scale = (sig * d).sum() / var_s if var_s > 0 else 1.0
    m = np.empty((2, 3), np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (..., 2) points; float32 out."""
    p = np.asarray(points, np.float64)
    return (p @ matrix[:, :2].T + matrix[:, 2]).astype(np.float32)


def nose_position(landmarks: np.ndarray) -> np.ndarray:
    """(N, 5, 2) five-point landmarks (eyes, nose tip, mouth corners; YuNet's order) -> (N, 2)
    float64: the nose tip's offset (x, y) from the midpoint of the eye and mouth centres, in
    the landmarks' pixels. x says how far and which way a head is turned; y, with the
    person's nose, how far it is tilted."""
    lm = np.asarray(landmarks, np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (5, 2):
        raise ValueError(f"landmarks: got shape {lm.shape}, expected (N, 5, 2)")
    eyes, mouth = (lm[:, 0] + lm[:, 1]) / 2, (lm[:, 3] + lm[:, 4]) / 2
    return lm[:, 2] - (eyes + mouth) / 2


def nose_offset(landmarks: np.ndarray) -> np.ndarray:
    """(N, 5, 2) five-point landmarks -> (N,) float32: the horizontal part of
    :func:`nose_position` (+: towards larger x). How far and which way a head is turned; the
    eigen generator's pose warp shifts the virtual face by it."""
    return nose_position(landmarks)[:, 0].astype(np.float32)


def _check_photo(photo: np.ndarray, name: str = "photo") -> None:
    if not isinstance(photo, np.ndarray) or photo.dtype != np.uint8 or photo.ndim != 3 or photo.shape[2] != 3:
        got = f"{photo.dtype} array of shape {photo.shape}" if isinstance(photo, np.ndarray) else type(photo).__name__
        raise ValueError(f"{name}: got {got}, expected an (H, W, 3) uint8 RGB array (see load_image)")


_BORDERS = ("constant", "replicate")


def align_face(rgb: np.ndarray, landmarks: np.ndarray, size: int = 128, *, border: str = "constant") -> AlignedFace:
    """Warp ``rgb`` so the 5 ``landmarks`` (photo pixels) land on the canonical template.

    Bilinear, and by default black outside the photo: exactly OpenCV 4's
    ``FaceRecognizerSF.alignCrop`` (and InsightFace's ``norm_crop``), so SFace embeddings of
    faces at the photo edge match OpenCV's too; the warp is kfaar's own
    (:func:`kfaar.ops.warp_affine`), the same bytes whatever OpenCV is installed.
    ``border="replicate"`` smears the edge pixels instead (nicer input for a generator;
    paste_back never writes outside the photo anyway).
    """
    _check_photo(rgb, "rgb")
    lm = np.asarray(landmarks, np.float64)
    if lm.shape != (5, 2) or not np.all(np.isfinite(lm)):
        raise ValueError(f"landmarks: got shape {lm.shape}, expected (5, 2) finite photo coordinates")
    if not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size: got {size!r}, expected an int >= 16")
    if border not in _BORDERS:
        raise ValueError(f"border: got {border!r}, expected one of {sorted(_BORDERS)}")
    from kfaar.ops import warp_affine

    m = similarity_transform(lm, canonical_template(int(size)))
    crop = warp_affine(rgb, m, (int(size), int(size)), border=border)
    return AlignedFace(crop=crop, matrix=m, size=int(size))


def face_mask(size: int, feather: float = 0.08) -> np.ndarray:
    """Soft elliptical mask over the face in a ``size`` crop, (size, size) float32 in [0, 1].

    The ellipse covers brows to chin and cheek to cheek of the template; ``feather`` is the
    blur width as a fraction of ``size`` — the mask is eroded by that much first, so it is
    exactly 1 on the inner face and reaches 0 before the crop border (no seam).
    """
    s = int(size)
    f = max(1, int(round(feather * s)))
    mask = np.zeros((s, s), np.float32)
    center = (int(round(0.5 * s)), int(round(0.56 * s)))
    axes = (max(1, int(round(0.46 * s)) - f), max(1, int(round(0.52 * s)) - f))
    cv2.ellipse(mask, center, axes, 0, 0, 360, 1.0, thickness=-1)
    mask = cv2.GaussianBlur(mask, (0, 0), sigmaX=f / 2.0)
    mask[[0, -1], :] = 0.0
    mask[:, [0, -1]] = 0.0
    return mask


def paste_back(
    photo: np.ndarray,
    crop: np.ndarray,
    matrix: np.ndarray,
    *,
    feather: float = 0.08,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Inverse-warp ``crop`` into a copy of ``photo`` through a feathered mask.

    ``matrix`` is the photo -> crop transform of :class:`AlignedFace`. ``mask`` (crop-sized,
    float in [0, 1]) replaces the default :func:`face_mask`. Returns a new (H, W, 3) uint8.
    """
    _check_photo(photo)
    out = photo.copy()
    paste_into(out, crop, matrix, feather=feather, mask=mask)
    return out


# rows of the face's box blended at a time: the float buffers are a strip's, not the box's
# (a face filling a 200-megapixel photo has a box of ~26 megapixels: 0.3 GB per float buffer)
_BLEND_ROWS = 256


def paste_into(
    out: np.ndarray,
    crop: np.ndarray,
    matrix: np.ndarray,
    *,
    feather: float = 0.08,
    mask: np.ndarray | None = None,
) -> None:
    """:func:`paste_back` in place: ``out`` (a writable (H, W, 3) uint8 photo) gets
    the face; the same bytes as ``paste_back(out, ...)`` returns. Pasting several faces into one
    copy of a photo spares a copy of the whole photo per face."""
    _check_photo(out)
    if not out.flags.writeable:
        raise ValueError("out: got a read-only array, expected one to paste into")
    _check_photo(crop, "crop")
    s = crop.shape[0]
    if crop.shape[1] != s:
        raise ValueError(f"crop: got shape {crop.shape}, expected a square (S, S, 3) crop")
    m = np.asarray(matrix, np.float64)
    if m.shape != (2, 3) or not np.all(np.isfinite(m)):
        raise ValueError(f"matrix: got shape {m.shape}, expected a finite (2, 3) photo->crop affine")
    if not 0.0 <= feather <= 0.5:
        raise ValueError(f"feather: got {feather!r}, expected a fraction of the crop size in [0, 0.5]")
    if mask is None:
        mask = face_mask(s, feather)
    else:
        mask = np.asarray(mask, np.float32)
        if mask.shape != (s, s):
            raise ValueError(f"mask: got shape {mask.shape}, expected ({s}, {s}) like the crop")
    h, w = out.shape[:2]
    # Only the photo region under the crop is touched: warp into its bounding box.
    corners = transform_points(cv2.invertAffineTransform(m), np.array([[0, 0], [s, 0], [0, s], [s, s]]))
    x0 = max(0, int(np.floor(corners[:, 0].min())) - 1)
    y0 = max(0, int(np.floor(corners[:, 1].min())) - 1)
    x1 = min(w, int(np.ceil(corners[:, 0].max())) + 2)
    y1 = min(h, int(np.ceil(corners[:, 1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        return
    shifted = m.copy()
    shifted[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)  # box pixel -> crop pixel
    size = (x1 - x0, y1 - y0)
    # cubic for the image: a second linear resampling would blur the round trip visibly
    # (mean error ~3.3 vs ~2.2 grey levels at matched resolution); linear for the mask. kfaar's
    # own warps: OpenCV 4's numbers whatever OpenCV is installed (kfaar.ops.warp_affine).
    from kfaar.ops import warp_affine

    face = warp_affine(crop, shifted, size, interpolation="cubic", inverse=True)
    alpha = warp_affine(np.ascontiguousarray(mask, np.float32), shifted, size, border="constant", inverse=True)
    alpha = np.clip(alpha, 0.0, 1.0, out=alpha)[:, :, None]
    # alpha * face + (1 - alpha) * region, rounded and clipped, in two float buffers the size
    # of a strip of the box (the same arithmetic as written out, so the same bytes)
    for r0 in range(0, y1 - y0, _BLEND_ROWS):
        r1 = min(y1 - y0, r0 + _BLEND_ROWS)
        a = alpha[r0:r1]
        blend = a * face[r0:r1]
        region = out[y0 + r0:y0 + r1, x0:x1].astype(np.float32)
        region *= 1.0 - a
        blend += region
        np.rint(blend, out=blend)
        np.clip(blend, 0, 255, out=blend)
        out[y0 + r0:y0 + r1, x0:x1] = blend
