"""A small `kfaar eval` on a handful of LFW dev identities (needs the data and the judges venv)."""

from __future__ import annotations

import json

import pytest

from kfaar.eval.judges import find_judges

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def small_eval(data_dir, tmp_path_factory):
    if find_judges() is None:
        pytest.skip("judges virtualenv absent: run `kfaar eval --setup-judges` (or set KFAAR_JUDGES_VENV)")
    from kfaar.eval.api import EvalConfig, evaluate

    out = tmp_path_factory.mktemp("eval")
    config = EvalConfig(
        methods=("identity", "blur", "blackbox"), limit=5, seed=3, data_dir=data_dir, out_dir=out,
        auto_setup_judges=False, progress=False, command="pytest small eval",
    )
    return evaluate(config)


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
