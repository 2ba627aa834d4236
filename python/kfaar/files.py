"""Photo files in, photo files out: what ``kfaar anonymize`` does to each file, for Python
callers too.

    from kfaar import Anonymizer
    from kfaar.files import ResultFormat, anonymize_files

    with Anonymizer() as anon:
        done = anonymize_files([(Path("in/a.jpg"), Path("out/a.jpg"))], anon, key, ResultFormat("jpeg"))
    done.report.failed          # [(Path("in/a.jpg"), "why")] for a file that could not be read
    done.written[0].boxes       # the faces replaced

Each result keeps the photo's orientation (EXIF applied), transparency and RGB colour profile
and drops every other piece of metadata (EXIF, XMP, comments: the place, the camera, a
thumbnail of the original); a photo without colour is written grey (its faces then carry no
code, ``ResultFormat.grey_as_colour`` keeps it); results are written whole or not at all
(:func:`kfaar._atomic.atomic_write`); a file that cannot be read is reported and skipped, not
raised.
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
    boxes: tuple  # of the faces replaced, (x, y, w, h) in photo pixels
    frames: int  # the file's frames or pages: only the first is anonymized and written
    grey: bool  # written grey (a photo without colour): its faces carry no code


@dataclass
class AnonymizedFiles:
    """What :func:`anonymize_files` did: the batch's report (its failures named by the photo
    read) and each result written, in input order."""

    report: object  # kfaar.faces.BatchReport
    written: list[Written]

    @property
    def faces(self) -> int:
        return sum(len(w.boxes) for w in self.written)

    @property
    def several_frames(self) -> list[tuple[Path, int]]:
        return [(w.source, w.frames) for w in self.written if w.frames > 1]

    @property
    def grey_with_faces(self) -> list[Path]:
        """Photos written grey with faces replaced: faces that will not authenticate."""
        return [w.source for w in self.written if w.grey and w.boxes]

    def to_json(self) -> dict:
        """The ``--report`` file: each photo's result and replaced boxes (x, y, w, h; photo pixels)."""
        return {"photos": [{"source": str(w.source), "result": str(w.result), "grey": w.grey,
                            "faces": [[round(v, 1) for v in b] for b in w.boxes]} for w in self.written],
                "skipped": [{"source": str(s), "error": e} for s, e in self.report.failed]}


def anonymize_files(targets: list[tuple[Path, Path]], anon, key, result_format: ResultFormat | None = None, *,
                    overlapped: bool = True, progress: bool = False) -> AnonymizedFiles:
    """Anonymize each (source, result) photo file of ``targets`` with ``anon`` (an open
    :class:`~kfaar.pipeline.Anonymizer`) and ``key``. ``result_format``: how results are
    written (default: PNG, zlib level 1).

    ``overlapped`` reads the next photo and writes the last result on two threads while a
    photo is anonymized (``process_images_overlapped``); False does one photo at a time, which
    ``kfaar bench files`` compares it with. ``progress``: a progress bar on stderr (the CLI's)."""
    from kfaar.faces import BatchReport, load_photo_file, process_images, process_images_overlapped
    from kfaar.faces.image import like_input

    fmt = result_format or ResultFormat()
    source_of = {target: source for source, target in targets}  # targets are distinct, sources need not be

    def read(target: Path):
        return load_photo_file(source_of[target])

    def work(photo):  # only what the result file needs waits for the writer: not the photo's pixels
        fmt.check(photo.alpha)  # before the work, not after
        result = anon.anonymize_result(photo.rgb, key)
        if photo.grey and not fmt.grey_as_colour:  # the new pixels' luma, every other pixel as read
            return (like_input(photo.rgb[:, :, 0], photo.rgb, result.image), photo.alpha, None, result.boxes,
                    photo.frames, True)
        return result.image, photo.alpha, photo.icc_profile, result.boxes, photo.frames, False

    def write(target: Path, done) -> tuple[tuple, int, bool]:
        pixels, alpha, icc, boxes, frames, grey = done
        fmt.write(target, pixels, alpha, icc)
        return boxes, frames, grey

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

    def write(self, target: Path, rgb: np.ndarray, alpha: np.ndarray | None, icc: bytes | None) -> None:
        from PIL import Image

        from kfaar._atomic import atomic_write

        self.check(alpha)
        image = Image.fromarray(rgb)
        if alpha is not None:
            image.putalpha(Image.fromarray(alpha))
        extra = {"icc_profile": icc} if icc else {}
        if self.kind == "png":
            extra["compress_level"] = self.png_compression
        else:
            extra.update(quality=self.jpeg_quality, subsampling=0)
        with atomic_write(target) as fh:
            image.save(fh, self.kind.upper(), **extra)
