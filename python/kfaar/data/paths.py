"""Where the face data lives: ``$KFAAR_DATA``, else ``../shared/data`` next to the repository."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "KFAAR_DATA"


def _repo_roots() -> list[Path]:
    """Repository roots above this file (editable install) and above the working directory."""
    roots = []
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for d in (start, *start.parents):
            if (d / "pyproject.toml").is_file() and (d / "python" / "kfaar").is_dir():
                roots.append(d)
                break
    return roots


def default_data_dir() -> Path:
    """The data folder (holding ``lfw/`` and ``yalefaces/``).

    ``$KFAAR_DATA`` wins when set, whether or not it exists (so a typo is reported, not
    silently replaced). Otherwise the first existing ``<repo>/../shared/data``; if there is
    none, that path for the first repository root found (or ``./data``), so callers can
    report what they looked for. Callers check ``.is_dir()`` or use :func:`require_data_dir`.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    candidates = [r.parent / "shared" / "data" for r in _repo_roots()]
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0] if candidates else Path("data").resolve()


def require_data_dir(subdir: str | None = None, data_dir: str | os.PathLike | None = None) -> Path:
    """``data_dir`` (default :func:`default_data_dir`), optionally ``/subdir``; FileNotFoundError if absent."""
    base = Path(data_dir) if data_dir is not None else default_data_dir()
    path = base / subdir if subdir else base
    if not path.is_dir():
        raise FileNotFoundError(
            f"face data not found at {path}; set ${ENV_VAR} to the folder holding lfw/ and "
            "yalefaces/ (or pass --data)"
        )
    return path
