"""Atomic file writes: the files kfaar makes to be kept (key files, templates, results and
``kfaar anonymize``'s report, caches, checkpoints, model bundles, manifests) go through
:func:`atomic_write`, so a run stopped mid-write never leaves a half file under the real name.
(An export's ONNX files and params are pinned by its manifest, written last.)"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_write(path: str | os.PathLike, *, private: bool = False, sync: bool = False) -> Iterator[BinaryIO]:
    """Open a binary file for writing in ``path``'s place: a hidden new name beside it, renamed
    over ``path`` when the block ends without an exception and removed when it raises.

    ``private``: created with mode 0600 (key material, templates), where otherwise the mode is
    the one a plain ``open`` gives (0666 less the umask). ``sync``: flushed to the disk before
    the rename, so that after a crash the name holds either the old file or the whole new one.
    The folder is made when missing."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a file where a folder of the path should be
        raise NotADirectoryError(errno.ENOTDIR, "a file stands where a folder of this path should be",
                                 str(path)) from None
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o600 if private else 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
