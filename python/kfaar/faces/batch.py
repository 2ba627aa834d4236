"""Folder processing: expand paths to image files, run a function on each, skip and report failures.

The pattern every batch command (anonymize, enroll, data prepare) follows::

    report = BatchReport()
    for path, result in process_images(iter_images(args), work, report=report, desc="anonymize"):
        save(path, result)
    for path, error in report.failed:
        click.echo(f"skipped {path}: {error}", err=True)

A bad file never stops the batch: its exception is caught, logged and recorded in ``report``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"})

T = TypeVar("T")


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
                msg = f"{type(e).__name__}: {e}"
                log.warning("skipping %s: %s", path, msg)
                report.failed.append((path, msg))
                bar.set_postfix(skipped=len(report.failed), refresh=False)
                continue
            report.ok += 1
            yield path, result
