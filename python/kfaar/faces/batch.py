"""Folder processing: expand paths to image files, run a function on each, skip and report failures.

One function per file, on the calling thread (``data prepare``'s pattern)::

    report = BatchReport()
    for path, result in process_images(iter_images(args), work, report=report, desc="encode"):
        keep(path, result)

or read, work and write as three stages, the reading of the next files and the writing of
the last results on two threads beside the work (``kfaar anonymize``: Pillow's decoders and
zlib release the GIL, so a PNG being compressed costs the model little)::

    for path, saved in process_images_overlapped(paths, read, work, write, report=report):
        ...
    for path, error in report.failed:
        click.echo(f"skipped {path}: {error}", err=True)

A bad file never stops the batch: its exception is caught, logged and recorded in ``report``.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from kfaar.faces.image import HEIF_EXTENSIONS, RAW_EXTENSIONS

log = logging.getLogger(__name__)

# what a folder contributes: photos Pillow reads, and those it needs a plugin for or cannot read
# at all (kfaar.faces.image: HEIF, RAW), which a batch then reports one by one
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".avif", ".tif", ".tiff", ".gif", ".ppm",
                              ".pgm"}) | HEIF_EXTENSIONS | RAW_EXTENSIONS

T = TypeVar("T")
L = TypeVar("L")
R = TypeVar("R")


def iter_images(paths: str | os.PathLike | Iterable[str | os.PathLike], recursive: bool = True) -> Iterator[Path]:
    """Expand files and folders into image files, in a stable (sorted) order.

    A folder contributes its files with an image extension (case-insensitive), descending
    into subfolders when ``recursive``; hidden files are ignored. A path naming a file is
    yielded as given, whatever its extension, and so is a path that does not exist, so that
    the batch that reads it reports the problem for that one file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    for p in paths:
        p = Path(p)
        if p.is_dir():
            walker = p.rglob("*") if recursive else p.glob("*")
            found = sorted(
                f for f in walker
                if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith(".") and f.is_file()
            )
            yield from found
        else:
            yield p


@dataclass
class BatchReport:
    """What a batch did: counts and the (path, error message) of every file it skipped."""

    ok: int = 0
    failed: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.ok + len(self.failed)

    def summary(self) -> str:
        return f"{self.ok} of {self.total} processed, {len(self.failed)} skipped"


def process_images(
    paths: Iterable[str | os.PathLike],
    fn: Callable[[Path], T],
    *,
    report: BatchReport | None = None,
    progress: bool = True,
    desc: str = "images",
) -> Iterator[tuple[Path, T]]:
    """Yield ``(path, fn(path))`` for each path; a path whose ``fn`` raises is recorded and skipped.

    Shows a tqdm bar (to stderr) unless ``progress`` is False. ``KeyboardInterrupt`` still stops.
    """
    report = report if report is not None else BatchReport()
    items = [Path(p) for p in paths]
    with tqdm(items, desc=desc, unit="img", disable=not progress, leave=False) as bar:
        for path in bar:
            try:
                result = fn(path)
            except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
                _skip(report, bar, path, e)
                continue
            report.ok += 1
            yield path, result


def process_images_overlapped(
    paths: Iterable[str | os.PathLike],
    read: Callable[[Path], L],
    work: Callable[[L], R],
    write: Callable[[Path, R], T],
    *,
    report: BatchReport | None = None,
    progress: bool = True,
    desc: str = "images",
    ahead: int = 1,
) -> Iterator[tuple[Path, T]]:
    """Yield ``(path, write(path, work(read(path))))`` for each path, in the order given.

    ``work`` runs on the calling thread; ``read`` runs on a reader thread up to ``ahead``
    files before it, ``write`` on a writer thread with at most ``ahead`` results waiting for
    it, so memory holds at most about ``2 * ahead + 1`` files' data. A path whose stage
    raises is recorded in ``report`` and skipped, in its place in the order, as
    :func:`process_images` does. When the loop stops early (an exception, ``KeyboardInterrupt``,
    the caller breaking off) the files already read or being written are finished, no others.
    """
    if not isinstance(ahead, int) or ahead < 1:
        raise ValueError(f"ahead: got {ahead!r}, expected an int >= 1")
    report = report if report is not None else BatchReport()
    items = [Path(p) for p in paths]
    todo = iter(items)
    reading: deque[tuple[Path, Future]] = deque()
    # each path's last stage, in order: the Future of its write, or the exception that ended it
    ending: deque[tuple[Path, Future | Exception]] = deque()
    with ThreadPoolExecutor(1, thread_name_prefix="kfaar-read") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="kfaar-write") as writer, \
            tqdm(total=len(items), desc=desc, unit="img", disable=not progress, leave=False) as bar:

        def read_ahead() -> None:
            while len(reading) < ahead and (path := next(todo, None)) is not None:
                reading.append((path, reader.submit(read, path)))

        def settled(wait: bool) -> Iterator[tuple[Path, T]]:
            while ending and (wait or len(ending) > ahead or not isinstance(ending[0][1], Future)
                              or ending[0][1].done()):
                path, end = ending.popleft()
                bar.update()
                try:
                    if isinstance(end, Exception):
                        raise end
                    result = end.result()
                except Exception as e:  # noqa: BLE001 - one bad file must not stop the batch
                    _skip(report, bar, path, e)
                    continue
                report.ok += 1
                yield path, result

        read_ahead()
        while reading:
            path, loading = reading.popleft()
            read_ahead()
            try:
                ending.append((path, writer.submit(write, path, work(loading.result()))))
            except Exception as e:  # noqa: BLE001 - recorded in its place by settled()
                ending.append((path, e))
            del loading
            yield from settled(wait=False)
        yield from settled(wait=True)


def _skip(report: BatchReport, bar: tqdm, path: Path, e: Exception) -> None:
    """Record a skipped file (logged at INFO: the caller reports ``report.failed`` its own way)."""
    msg = f"{type(e).__name__}: {e}"
    log.info("skipping %s: %s", path, msg)
    report.failed.append((path, msg))
    bar.set_postfix(skipped=len(report.failed), refresh=False)
