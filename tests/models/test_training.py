"""A tiny training run on synthetic faces: every loss finite, checkpoint + resume reproduces."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kfaar.train.config import LossWeights, Stage, TrainConfig  # noqa: E402
from kfaar.train.data import FaceSet, first_faces, first_photos  # noqa: E402
from kfaar.train.loop import Trainer  # noqa: E402


@pytest.fixture(scope="module")
def faces() -> FaceSet:
    rng = np.random.default_rng(0)
    z = rng.normal(size=(24, 128)).astype(np.float32)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    crops = rng.integers(0, 256, (24, 128, 128, 3), dtype=np.uint8)
    return FaceSet(crops, z, np.repeat(np.arange(12), 2))


def _cfg() -> TrainConfig:
    return TrainConfig(seed=3, stages=[Stage(64, 2, 2), Stage(128, 1, 1)], adv_start=1, key_pool=8,
                       diversity_samples=1, sface_every=1, log_every=1, sample_every=100, ckpt_every=100,
                       losses=LossWeights())


def test_config_rejects_unknown_keys_with_the_valid_ones():
    with pytest.raises(ValueError, match="unknown keys \\['lr_typo'\\]"):
        TrainConfig.from_dict({"lr_typo": 1})


def test_shipped_configs_load(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "configs"
    for name in ("cpu.yaml", "gpu.yaml", "smoke.yaml"):
        cfg = TrainConfig.load(root / name)
        assert cfg.total_steps > 0 and cfg.stages[-1].size == 128


def test_steps_are_finite_and_log_every_term(tmp_path, faces):
    tr = Trainer(_cfg(), tmp_path / "run", faces=faces)
    names = set()
    for _ in range(3):
        stats = tr.train_step()
        assert all(math.isfinite(v) for v in stats.values()), stats
        names |= set(stats)
    assert {"recon_l1", "anon", "fidelity", "sync_low", "sync_edge", "adv", "kvfa", "kvfa_wrong", "carrier",
            "diversity", "consistency", "d"} <= names


def test_resume_reproduces_an_uninterrupted_run(tmp_path, faces):
    a = Trainer(_cfg(), tmp_path / "a", faces=faces)
    a.run()
    b = Trainer(_cfg(), tmp_path / "b", faces=faces)
    b.run(max_steps=2)
    c = Trainer(_cfg(), tmp_path / "b", faces=faces)
    c.load(tmp_path / "b" / "ckpt.pt")
    assert c.step == 2
    c.run()
    for (name, pa), pc in zip(a.model.state_dict().items(), c.model.state_dict().values()):
        torch.testing.assert_close(pa, pc, msg=f"{name} differs after resume")
    assert (tmp_path / "a" / "samples" / "step_000003.png").exists()


def test_first_photos_takes_each_identitys_first_in_photo_order():
    labels = np.array([5, 2, 5, 9, 2, 0])
    np.testing.assert_array_equal(first_photos(labels), [0, 1, 3, 5])
    np.testing.assert_array_equal(first_photos(labels, 2), [0, 1])


def test_first_faces_takes_one_photo_per_identity_with_its_landmarks(monkeypatch):
    import kfaar.train.data as data

    labels = np.array([5, 2, 5, 9, 2, 0])
    n = len(labels)
    marks = np.arange(n * 10, dtype=np.float32).reshape(n, 5, 2)
    faces = FaceSet(np.zeros((n, 4, 4, 3), np.uint8), np.eye(n, 128, dtype=np.float32), labels, marks)
    monkeypatch.setattr(data, "load_faces", lambda split: faces)
    got = first_faces("dev", 3)
    np.testing.assert_array_equal(got.labels, [5, 2, 9])
    np.testing.assert_array_equal(got.landmarks, marks[[0, 1, 3]])
    np.testing.assert_array_equal(got.embeddings, faces.embeddings[[0, 1, 3]])
    monkeypatch.setattr(data, "load_faces", lambda split: FaceSet(faces.crops, faces.embeddings, labels))
    with pytest.raises(ValueError, match="no landmarks"):
        first_faces("dev")
