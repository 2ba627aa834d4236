"""Reading photos: every supported input becomes one ``(H, W, 3) uint8`` RGB, C-contiguous array."""

from __future__ import annotations

import functools
import logging
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from kfaar.errors import ImageReadError

log = logging.getLogger(__name__)

ImageSource = Union[np.ndarray, Image.Image, str, os.PathLike]

# Pillow refuses images above ~179 Mpx as a decompression-bomb guard; that default is kept.

# Photos a folder may hold that Pillow reads only with a plugin (HEIC/HEIF: an iPhone's default,
# through pillow-heif, the ``heif`` extra) or not at all (camera RAW). A folder's are read all
# the same (``iter_images``), so that each one is reported with what it needs, not passed over.
HEIF_EXTENSIONS = frozenset({".heic", ".heif", ".hif"})
RAW_EXTENSIONS = frozenset({".dng", ".cr2", ".cr3", ".nef", ".arw", ".orf", ".rw2", ".raf", ".pef", ".srw"})


@functools.cache
def heif_available() -> bool:
    """Whether HEIC/HEIF files can be read: pillow-heif installed (its opener is registered with
    Pillow on the first call)."""
    try:
        import pillow_heif
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def load_image(src: ImageSource) -> np.ndarray:
    """Return ``src`` as an ``(H, W, 3) uint8`` RGB, C-contiguous array (a new array).

    ``src`` may be an ndarray (assumed RGB(A) channel order: gray ``(H, W)``/``(H, W, 1)``,
    ``(H, W, 3)`` or ``(H, W, 4)``; uint8, uint16 (scaled by 1/257), bool, or float in
    ``[0, 1]``), a PIL image, or a file path. For PIL images and files the EXIF orientation
    is applied. A missing, unreadable or corrupt file raises :class:`ImageReadError` naming it.
    """
    if isinstance(src, np.ndarray):
        return _from_array(src, "photo")
    if isinstance(src, Image.Image):
        return _from_pil(src, "<PIL image>")
    if isinstance(src, (str, os.PathLike)):
        return _from_path(Path(src))
    raise TypeError(
        f"photo: got {type(src).__name__}, expected a numpy array, a PIL.Image or a file path"
    )


def read_only_rgb(src: ImageSource) -> np.ndarray:
    """``src`` as :func:`load_image` returns it, but without the copy when it already is a
    C-ordered, non-empty ``(H, W, 3) uint8`` array: then a read-only view of it (for callers
    that only read the pixels and make every result a new array)."""
    if (isinstance(src, np.ndarray) and src.dtype == np.uint8 and src.ndim == 3 and src.shape[2] == 3
            and src.size and src.flags.c_contiguous):
        view = src.view()
        view.setflags(write=False)
        return view
    return load_image(src)


def load_alpha(path: str | os.PathLike) -> np.ndarray | None:
    """The ``(H, W) uint8`` alpha channel of the image file at ``path``, oriented as
    :func:`load_image` orients its pixels (EXIF applied), or None when it has no
    transparency. ``load_image`` drops alpha (faces are found and replaced in RGB); this is
    how a caller writing the result back keeps it."""
    return _decode(Path(path), _alpha)


def load_image_alpha(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None]:
    """``(load_image(path), load_alpha(path))`` from one decoding of the file."""
    photo = load_photo_file(path)
    return photo.rgb, photo.alpha


@dataclass(frozen=True, eq=False)
class PhotoFile:
    """What a tool rewriting a photo file needs from it: the pixels as :func:`load_image` reads
    them, the alpha channel as :func:`load_alpha` does, and the file's ICC colour profile when
    it describes RGB values (the profile says which red, green and blue the numbers mean: a
    Display P3 phone photo written back without it looks duller in a colour-managed viewer).
    Nothing else of the file is kept — EXIF, XMP and comments can carry the place, the camera
    and a thumbnail of the original photo, faces included.

    A file of several frames or pages (an animated GIF, WebP or PNG, a multi-page TIFF): the
    pixels are the first's, and ``load_photo_file(..., all_frames=True)`` reads the others into
    ``later`` (each a PhotoFile of one frame) with each frame's display time in ``durations``
    and the animation's ``loop`` count, unless they cannot be held together (``frames_left``
    says why)."""

    rgb: np.ndarray = field(repr=False)
    alpha: np.ndarray | None = field(repr=False)
    icc_profile: bytes | None = field(repr=False)
    frames: int = 1  # frames or pages in the file
    later: tuple[PhotoFile, ...] = field(default=(), repr=False)  # frames 2.. when read (all_frames)
    durations: tuple[int, ...] = ()  # ms each frame is shown, one per frame read; () for one frame
    loop: int = 0  # times an animation plays (0: for ever)
    frames_left: str = ""  # why frames 2.. were not read ("" when they were, or there are none)

    @functools.cached_property
    def grey(self) -> bool:
        """No colour in it: a grey (or black-and-white) file, or an RGB one whose every pixel has
        R = G = B (a scan saved as colour). Looked at when first asked; every frame read counts."""
        return is_grey(self.rgb) and all(f.grey for f in self.later)


