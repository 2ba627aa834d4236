"""A small `kfaar eval` on a handful of LFW dev identities (needs the data and the judges venv)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kfaar.eval.judges import find_judges

pytestmark = pytest.mark.data


def _scramble_method():
    """A toy keyed method that exercises the KVFA path: a key-seeded pixel permutation.

    The right key undoes it exactly (recover = SFace of the unscrambled face); a wrong key
    leaves noise in which no face is found, so recovery fails (a rejection).
    """
    from kfaar.eval import Method
    from kfaar.faces import FaceDetector, SFaceEncoder, align_face, main_face

    det, enc = FaceDetector(), SFaceEncoder(threads=1)

    def perm(key, n):
        return np.random.default_rng(int.from_bytes(key.derive("test-scramble")[:8], "little")).permutation(n)

    def anonymize(photo, key):
        flat = photo.reshape(-1, 3)
        return flat[perm(key, len(flat))].reshape(photo.shape)

    def recover(virtual, key):
        flat = np.empty_like(virtual.reshape(-1, 3))
        flat[perm(key, len(flat))] = virtual.reshape(-1, 3)
        photo = flat.reshape(virtual.shape)
        face = main_face(det.detect(photo), photo.shape)
        return None if face is None else enc.encode(align_face(photo, face.landmarks).crop)[0]

    return Method("scramble", anonymize, recover=recover, description="test: keyed pixel permutation")


@pytest.fixture(scope="module")
def small_config(data_dir, tmp_path_factory):
    if find_judges() is None:
        pytest.skip("judges virtualenv absent: run `kfaar eval --setup-judges` (or set KFAAR_JUDGES_VENV)")
    from kfaar.eval.api import EvalConfig

    return EvalConfig(
        methods=("identity", "blur", "blackbox"), limit=5, seed=3, data_dir=data_dir,
        out_dir=tmp_path_factory.mktemp("eval"), auto_setup_judges=False, progress=False,
        command="pytest small eval", judge_cache_dir=tmp_path_factory.mktemp("judge-cache"),
    )


@pytest.fixture(scope="module")
def small_eval(small_config):
    from kfaar.eval.api import evaluate

    return evaluate(small_config, extra_methods=[_scramble_method()])


def test_identity_baseline_is_not_anonymous(small_eval):
    anon = small_eval.metrics["methods"]["identity"]["anonymity"]["vs_original"]
    assert anon["dlib"]["value"] <= 0.05 and anon["sface"]["value"] <= 0.05
    assert anon["dlib"]["n"] >= 8


def test_black_box_is_not_detectable(small_eval):
    assert small_eval.metrics["methods"]["blackbox"]["detectability"]["yunet"]["value"] <= 0.05


def test_blur_is_more_anonymous_than_identity(small_eval):
    m = small_eval.metrics["methods"]
    for judge in ("dlib", "sface"):
        assert m["blur"]["anonymity"]["vs_original"][judge]["value"] > m["identity"]["anonymity"]["vs_original"][judge]["value"]


def test_baselines_have_no_authentication_and_no_diversity(small_eval):
    m = small_eval.metrics["methods"]
    assert m["identity"]["authentication"] is None and m["identity"]["wrong_key_acceptance"] is None
    assert m["identity"]["diversity"]["dlib"]["value"] == 0.0  # the key changes nothing


def test_report_files_are_complete(small_eval):
    doc = json.loads(small_eval.files.metrics.read_text())
    assert doc["command"] == "pytest small eval"
    assert doc["dataset"]["identities"] == 5 and doc["dataset"]["split"] == "dev"
    assert set(doc["versions"]) >= {"kfaar", "onnxruntime", "opencv", "judges"}
    assert doc["versions"]["judges"]["mediapipe"] == "0.10.21"
    html = small_eval.files.html.read_text()
    assert "data:image/png;base64," in html and "Unlinkability" in html


def test_keyed_method_authenticates_with_its_key_only(small_eval):
    m = small_eval.metrics["methods"]["scramble"]
    assert m["anonymity"]["vs_original"]["dlib"]["value"] >= 0.95
    assert m["authentication"]["tar_at_far_0.01"]["tar"] >= 0.8  # SFace on genuine LFW pairs
    assert m["wrong_key_acceptance"]["value"] == 0.0
    assert m["diversity"]["dlib"]["n"] == 0  # noise: no face for dlib to compare
    # re-encoded as JPEG, the scrambled photo unscrambles to the face plus scattered noise
    after = m["authentication"]["after_jpeg"]
    assert after["quality"] == 75 and after["tar_at_far_0.01"]["tar"] >= 0.8
    assert after["tar_at_far_0.01"]["n_genuine"] == m["authentication"]["tar_at_far_0.01"]["n_genuine"]



def test_second_run_reads_the_judge_cache_and_agrees(small_config, small_eval, tmp_path, caplog):
    import dataclasses
    import logging

    from kfaar.eval.api import evaluate

    again = dataclasses.replace(small_config, methods=("identity", "blackbox"), out_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="kfaar.eval.runner"):
        res = evaluate(again)
    assert any("judge cache" in r.getMessage() for r in caplog.records)
    for name in ("identity", "blackbox"):
        a, b = small_eval.metrics["methods"][name], res.metrics["methods"][name]
        for prop in ("anonymity", "synchronism", "detectability", "consistency", "unlinkability"):
            assert a[prop] == b[prop], (name, prop)
