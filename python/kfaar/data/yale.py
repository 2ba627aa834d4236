"""The Yale Face Database: 15 subjects, 11 conditions — the only expression-labelled set here."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from kfaar.data.paths import require_data_dir

CONDITIONS = (
    "happy", "sad", "sleepy", "surprised", "wink", "normal",
    "glasses", "noglasses", "leftlight", "rightlight", "centerlight",
)
EXPRESSIONS = ("happy", "sad", "sleepy", "surprised", "wink", "normal")


def iter_yale(data_dir: str | os.PathLike | None = None) -> Iterator[tuple[str, str, Path]]:
    """Yield ``(subject, condition, path)`` sorted by subject then condition.

    ``data_dir`` is the data folder holding ``yalefaces/`` (default: :func:`default_data_dir`),
    or the ``yalefaces`` folder itself. Images are 320x243 greyscale PNG; ``load_image``
    converts them to RGB.
    """
    base = Path(data_dir) if data_dir is not None else None
    root = base if base is not None and base.name == "yalefaces" else require_data_dir("yalefaces", base)
    if not root.is_dir():
        raise FileNotFoundError(f"Yale faces not found at {root}")
    for subject_dir in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("subject")):
        for img in sorted(subject_dir.glob("*.png")):
            yield subject_dir.name, img.stem, img