# the most pixels the frames of one file are read for together (every frame's result is held
# until the file is written): the largest single photo kfaar is measured on
MAX_FRAME_PIXELS = 200_000_000
# a page shown without a display time of its own (a TIFF's) stays this long in an animating viewer
PAGE_MS = 1000


def load_photo_file(path: str | os.PathLike, *, all_frames: bool = False) -> PhotoFile:
    """The :class:`PhotoFile` of the image file at ``path``, from one decoding of it.
    ``all_frames``: read every frame or page of a file of several (see :class:`PhotoFile`)."""
    return _decode(Path(path), lambda im, name: _photo_file(im, name, all_frames))


def _one_frame(im: Image.Image, name: str) -> PhotoFile:
    return PhotoFile(_from_pil(im, name), _alpha(im, name), _rgb_icc(im))


def _photo_file(im: Image.Image, name: str, all_frames: bool) -> PhotoFile:
    n = int(getattr(im, "n_frames", 1))
    first = replace(_one_frame(im, name), frames=n)
    if n == 1 or not all_frames:
        return first
    h, w = first.rgb.shape[:2]
    if n * h * w > MAX_FRAME_PIXELS:
        return replace(first, frames_left=f"its {n} frames hold {_megapixels(n * h * w)} megapixels, "
                                                      f"more than {_megapixels(MAX_FRAME_PIXELS)} are read together")
    # a GIF without a loop count plays once; other formats' default is for ever
    loop = im.info.get("loop", 1 if im.format == "GIF" else 0)
    later, durations = [], [_duration(im)]
    for i in range(1, n):
        im.seek(i)
        f = _one_frame(im, f"{name} (frame {i + 1})")
        if f.rgb.shape[:2] != (h, w):
            return replace(first, frames_left=f"its frames differ in size ({w}x{h} and {f.rgb.shape[1]}x"
                                                          f"{f.rgb.shape[0]}), which one result file cannot hold")
        later.append(f)
        durations.append(_duration(im))
    return replace(first, later=tuple(later), durations=tuple(durations),
                               loop=int(loop) if isinstance(loop, int) and loop >= 0 else 0)


def _duration(im: Image.Image) -> int:
    """The current frame's display time in ms, as the file gives it (0 too: a viewer's own
    pace); a page without one (a TIFF's): PAGE_MS."""
    d = im.info.get("duration")
    return int(round(d)) if isinstance(d, (int, float)) and d >= 0 else PAGE_MS


def is_grey(rgb: np.ndarray, strip: int = 256) -> bool:
    """Whether every pixel of an (H, W, 3) photo has R = G = B: compared a strip of rows at a
    time, so a colour photo is told in its first strip and a large one never needs a mask of
    its size."""
    for y in range(0, rgb.shape[0], strip):
        s = rgb[y:y + strip]
        if not (np.array_equal(s[..., 0], s[..., 1]) and np.array_equal(s[..., 1], s[..., 2])):
            return False
    return True


ORIENTATION = 0x0112  # the EXIF tag; 1 is upright


def _rgb_icc(im: Image.Image) -> bytes | None:
    """The ICC profile of ``im`` if it is one for RGB data (its header's colour space field, bytes
    16-19, reads "RGB "); a grey or CMYK profile would mislabel the RGB pixels kfaar writes."""
    icc = im.info.get("icc_profile")
    if not isinstance(icc, bytes) or len(icc) < 128 or icc[16:20] != b"RGB ":
        return None
    return icc


