"""The judges worker in its own virtualenv (skips cleanly when the venv is absent).

CI creates the venv first with ``kfaar eval --setup-judges``.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kfaar.eval.judges import JudgeRunner, find_judges

_SKIP = "judges virtualenv absent: run `kfaar eval --setup-judges` (or set KFAAR_JUDGES_VENV)"


@pytest.fixture(scope="module")
def judges_env():
    env = find_judges()
    if env is None:
        pytest.skip(_SKIP)
    return env


@pytest.fixture(scope="module")
def foreign_pythonpath(tmp_path_factory) -> str:
    """A PYTHONPATH whose numpy cannot be imported and claims version 9.9.9: a caller's own
    packages, which must not reach the judges' venv."""
    d = tmp_path_factory.mktemp("foreign")
    (d / "numpy").mkdir()
    (d / "numpy" / "__init__.py").write_text('raise ImportError("the caller\'s numpy, not the venv\'s")\n')
    (d / "numpy-9.9.9.dist-info").mkdir()
    (d / "numpy-9.9.9.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: numpy\nVersion: 9.9.9\n")
    return str(d)


@pytest.fixture(scope="module")
def judged(judges_env, grace_hopper, tmp_path_factory, foreign_pythonpath):
    """Judge results for: the sample photo, its mirror, it rotated 15 degrees, and noise."""
    d = tmp_path_factory.mktemp("judges")
    h, w = grace_hopper.shape[:2]
    rot = cv2.warpAffine(np.ascontiguousarray(grace_hopper), cv2.getRotationMatrix2D((w / 2, h / 2), 15, 1.0), (w, h),
                         borderMode=cv2.BORDER_REPLICATE)
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    images = {"photo": grace_hopper, "mirror": grace_hopper[:, ::-1], "rotated": rot, "noise": noise}
    paths = []
    for name, rgb in images.items():
        p = d / f"{name}.png"
        cv2.imwrite(str(p), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
        paths.append(str(p))
    with pytest.MonkeyPatch.context() as mp:  # the workers run in their venv whatever the caller's path
        mp.setenv("PYTHONPATH", foreign_pythonpath)
        runner = JudgeRunner(judges_env, d, jobs=1)
        runner.submit(paths)
        table = runner.collect()
    return {name: {k: getattr(table, k)[i] for k in table.__dataclass_fields__} for i, name in enumerate(images)}


def test_judges_find_the_face_and_not_in_noise(judged):
    assert judged["photo"]["dlib_found"] and judged["photo"]["mesh_found"]
    assert judged["photo"]["dlib_emb"].shape == (128,) and np.isfinite(judged["photo"]["dlib_emb"]).all()
    assert not judged["noise"]["dlib_found"] and not judged["noise"]["mesh_found"]
    assert np.isnan(judged["noise"]["yaw"])


def test_dlib_judges_mirror_as_same_person(judged):
    d = np.linalg.norm(judged["photo"]["dlib_emb"] - judged["mirror"]["dlib_emb"])
    assert d < 0.6


def test_pose_judge_mirror_flips_yaw_and_roll(judged):
    # FaceMesh is not mirror-exact: a pixel of nose-tip jitter is a few degrees of 6-point PnP yaw
    p, m = judged["photo"], judged["mirror"]
    assert abs(p["yaw"] + m["yaw"]) < 6.0
    assert abs(p["roll"] + m["roll"]) < 4.0
    assert abs(p["pitch"] - m["pitch"]) < 4.0
    assert abs(p["mouth_ratio"] - m["mouth_ratio"]) < 0.05


def test_pose_judge_sees_in_plane_rotation_as_roll(judged):
    # cv2 rotates counter-clockwise on screen for a positive angle
    droll = abs(judged["rotated"]["roll"] - judged["photo"]["roll"])
    assert droll == pytest.approx(15.0, abs=4.0)
    assert abs(judged["rotated"]["yaw"] - judged["photo"]["yaw"]) < 5.0


def test_worker_reports_versions(judges_env):
    assert judges_env.versions["mediapipe"] == "0.10.21"
    assert judges_env.versions["numpy"].startswith("1.")


def test_the_venv_is_found_whatever_the_callers_pythonpath(judges_env, foreign_pythonpath, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", foreign_pythonpath)
    env = find_judges(judges_env.venv)
    assert env is not None and env.versions["numpy"] == judges_env.versions["numpy"]


def test_worker_failure_is_reported(judges_env, tmp_path):
    from kfaar.eval.judges import JudgesUnavailableError

    runner = JudgeRunner(judges_env, tmp_path, jobs=1)
    (tmp_path / "judge_batch_0000.json").write_text(json.dumps(["x"]))
    runner.env = type(judges_env)(judges_env.venv, Path("/nonexistent/python"), {})
    with pytest.raises((JudgesUnavailableError, OSError)):
        runner.submit(["x"])
        runner.collect()


def test_judge_crops_finds_the_aligned_face_and_not_grey(judges_env, grace_hopper):
    from kfaar.eval.judges import judge_crops
    from kfaar.faces import FaceDetector, align_face, main_face

    with FaceDetector() as det:
        face = main_face(det.detect(grace_hopper), grace_hopper.shape)
    crop = align_face(grace_hopper, face.landmarks, size=128).crop
    t = judge_crops(np.stack([crop, np.full_like(crop, 128), crop[:, ::-1]]))
    assert t.dlib_found.tolist() == [True, False, True] and t.mesh_found[0] and not t.mesh_found[1]
    # the mirror image turns the head the other way: FaceMesh's yaw changes sign
    assert np.sign(t.yaw[0]) != np.sign(t.yaw[2]) or abs(t.yaw[0]) < 3
