"""Seeded protocol, methods and the property computation on synthetic inputs (no LFW, no judges)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from kfaar.eval import metrics as M
from kfaar.eval.methods import METHOD_NAMES, FaceRedactor, Method, RedactOptions, build_methods
from kfaar.eval.protocol import identity_keys, load_eval_set
from kfaar.keys import Key


def _fake_lfw(root, counts: dict[str, int], split: dict[str, list[str]]):
    """A tiny LFW-shaped tree of blank files (contents are never read by load_eval_set)."""
    lfw = root / "lfw"
    for name, n in counts.items():
        (lfw / name).mkdir(parents=True)
        for k in range(1, n + 1):
            (lfw / name / f"{name}_{k:04d}.jpg").write_bytes(b"")
    (lfw / "splits.json").write_text(json.dumps({"seed": 1, **split}))
    return root


@pytest.fixture
def fake_data(tmp_path):
    counts = {f"P{i}": 2 + i for i in range(8)} | {"Single": 1}
    return _fake_lfw(tmp_path, counts, {"train": [], "dev": sorted(counts)})


def test_identity_keys_are_seeded_and_distinct():
    k0, again, other = identity_keys("Alice", 0), identity_keys("Alice", 0), identity_keys("Alice", 1)
    assert k0 == again
    assert k0.a != other.a
    assert len({k0.a, k0.b, k0.wrong, identity_keys("Bob", 0).a}) == 4
    assert isinstance(k0.a, Key)


def test_eval_set_drops_single_photo_identities_and_caps_pairs(fake_data):
    es = load_eval_set(fake_data, "dev", max_pairs_per_identity=6, b_photos_per_identity=2)
    assert "Single" not in es.names and len(es.names) == 8
    labels = es.labels
    i, j = es.same_pairs.T
    assert np.all(labels[i] == labels[j]) and np.all(i != j)
    assert np.bincount(labels[i]).max() <= 6
    assert es.b_index.size == 16  # two photos per identity


def test_eval_set_limit_is_reproducible(fake_data):
    a = load_eval_set(fake_data, "dev", limit=3, seed=5)
    b = load_eval_set(fake_data, "dev", limit=3, seed=5)
    assert a.names == b.names and np.array_equal(a.same_pairs, b.same_pairs)
    assert len(a.names) == 3


def test_eval_set_bad_split_lists_valid_ones(fake_data):
    with pytest.raises(ValueError, match="valid splits are"):
        load_eval_set(fake_data, "test")


def test_eval_set_missing_data_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="KFAAR_DATA"):
        load_eval_set(tmp_path)


def test_build_methods_rejects_unknown_names():
    with pytest.raises(ValueError, match="valid names are"):
        build_methods(["identity", "swirl"])


def test_kfaar_method_is_built_or_reported_unavailable():
    methods, unavailable = build_methods(["kfaar"])
    assert [m.name for m in methods] == ["kfaar"] or set(unavailable) == {"kfaar"}
    assert set(METHOD_NAMES) >= {"identity", "blur", "pixelate", "blackbox", "kfaar"}


def test_kfaar_method_runs_the_requested_precision():
    """`kfaar eval --kfaar-precision int8` evaluates the quantized graphs, not fp32 again."""
    from kfaar.eval.methods import KfaarModelOptions

    methods, unavailable = build_methods(["kfaar"], kfaar_model=KfaarModelOptions(precision="int8"))
    if unavailable:
        pytest.skip(f"kfaar method unavailable here: {unavailable['kfaar']}")
    m = methods[0]
    assert "int8" in m.description
    engine = m.anonymize.__self__._engine  # the Anonymizer the method wraps
    assert engine.options.precision == "int8"
    with pytest.raises(ValueError, match="precision"):  # an unknown precision is refused, not ignored
        from kfaar.pipeline import Anonymizer, AnonymizerOptions

        Anonymizer(AnonymizerOptions(precision="int4"))


class _BoxDetector:
    """Stands in for YuNet: one face at a fixed box."""

    def detect(self, photo):
        return [SimpleNamespace(bbox=(40.0, 40.0, 40.0, 40.0))]


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)


def test_redaction_changes_only_the_face_box(photo):
    red = FaceRedactor(_BoxDetector(), RedactOptions(margin=0.0, pixel_blocks=4))
    for op in (red.blur, red.pixelate, red.blackbox):
        out = op(photo, None)
        assert out.shape == photo.shape and out.dtype == np.uint8
        outside = np.ones(photo.shape[:2], bool)
        outside[40:80, 40:80] = False
        assert np.array_equal(out[outside], photo[outside]), op.__name__
        assert not np.array_equal(out[40:80, 40:80], photo[40:80, 40:80]), op.__name__
    assert red.blackbox(photo).max(initial=0) > 0 and red.blackbox(photo)[40:80, 40:80].max() == 0
    pix = red.pixelate(photo)[40:80, 40:80]
    assert len(np.unique(pix.reshape(-1, 3), axis=0)) <= 16  # 4 x 4 cells


def test_redact_options_are_checked():
    with pytest.raises(ValueError, match="pixel_blocks"):
        RedactOptions(pixel_blocks=0)


# ---------------------------------------------------------------- properties on synthetic judges


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_properties_of_identity_and_blackbox_on_synthetic_judges():
    """Identity keeps every judge output (anonymity 0, sync exact); black box removes the face."""
    from kfaar.eval.judges import JudgeTable
    from kfaar.eval.protocol import EvalSet, Photo
    from kfaar.eval.properties import Features, MethodRows, method_properties

    rng = np.random.default_rng(1)
    n_id, per = 6, 3
    labels = np.repeat(np.arange(n_id), per)
    n = labels.size
    centers = _unit(rng.normal(size=(n_id, 128)))
    sface = _unit(centers[labels] + 0.05 * rng.normal(size=(n, 128))).astype(np.float32)
    dlib = (centers[labels] * 0.2 + 0.01 * rng.normal(size=(n, 128))).astype(np.float32)
    # rows 0..n-1: originals; row n: an image with no face (what the black box gives)
    nan = np.full((1, 128), np.nan, np.float32)
    yaw = rng.uniform(-30, 30, n).astype(np.float32)
    table = JudgeTable(
        dlib_found=np.r_[np.ones(n, bool), False], dlib_emb=np.r_[dlib, nan],
        mesh_found=np.r_[np.ones(n, bool), False],
        yaw=np.r_[yaw, np.nan], pitch=np.r_[yaw / 3, np.nan], roll=np.r_[yaw / 5, np.nan],
        mouth_ratio=np.r_[rng.uniform(0, 0.5, n), np.nan].astype(np.float32),
        eye_ratio=np.r_[rng.uniform(0.2, 0.4, n), np.nan].astype(np.float32),
    )
    feats = Features(np.r_[np.ones(n, bool), False], np.r_[sface, nan], table)
    photos = tuple(Photo(path=None, identity=int(k), b_key=(i % per) < 2) for i, k in enumerate(labels))
    pairs = np.array([(a, b) for a in range(n) for b in range(n) if a != b and labels[a] == labels[b]])
    es = EvalSet("dev", tuple(f"P{k}" for k in range(n_id)), photos, pairs, 0)
    orig = feats.take(np.arange(n))
    b_rows = np.where([p.b_key for p in photos], np.arange(n), -1)

    ident = method_properties(Method("identity", lambda p, k: p), MethodRows(a=np.arange(n), b=b_rows),
                        feats, orig, labels, es, (1e-2, 1e-3))
    p = ident.properties
    for j in ("dlib", "sface"):
        assert p["anonymity"]["vs_original"][j]["value"] == 0.0
        assert p["anonymity"]["vs_other_photo"][j]["value"] == 0.0
        assert p["diversity"][j]["value"] == 0.0
        assert p["consistency"][j]["value"] == 1.0
        assert p["unlinkability"][j]["dsys"] > 0.9
    assert p["detectability"]["yunet"]["value"] == 1.0
    assert p["synchronism"]["yaw"]["median"] == 0.0 and p["synchronism"]["mouth_ratio_corr"]["r"] == pytest.approx(1.0)
    assert p["authentication"] is None

    box = method_properties(Method("blackbox", lambda p, k: p), MethodRows(a=np.full(n, n), b=np.where(b_rows >= 0, n, -1)),
                      feats, orig, labels, es, (1e-2, 1e-3))
    q = box.properties
    assert q["anonymity"]["vs_original"]["dlib"]["value"] == 1.0
    assert q["detectability"]["yunet"]["value"] == 0.0
    assert q["synchronism"]["yaw"]["n"] == 0 and q["diversity"]["sface"]["n"] == 0


def test_kvfa_right_key_accepts_and_wrong_key_rejects():
    from kfaar.eval.properties import MethodRows, kvfa

    rng = np.random.default_rng(2)
    n_id, per = 100, 4
    labels = np.repeat(np.arange(n_id), per)
    n = labels.size
    centers = _unit(rng.normal(size=(n_id, 128)))
    templates = _unit(centers[labels] + 0.1 * rng.normal(size=(n, 128)))
    recovered = _unit(centers[labels] + 0.1 * rng.normal(size=(n, 128)))
    wrong = _unit(rng.normal(size=(n, 128)))  # a wrong key: uncorrelated with the truth
    rows = MethodRows(a=np.arange(n), b=np.full(n, -1), recovered=recovered, recovered_wrong=wrong, templates=templates)
    pairs = np.array([(a, b) for a in range(n) for b in range(n) if a != b and labels[a] == labels[b]])
    auth, wrong_acc, roc = kvfa(Method("toy", lambda p, k: p, threshold=None), rows, {}, labels, pairs, (1e-2, 1e-3))
    assert auth["tar_at_far_0.01"]["tar"] >= 0.99 and auth["tar_at_far_0.001"]["tar"] >= 0.99
    assert roc.auc > 0.999
    assert wrong_acc["value"] <= 0.02  # at the FAR-1% threshold, random vectors pass about as often as impostors
    assert auth["operating"]["source"] == "far_0.01"
    assert "after_jpeg" not in auth  # not measured: no row
    assert M.share([]).n == 0

    # recovered again after JPEG: a third of them fail (rejections), the rest as before
    after = recovered.copy()
    after[::3] = np.nan
    rows.recovered_jpeg = after
    auth2, _, _ = kvfa(Method("toy", lambda p, k: p, threshold=None), rows, {}, labels, pairs, (1e-2, 1e-3))
    j = auth2["after_jpeg"]
    assert j["quality"] == 75 and j["recovered"]["value"] == pytest.approx(2 / 3, abs=0.01)
    assert 0.6 <= j["tar_at_far_0.01"]["tar"] <= 0.7  # a failed recovery is a rejection
    assert j["operating"]["threshold"] == auth2["operating"]["threshold"]  # the method's own operating point
    assert j["operating"]["tar"] < auth2["operating"]["tar"]
    assert {k: v for k, v in auth2.items() if k != "after_jpeg"} == auth


class _CountingStore:
    def __init__(self):
        self.n = 0

    def add(self, rgb):
        self.n += 1
        return self.n - 1


def test_a_method_that_fails_or_misbehaves_is_counted_not_fatal(fake_data):
    from kfaar.eval.runner import _run_method

    es = load_eval_set(fake_data, "dev", limit=2)
    photos = [np.full((32, 32, 3), k, np.uint8) for k in range(len(es.photos))]
    calls = []

    def flaky(photo, key):
        calls.append(key)
        if len(calls) % 3 == 0:
            raise RuntimeError("boom")
        if len(calls) % 3 == 1:
            photo[:] = 255  # edits its input: must not leak into the next method
            return photo
        return photo[:16]  # wrong shape

    bar = SimpleNamespace(update=lambda n: None)
    rows = _run_method(Method("flaky", flaky), es, photos, _CountingStore(), set(), bar)
    assert 0 < rows.failures < len(es.photos)
    assert np.sum(rows.a >= 0) == len(es.photos) - rows.failures  # failed photos have no image
    assert all(p.max() < 255 for p in photos)  # the in-place edits hit copies


def test_recovery_is_also_run_on_the_virtual_saved_as_jpeg(fake_data):
    """KVFA after JPEG: per photo, recover() sees the key-A virtual as it reads back from a
    JPEG of KVFA_JPEG_QUALITY, with key A; the lossless virtual is recovered as before; and
    the original photo, with key A (what a verifier accepts from a face with no code)."""
    from kfaar.eval.properties import KVFA_JPEG_QUALITY
    from kfaar.eval.runner import _run_method
    from kfaar.faces.image import jpeg_roundtrip

    es = load_eval_set(fake_data, "dev", limit=2)
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in es.photos]
    seen = []

    def recover(virtual, key):
        seen.append((virtual.copy(), key))
        return virtual.reshape(-1)[:8].astype(np.float32)

    bar = SimpleNamespace(update=lambda n: None)
    rows = _run_method(Method("keyed", lambda p, k: p[::-1].copy(), recover=recover), es, photos, _CountingStore(),
                       set(), bar)
    assert len(seen) == 4 * len(photos)
    for n, photo in enumerate(photos):
        (lossless, ka), (_, wrong), (jpeg, kj), (plain, kp) = seen[4 * n: 4 * n + 4]
        virtual = photo[::-1]
        assert np.array_equal(lossless, virtual) and kj is ka and wrong is not ka
        assert np.array_equal(jpeg, jpeg_roundtrip(virtual, KVFA_JPEG_QUALITY)) and not np.array_equal(jpeg, virtual)
        np.testing.assert_array_equal(rows.recovered_jpeg[n], jpeg.reshape(-1)[:8])
        # and the original photo itself (no code in it) with the same key: the code-free row
        assert np.array_equal(plain, photo) and kp is ka
        np.testing.assert_array_equal(rows.recovered_plain[n], photo.reshape(-1)[:8])
    assert rows.recovered.shape == rows.recovered_jpeg.shape == rows.recovered_plain.shape == (len(photos), 8)


def test_markdown_table_reads_nested_keys_and_flags_small_n():
    from kfaar.eval.report import markdown_table

    doc = {"methods": {
        "m": {"available": True,
              "authentication": {"tar_at_far_0.01": {"tar": 0.5, "n_genuine": 100},
                                 "tar_at_far_0.001": {"tar": 0.25, "n_genuine": 10}},
              "anonymity": {"vs_original": {"dlib": {"value": 1.0, "n": 5}}}},
        "off": {"available": False, "reason": "not installed"},
    }}
    md = markdown_table(doc)
    assert "| TAR @ FAR 1%, right key | high | 50.0% |" in md
    assert "| TAR @ FAR 0.1%, right key | high | 25.0% (n=10) |" in md
    assert "| Anonymity vs original (dlib) | high | 100.0% (n=5) |" in md
    assert "off" not in md.splitlines()[0]


def test_judge_cache_round_trip_and_invalidation(tmp_path):
    from pathlib import Path

    from kfaar.eval.judges import JudgeCache, JudgesEnv, JudgeTable

    env = JudgesEnv(Path("/venv"), Path("/venv/bin/python"), {"mediapipe": "0.10.21"})
    table = JudgeTable.empty(2)
    table.dlib_found[1] = True
    table.dlib_emb[1] = 0.5
    table.yaw[1] = 12.0
    JudgeCache(tmp_path, env).add(["h0", "h1"], table)

    again = JudgeCache(tmp_path, env)  # a later run
    assert "h1" in again and "h2" not in again
    row = again.row("h1")
    assert row["dlib_found"] and row["yaw"] == 12.0 and np.all(row["dlib_emb"] == 0.5)
    assert not again.row("h0")["dlib_found"]

    other = JudgesEnv(env.venv, env.python, {"mediapipe": "0.10.22"})  # other judge versions
    assert "h1" not in JudgeCache(tmp_path, other)


def test_code_free_acceptance_counts_each_pair_and_a_failed_read_as_a_rejection():
    from kfaar.eval.properties import MethodRows, code_free

    templates = np.eye(4, dtype=np.float32) + 0.01
    plain = np.full((4, 4), np.nan, np.float32)  # photo 3: no face found, a rejection
    plain[0] = templates[1]  # photo 0 read as its pair's template: accepted
    plain[1] = -templates[0]
    plain[2] = templates[2]  # close to its own template, not its pair's (3)
    rows = MethodRows(a=np.arange(4), b=-np.ones(4, int), recovered_plain=plain, templates=templates)
    pairs = np.array([[0, 1], [1, 0], [2, 3], [3, 2]])
    out = code_free(Method("m", lambda p, k: p), rows, {}, pairs, thr=0.5)
    assert out["value"] == 0.25 and out["n"] == 4 and out["threshold"] == 0.5
    assert out["recovered"]["value"] == 0.75