def like_input(src: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """An edit made on ``before = load_image(src)`` (giving ``after``, both (H, W, 3) uint8 RGB),
    back in ``src``'s own shape and dtype: the pixels the edit changed converted to it (grey
    by ITU-R 601 luma, as Pillow's "L"; uint16 x 257; float / 255; bool: luma >= 128), every
    other pixel, and an alpha channel, exactly ``src``'s."""
    changed = np.any(before != after, axis=2)
    out = np.array(src, copy=True)
    if not changed.any():
        return out
    rgb = after[changed].astype(np.float64)  # (n, 3)
    grey = out.ndim == 2 or out.shape[2] == 1
    v = rgb @ np.array([0.299, 0.587, 0.114]) if grey else rgb
    dt = out.dtype
    if dt == np.bool_:
        v = v >= 128
    elif np.issubdtype(dt, np.floating):
        v = v / 255.0
    elif dt == np.uint16 or (np.issubdtype(dt, np.integer) and dt != np.uint8 and src.size and src.max() > 255):
        v = np.rint(v) * 257  # load_image read it as 16-bit data
    else:
        v = np.rint(v)
    if np.issubdtype(dt, np.integer):  # e.g. int8: no wrap-around
        v = np.clip(v, np.iinfo(dt).min, np.iinfo(dt).max)
    v = v.astype(dt)
    if out.ndim == 2:
        out[changed] = v
    elif grey:
        out[changed, 0] = v
    else:
        out[changed, :3] = v  # RGBA: alpha stays
    return out


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    """An (H, W, 3) uint8 RGB photo as it reads back after being saved as a JPEG of
    ``quality`` (OpenCV's libjpeg, 4:2:0 chroma): what sharing a photo does to it."""
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {rgb.dtype} array of shape {rgb.shape}")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _alpha(im: Image.Image, name: str) -> np.ndarray | None:
    if im.mode not in ("RGBA", "LA", "PA", "La", "RGBa") and "transparency" not in im.info:
        return None
    return np.asarray(_oriented(im, name).convert("RGBA").getchannel("A"), dtype=np.uint8).copy()


def _from_path(path: Path) -> np.ndarray:
    return _decode(path, _from_pil)


def _decode(path: Path, read):
    """``read(image, name)`` of the decoded file at ``path``; every failure an ImageReadError naming it."""
    if not path.exists():
        raise ImageReadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageReadError(f"{path}: is a directory, expected an image file")
    suffix = path.suffix.lower()
    if suffix in RAW_EXTENSIONS:  # Pillow may open a RAW file's small TIFF preview as if it were the photo
        raise ImageReadError(f"{path}: a camera RAW file; develop it to JPEG, PNG or TIFF first")
    heif = heif_available()  # registers the plugin: a HEIF file under another name is read too
    if suffix in HEIF_EXTENSIONS and not heif:
        raise ImageReadError(f"{path}: a HEIC/HEIF photo; reading it needs pillow-heif (pip install 'kfaar[heif]')")
    try:
        with Image.open(path) as im:
            im.load()
            return read(im, str(path))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{_megapixels(int(found.group(1)))} megapixels" if found else "its size"
        limit = _megapixels(2 * (Image.MAX_IMAGE_PIXELS or 0))
        raise ImageReadError(
            f"{path}: {size}, more than Pillow reads without being told to ({limit} megapixels, "
            "its guard against decompression bombs: raise PIL.Image.MAX_IMAGE_PIXELS, or kfaar's "
            "--max-megapixels, if the file is a real photo)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"{path}: cannot decode image ({e})") from e


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f}" if pixels < 10_000_000 else f"{pixels / 1e6:,.0f}"


def _oriented(im: Image.Image, name: str) -> Image.Image:
    try:
        if im.getexif().get(ORIENTATION, 1) == 1:  # upright: no copy (exif_transpose copies anyway,
            return im                              # 0.8 GB of a 200-megapixel photo)
        return ImageOps.exif_transpose(im)
    except Exception as e:  # a malformed EXIF block must not make a readable photo unreadable
        log.debug("%s: EXIF orientation ignored (%s)", name, e)
        return im


def _from_pil(im: Image.Image, name: str) -> np.ndarray:
    im = _oriented(im, name)
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _from_array(np.asarray(im), name)
    if im.mode != "RGB":
        # RGBA/LA/P-with-transparency: alpha is dropped (composited onto black by convert);
        # CMYK, YCbCr, L, 1, P: Pillow's standard conversions.
        im = im.convert("RGB")
    return _rgb_array(im)


def _rgb_array(im: Image.Image, strip: int = 1024) -> np.ndarray:
    """An RGB image's pixels as a new (H, W, 3) uint8 array, copied a strip of rows at a time:
    ``np.asarray(im)`` goes through one ``tobytes()`` of the whole image, which for a
    200-megapixel photo held ~0.6 GB more at its peak."""
    w, h = im.size
    if h <= strip:
        return np.array(im, dtype=np.uint8)
    out = np.empty((h, w, 3), np.uint8)
    for y in range(0, h, strip):
        out[y:y + strip] = np.asarray(im.crop((0, y, w, min(h, y + strip))))
    return out


def _from_array(a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageReadError(
            f"{name}: got an array of shape {a.shape}, expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageReadError(f"{name}: got an empty array of shape {a.shape}")
    a = _to_uint8(a, name)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)  # always a copy-safe, C-ordered result


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a.copy()
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if a.dtype in (np.int32, np.int64, np.uint32) and a.size and a.max() > 255:
        # 16-bit data that Pillow widened (mode "I")
        return (np.clip(a, 0, 65535).astype(np.uint32) // 257).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        if not np.all(np.isfinite(a)):
            raise ImageReadError(f"{name}: float image contains NaN or infinity")
        hi = float(a.max()) if a.size else 0.0
        if hi > 1.0 + 1e-6:
            raise ImageReadError(
                f"{name}: got a float image with values up to {hi:g}, expected floats in [0, 1] "
                "(or pass uint8 in [0, 255])"
            )
        return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    raise ImageReadError(f"{name}: got dtype {a.dtype}, expected uint8, uint16, bool or float in [0, 1]")
