"""On the real ../shared/data (skipped without it). Nothing is copied anywhere but tmp_path."""

import numpy as np
import pytest

from kfaar.data import PrepareOptions, iter_yale, load_split, prepare
from kfaar.data.yale import CONDITIONS
from kfaar.faces import FaceDetector, load_image

pytestmark = pytest.mark.data


def test_prepare_limit_on_lfw(data_dir, tmp_path):
    res = prepare(data_dir / "lfw", tmp_path, options=PrepareOptions(workers=1, limit=16), progress=False)
    assert res.images == {"train": 16, "dev": 16}
    assert res.faces["train"] >= 15 and res.faces["dev"] >= 15
    train, dev = load_split(tmp_path, "train"), load_split(tmp_path, "dev")
    assert not set(train.labels) & set(dev.labels)
    # same identity closer than different identities, on average (SFace works on these crops)
    same = dev.labels[:, None] == dev.labels[None, :]
    sim = dev.embeddings @ dev.embeddings.T
    off = ~np.eye(len(dev), dtype=bool)
    assert sim[same & off].mean() > sim[~same].mean() + 0.2


def test_yale_is_complete_and_readable(data_dir):
    items = list(iter_yale(data_dir))
    assert len(items) == 164 and len({s for s, _, _ in items}) == 15
    assert {c for _, c, _ in items} == set(CONDITIONS)
    rgb = load_image(items[0][2])
    assert rgb.shape == (243, 320, 3)
    with FaceDetector() as det:
        assert len(det.detect(rgb)) >= 1
