"""Photo files in, photo files out: what ``kfaar anonymize`` does to each file, for Python
callers too.

    from kfaar import Anonymizer
    from kfaar.files import ResultFormat, anonymize_files

    with Anonymizer() as anon:
        done = anonymize_files([(Path("in/a.jpg"), Path("out/a.jpg"))], anon, key, ResultFormat("jpeg"))
    done.report.failed          # [(Path("in/a.jpg"), "why")] for a file that could not be read
    done.written[0].boxes       # the faces replaced

Each result keeps the photo's orientation (EXIF applied), transparency, RGB colour profile and,
as PNG, every frame of an animated or multi-page photo, and drops every other piece of metadata
(EXIF, XMP, comments: the place, the camera, a thumbnail of the original); a photo without
colour is written grey (its faces then carry no code, ``ResultFormat.grey_as_colour`` keeps
it); results are written whole or not at all (:func:`kfaar._atomic.atomic_write`); a file that
cannot be read is reported and skipped, not raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Written:
    """One result :func:`anonymize_files` wrote."""

    source: Path
    result: Path
    boxes: tuple  # of the faces replaced in the (first) frame, (x, y, w, h) in photo pixels
    frames: int  # the file's frames or pages
    grey: bool  # written grey (a photo without colour): its faces carry no code
    frame_boxes: tuple = ()  # a result of several frames: each frame's boxes (the first's are ``boxes``)
    frames_left: str = ""  # why only the first of its frames was written ("" when all were, or it has one)

    @property
    def frames_written(self) -> int:
        return max(1, len(self.frame_boxes))


@dataclass
class AnonymizedFiles:
    """What :func:`anonymize_files` did: the batch's report (its failures named by the photo
    read) and each result written, in input order."""

    report: object  # kfaar.faces.BatchReport
    written: list[Written]

    @property
    def faces(self) -> int:
        return sum(sum(len(b) for b in w.frame_boxes) if w.frame_boxes else len(w.boxes) for w in self.written)

    @property
    def several_frames(self) -> list[tuple[Path, int, str]]:
        """(photo, its frames, why) for each photo of several frames of which only the first was written."""
        return [(w.source, w.frames, w.frames_left) for w in self.written if w.frames_written < w.frames]

    @property
    def grey_with_faces(self) -> list[Path]:
        """Photos written grey with faces replaced: faces that will not authenticate."""
        return [w.source for w in self.written if w.grey and (w.boxes or any(w.frame_boxes))]

    def to_json(self) -> dict:
        """The ``--report`` file: each photo's result and replaced boxes (x, y, w, h; photo pixels);
        a result of several frames lists each frame's under "frames" ("faces" are its first's)."""
        def boxes(b) -> list:
            return [[round(v, 1) for v in box] for box in b]

        photos = []
        for w in self.written:
            entry = {"source": str(w.source), "result": str(w.result), "grey": w.grey, "faces": boxes(w.boxes)}
            if w.frame_boxes:
                entry["frames"] = [boxes(b) for b in w.frame_boxes]
            if w.frames_written < w.frames:
                entry["frames_left"] = f"{w.frames - 1} of its {w.frames} frames not written: {w.frames_left}"
            photos.append(entry)
        return {"photos": photos, "skipped": [{"source": str(s), "error": e} for s, e in self.report.failed]}


@dataclass(frozen=True)
class _Result:
    """One photo's result, as the writer needs it (not the photo's own pixels)."""

    pixels: list  # each frame's result
    alphas: list
    icc: bytes | None
    boxes: list  # each frame's
    frames: int
    grey: bool
    durations: tuple
    loop: int
    frames_left: str


def anonymize_files(targets: list[tuple[Path, Path]], anon, key, result_format: ResultFormat | None = None, *,
                    overlapped: bool = True, progress: bool = False) -> AnonymizedFiles:
    """Anonymize each (source, result) photo file of ``targets`` with ``anon`` (an open
    :class:`~kfaar.pipeline.Anonymizer`) and ``key``. ``result_format``: how results are
    written (default: PNG, zlib level 1). A photo of several frames or pages (an animated GIF,
    a multi-page TIFF) has every frame anonymized into one PNG of as many frames (an animated
    PNG, each frame shown as long as in the photo), where they share one size and hold at most
    200 megapixels together; else, and as JPEG, its first frame alone (``several_frames`` says why).

    ``overlapped`` reads the next photo and writes the last result on two threads while a
    photo is anonymized (``process_images_overlapped``); False does one photo at a time, which
    ``kfaar bench files`` compares it with. ``progress``: a progress bar on stderr (the CLI's)."""
    from kfaar.faces import BatchReport, load_photo_file, process_images, process_images_overlapped
    from kfaar.faces.image import like_input

    fmt = result_format or ResultFormat()
    source_of = {target: source for source, target in targets}  # targets are distinct, sources need not be

    def read(target: Path):
        return load_photo_file(source_of[target], all_frames=fmt.kind == "png")

    def work(photo) -> _Result:  # only what the result file needs waits for the writer: not the photo's pixels
        frames = (photo, *photo.later)
        for f in frames:
            fmt.check(f.alpha)  # before the work, not after
        results = [anon.anonymize_result(f.rgb, key) for f in frames]
        grey = photo.grey and not fmt.grey_as_colour  # the new pixels' luma, every other pixel as read
        pixels = [like_input(f.rgb[:, :, 0], f.rgb, r.image) if grey else r.image for f, r in zip(frames, results)]
        left = photo.frames_left
        if photo.frames > 1 and not photo.later and not left:
            left = "a JPEG holds one frame (--format png keeps them all)"
        return _Result(pixels, [f.alpha for f in frames], None if grey else photo.icc_profile,
                       [r.boxes for r in results], photo.frames, grey, photo.durations, photo.loop, left)

    def write(target: Path, done: _Result) -> tuple:
        fmt.write(target, done.pixels[0], done.alphas[0], done.icc,
                  later=list(zip(done.pixels[1:], done.alphas[1:])), durations=done.durations, loop=done.loop)
        return (done.boxes[0], done.frames, done.grey, tuple(done.boxes) if len(done.boxes) > 1 else (),
                done.frames_left)

    report = BatchReport()
    if overlapped:
        batch = process_images_overlapped(source_of, read, work, write, report=report, progress=progress,
                                          desc="anonymize", ahead=1)
    else:
        batch = process_images(source_of, lambda t: write(t, work(read(t))), report=report, progress=progress,
                               desc="anonymize")
    written = [Written(source_of[target], target, *done) for target, done in batch]
    report.failed = [(source_of[target], msg) for target, msg in report.failed]  # named by the photo read
    return AnonymizedFiles(report, written)


@dataclass(frozen=True)
class ResultFormat:
    """How ``kfaar anonymize`` writes a result: PNG (lossless) or JPEG, tagged with the photo's
    ICC profile, under a hidden temporary name beside the target and renamed into place (a run
    stopped mid-write leaves no half file under a result's name), with the permissions a plain
    ``open`` gives. A (H, W) result is written grey."""

    kind: str = "png"  # "png" | "jpeg"
    png_compression: int = 1  # zlib level; the pixels are the same at every level
    # JPEG: 4:4:4 (no chroma subsampling), since the code carrier is written in chroma
    jpeg_quality: int = 95
    # a photo without colour is written grey (its virtual faces' luma), which loses the code
    # written in colour that authenticates them; True writes it in colour, code and all
    grey_as_colour: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("png", "jpeg"):
            raise ValueError(f"kind: got {self.kind!r}, expected 'png' or 'jpeg'")

    @property
    def suffix(self) -> str:
        return ".png" if self.kind == "png" else ".jpg"

    def check(self, alpha: np.ndarray | None) -> None:
        if alpha is not None and self.kind == "jpeg":
            raise ValueError("it has transparency, which a JPEG cannot hold: anonymize it with --format png")

    def write(self, target: Path, rgb: np.ndarray, alpha: np.ndarray | None, icc: bytes | None, *,
              later: list | None = None, durations: tuple = (), loop: int = 0) -> None:
        """Write one result; ``later``: its frames 2.. as (pixels, alpha) pairs, shown ``durations``
        ms each (one per frame, the first's included) and played ``loop`` times (0: for ever), in
        one animated PNG. Frames that are the same as the one before are merged into it (Pillow's
        APNG writer: its display time added), so a reader may count fewer frames."""
        from PIL import Image

        from kfaar._atomic import atomic_write

        frames = [(rgb, alpha), *(later or [])]
        for _, a in frames:
            self.check(a)
        if len(frames) > 1 and self.kind != "png":
            raise ValueError("a result of several frames is written as PNG only")
        with_alpha = any(a is not None for _, a in frames)
        images = []
        for px, a in frames:
            image = Image.fromarray(px)
            if with_alpha:
                image.putalpha(Image.fromarray(a if a is not None else np.full(px.shape[:2], 255, np.uint8)))
            images.append(image)
        extra = {"icc_profile": icc} if icc else {}
        if self.kind == "png":
            extra["compress_level"] = self.png_compression
        else:
            extra.update(quality=self.jpeg_quality, subsampling=0)
        if len(images) > 1:
            if len(durations) != len(images):
                raise ValueError(f"durations: got {len(durations)} for {len(images)} frames")
            extra.update(save_all=True, append_images=images[1:], duration=list(durations), loop=int(loop))
        with atomic_write(target) as fh:
            images[0].save(fh, self.kind.upper(), **extra)
