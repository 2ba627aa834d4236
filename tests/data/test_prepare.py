"""`kfaar data prepare` on a tiny fake LFW built in tmp_path from matplotlib's sample photo."""

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from kfaar.data import PrepareOptions, load_split, prepare
from kfaar.faces import canonical_template, transform_points


def _lfw_like(rgb, flip=False, gain=1.0, shift=0):
    """A 250x250 LFW-style copy: face centred, ~120 px tall."""
    crop = rgb[40 + shift : 500 + shift, 40:472]
    img = cv2.resize(crop, (250, 250), interpolation=cv2.INTER_AREA)
    img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return img[:, ::-1] if flip else img


@pytest.fixture
def fake_lfw(tmp_path, grace_hopper):
    """train: Ada_Train (3 photos + a corrupt file); dev: Bea_Dev (2 photos + a photo with no face)."""
    root = tmp_path / "lfw"
    variants = {
        "Ada_Train": [dict(), dict(flip=True), dict(gain=0.7, shift=10)],
        "Bea_Dev": [dict(gain=1.2), dict(flip=True, shift=-10)],
    }
    for name, vs in variants.items():
        (root / name).mkdir(parents=True)
        for i, v in enumerate(vs, 1):
            Image.fromarray(_lfw_like(grace_hopper, **v)).save(root / name / f"{name}_{i:04d}.jpg", quality=92)
    (root / "Ada_Train" / "Ada_Train_0004.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    noise = np.random.default_rng(0).integers(0, 256, (250, 250, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "Bea_Dev" / "Bea_Dev_0003.jpg")
    (root / "splits.json").write_text(json.dumps({"seed": 1, "train": ["Ada_Train"], "dev": ["Bea_Dev"]}))
    return root


def _opts(**kw):
    return PrepareOptions(workers=1, shard_size=2, **kw)


def test_prepare_builds_a_loadable_cache(fake_lfw, tmp_path):
    out = tmp_path / "cache"
    res = prepare(fake_lfw, out, options=_opts(), progress=False)
    assert res.images == {"train": 4, "dev": 3}
    assert res.faces == {"train": 3, "dev": 2} and res.skipped == {"train": 1, "dev": 1}
    assert res.processed == 7

    train = load_split(out, "train")
    n = len(train)
    assert n == 3 and train.split == "train" and train.size == 128
    assert train.crops.shape == (n, 128, 128, 3) and train.crops.dtype == np.uint8
    assert train.landmarks.shape == (n, 5, 2) and train.crop_landmarks.shape == (n, 5, 2)
    assert train.matrices.shape == (n, 2, 3) and train.embeddings.shape == (n, 128)
    assert set(train.labels.tolist()) == {"Ada_Train"} and train.paths[0] == "Ada_Train/Ada_Train_0001.jpg"
    np.testing.assert_allclose(np.linalg.norm(train.embeddings, axis=1), 1.0, atol=1e-5)
    assert np.all(train.scores > 0.6) and np.all(train.n_faces == 1)
    for m, lm, clm in zip(train.matrices, train.landmarks, train.crop_landmarks):
        np.testing.assert_allclose(transform_points(m, lm), clm, atol=1e-3)
        assert np.abs(clm - canonical_template(128)).max() < 8
    assert train.skipped == [("Ada_Train/Ada_Train_0004.jpg", train.skipped[0][1])]
    assert train.skipped[0][1].startswith("unreadable")

    dev = load_split(out, "dev")
    assert set(dev.labels.tolist()) == {"Bea_Dev"}  # never mixed with train
    assert dev.skipped == [("Bea_Dev/Bea_Dev_0003.jpg", "no face detected")]
    # the same person in both (it is one photo): embeddings agree
    assert float((train.embeddings @ dev.embeddings.T).min()) > 0.6
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["size"] == 128 and len(manifest["splits"]["train"]["shards"]) == 2


def test_prepare_resumes(fake_lfw, tmp_path):
    out = tmp_path / "cache"
    prepare(fake_lfw, out, options=_opts(limit=2), progress=False)  # the first shard of each split
    assert len(load_split(out, "train")) == 2
    grown = prepare(fake_lfw, out, options=_opts(), progress=False)
    assert grown.processed == 3  # only the second shards: train 2 images, dev 1
    again = prepare(fake_lfw, out, options=_opts(), progress=False)
    assert again.processed == 0 and again.faces == {"train": 3, "dev": 2}
    (out / "train" / "shard-00001.npz").unlink()  # as if a run died while writing it
    healed = prepare(fake_lfw, out, splits=("train",), options=_opts(), progress=False)
    assert healed.processed == 2 and len(load_split(out, "train")) == 3


def test_prepare_refuses_a_cache_with_other_settings(fake_lfw, tmp_path):
    out = tmp_path / "cache"
    prepare(fake_lfw, out, splits=("dev",), options=_opts(), progress=False)
    with pytest.raises(ValueError, match="different settings"):
        prepare(fake_lfw, out, splits=("dev",), options=_opts(size=112), progress=False)


def test_overlapping_splits_are_rejected(fake_lfw, tmp_path):
    (fake_lfw / "splits.json").write_text(json.dumps({"train": ["Ada_Train", "Bea_Dev"], "dev": ["Bea_Dev"]}))
    with pytest.raises(ValueError, match="both train and dev"):
        prepare(fake_lfw, tmp_path / "cache", options=_opts(), progress=False)


def test_load_split_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="kfaar data prepare"):
        load_split(tmp_path, "train")
    with pytest.raises(ValueError, match="split: got 'test'"):
        load_split(tmp_path, "test")


def test_process_pool_matches_in_process(fake_lfw, tmp_path):
    prepare(fake_lfw, tmp_path / "one", splits=("dev",), options=_opts(), progress=False)
    prepare(fake_lfw, tmp_path / "two", splits=("dev",), options=PrepareOptions(workers=2, chunk=1), progress=False)
    a, b = load_split(tmp_path / "one", "dev"), load_split(tmp_path / "two", "dev")
    np.testing.assert_array_equal(a.crops, b.crops)
    np.testing.assert_allclose(a.embeddings, b.embeddings, atol=1e-5)
    assert a.skipped == b.skipped


def test_cli(fake_lfw, tmp_path):
    from kfaar.cli import main

    out = tmp_path / "cache"
    args = ["data", "prepare", "--data", str(fake_lfw.parent), "--out", str(out), "--split", "dev", "--workers", "1"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "dev: 2 faces cached, 1 skipped, of 3 images" in r.output
    r = CliRunner().invoke(main, args)
    assert "nothing to do" in r.output
    r = CliRunner().invoke(main, ["data", "prepare", "--data", str(tmp_path / "nowhere"), "--out", str(out)])
    assert r.exit_code != 0 and "KFAAR_DATA" in r.output
