"""The one check of a ``threads`` argument (onnxruntime's intra-op threads of a session)."""

from __future__ import annotations

import numbers


def check_threads(threads: object) -> int | None:
    """None, or a whole number >= 1 (a numpy integer too) as an ``int``; a bool, a float or a
    string is refused: ``threads=True`` would otherwise read as one thread."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or threads < 1:
        raise ValueError(f"threads: got {threads!r}, expected None or an int >= 1")
    return int(threads)
