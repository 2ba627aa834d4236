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
