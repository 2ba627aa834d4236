"""Shared fixtures. Face images come from installed packages or ../shared/data, never from the repo."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def grace_hopper_path() -> Path:
    """matplotlib's sample photo (one face, 512x600 RGB JPEG)."""
    cbook = pytest.importorskip("matplotlib.cbook")
    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


@pytest.fixture(scope="session")
def grace_hopper(grace_hopper_path):
    """The sample photo as (600, 512, 3) uint8 RGB; read-only so tests cannot alter it for others."""
    from kfaar.faces import load_image

    rgb = load_image(grace_hopper_path)
    rgb.setflags(write=False)
    return rgb


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """../shared/data (or $KFAAR_DATA); tests using it are marked ``data`` and skip without it."""
    from kfaar.data.paths import default_data_dir

    d = default_data_dir()
    if not (d / "lfw").is_dir():
        pytest.skip(f"face data not found at {d}: set KFAAR_DATA to the folder holding lfw/")
    return d


@pytest.fixture(scope="session")
def dev_faces(data_dir, tmp_path_factory):
    """The dev split's aligned crops: the repo's cache/lfw when built, else a small one made here.

    A clean checkout (CI) has the photos but no cache; preparing the first 160 dev images into
    a temporary folder (a few seconds) lets the real-face tests run there too instead of skipping.
    """
    from kfaar.data import PrepareOptions, load_split, prepare

    cache = Path(__file__).resolve().parents[1] / "cache" / "lfw"
    try:
        return load_split(cache, "dev")
    except FileNotFoundError:
        out = tmp_path_factory.mktemp("dev-cache")
        prepare(data_dir / "lfw", out, ("dev",), PrepareOptions(workers=1, limit=160), progress=False)
        return load_split(out, "dev")
