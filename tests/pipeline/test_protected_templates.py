"""Protected templates: the person's identity in the key's space, for a service to keep.

The maths (scores equal to the plain template's) is checked on random vectors through both
engines' code objects; the pipeline on matplotlib's sample photo; the file format and the
shipped model's identity space by known answers (tests/vectors/protected_template_v1.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from kfaar import Key, ProtectedTemplate, TemplateMismatchError
from kfaar.runtime.engine import default_engine

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "protected_template_v1.json").read_text())
ENV = {"KP": "protected template test"}


def _key(label: str) -> Key:
    return Key.from_bytes(hashlib.sha256(label.encode()).digest())


@pytest.fixture(scope="module")
def engine():
    return default_engine()


@pytest.fixture(scope="module")
def auth():
    from kfaar import Authenticator

    with Authenticator() as a:
        yield a


@pytest.fixture(scope="module")
def faces(grace_hopper):
    """The sample photo made virtual with keys A and B, and its plain template."""
    from kfaar import Anonymizer, Authenticator

    with Anonymizer() as anon, Authenticator() as auth:
        return {"A": anon.anonymize(grace_hopper, _key("A")), "B": anon.anonymize(grace_hopper, _key("B")),
                "template": auth.enroll(grace_hopper)}


# ------------------------------------------------------------------ the maths
def test_a_protected_score_is_the_plain_templates_score(engine):
    """cos(read, unit P_K u_t) == the whitened cosine of P_K^-1(read) against t, for any read and template."""
    rng = np.random.default_rng(7)
    templates = rng.normal(size=(40, 128)).astype(np.float32)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    reads = rng.normal(size=(30, 128)).astype(np.float32)
    reads /= np.linalg.norm(reads, axis=1, keepdims=True)
    key = _key("A")
    plain = engine.scores(engine.codes.from_read(reads, key), templates)
    protected = engine.code_scores(reads, engine.protected_code(templates, key))
    np.testing.assert_allclose(protected, plain, atol=2e-5)
    assert np.ptp(plain) > 0.5  # a real spread of scores, not all alike


def test_the_torch_engine_makes_the_same_codes_in_the_same_space(engine):
    pytest.importorskip("torch")
    from kfaar.runtime.engine import load_engine

    torch_engine = load_engine(backend="torch")
    z = np.asarray(VECTORS["embedding"], np.float32)[None]
    assert torch_engine.space == engine.space
    np.testing.assert_allclose(torch_engine.protected_code(z, _key("A")), engine.protected_code(z, _key("A")),
                               atol=1e-6)


def test_the_shipped_model_matches_the_known_answers(engine):
    key = Key.from_bytes(bytes.fromhex(VECTORS["key_hex"]))
    assert key.fingerprint == VECTORS["key_fingerprint"]
    assert engine.space == VECTORS["space"], "the identity space changed: every protected template is void"
    code = engine.protected_code(np.asarray(VECTORS["embedding"], np.float32)[None], key)[0]
    np.testing.assert_allclose(code, VECTORS["code"], atol=1e-6)
    t = ProtectedTemplate.from_bytes(VECTORS["file"].encode())
    assert (t.key_fingerprint, t.space) == (key.fingerprint, engine.space)
    np.testing.assert_array_equal(t.code, np.asarray(VECTORS["code"], np.float32))
    assert t.to_bytes().decode() == VECTORS["file"]


def test_one_persons_templates_under_two_keys_are_unrelated_to_each_other_and_to_the_plain_one(engine):
    z = np.asarray(VECTORS["embedding"], np.float32)[None]
    a, b = engine.protected_code(z, _key("A"))[0], engine.protected_code(z, _key("B"))[0]
    u = engine.to_code(z)[0]
    u /= np.linalg.norm(u)
    for x, y in ((a, b), (a, u), (b, u)):
        assert abs(float(x @ y)) < 0.35  # random rotations of 128-D: |cos| ~ 0.09, under any match threshold


# ------------------------------------------------------------------ the pipeline
def test_verify_and_verify_protected_agree_with_the_plain_template(auth, faces):
    key = _key("A")
    pt = auth.protect(faces["template"], key)
    plain = auth.score(auth.recover(faces["A"], key), faces["template"])
    read = auth.read_code(faces["A"])
    assert read.code_match > 0.8 and read.code.shape == (128,)
    assert auth.score_code(read.code, pt) == pytest.approx(plain, abs=2e-5)
    assert plain > auth.threshold
    assert auth.verify(faces["A"], key, pt) and auth.verify_protected(faces["A"], pt)
    # key B's virtual face is another virtual person: refused without the key too
    assert not auth.verify_protected(faces["B"], pt)
    assert auth.score_code(auth.read_code(faces["B"]).code, pt) == pytest.approx(
        auth.score(auth.recover(faces["B"], key), faces["template"]), abs=2e-5)


def test_verify_result_gives_the_decision_its_score_and_the_code_match(auth, faces, grace_hopper):
    from kfaar import Authenticator
    from kfaar.pipeline import AuthenticatorOptions

    key, t = _key("A"), faces["template"]
    pt = auth.protect(t, key)
    plain, keyless, keyed = (auth.verify_result(faces["A"], key, t), auth.verify_result(faces["A"], None, pt),
                             auth.verify_result(faces["A"], key, pt))
    assert plain.match and keyless.match and keyed.match
    assert plain.score == pytest.approx(keyless.score, abs=2e-5) and keyless == keyed
    assert plain.code_match == keyless.code_match and plain.box == keyless.box
    other = auth.verify_result(faces["B"], None, pt)
    assert not other.match and other.score < auth.threshold
    with pytest.raises(TypeError, match="a plain template is read with the key"):
        auth.verify_result(faces["A"], None, t)
    with pytest.raises(TypeError, match="key: expected kfaar.Key, got NoneType"):
        auth.verify(faces["A"], None, pt)
    with Authenticator(AuthenticatorOptions(min_code_match=0.8)) as gated:
        for template in (t, pt):
            r = gated.verify_result(grace_hopper, key, template)  # the genuine photo: no code to read
            assert not r.match and r.score is None and r.code_match < 0.8


def test_enroll_protected_is_protect_of_enroll(auth, grace_hopper, faces):
    assert auth.enroll_protected(grace_hopper, _key("A")) == auth.protect(faces["template"], _key("A"))


def test_a_template_used_with_another_key_or_model_is_refused_not_misread(auth, faces):
    pt = auth.protect(faces["template"], _key("A"))
    with pytest.raises(TemplateMismatchError, match=r"made with key kfp-.*not with this key \(kfp-"):
        auth.verify(faces["B"], _key("B"), pt)
    elsewhere = ProtectedTemplate(pt.code, pt.key_fingerprint, "0" * 16)
    with pytest.raises(TemplateMismatchError, match="identity space 0000000000000000"):
        auth.verify_protected(faces["A"], elsewhere)
    with pytest.raises(TypeError, match="expected kfaar.ProtectedTemplate, got ndarray"):
        auth.verify_protected(faces["A"], faces["template"])
    with pytest.raises(TypeError, match="score_code"):
        auth.score(auth.recover(faces["A"], _key("A")), pt)


def test_a_face_without_a_code_is_refused_by_the_gate(grace_hopper, faces):
    from kfaar import Authenticator
    from kfaar.pipeline import AuthenticatorOptions

    with Authenticator(AuthenticatorOptions(min_code_match=0.8)) as gated:
        pt = gated.protect(faces["template"], _key("A"))
        assert gated.read_code(grace_hopper).code_match < 0.8
        assert not gated.verify_protected(grace_hopper, pt)  # the genuine photo carries no code
        assert gated.verify_protected(faces["A"], pt)


# ------------------------------------------------------------------ the object and its file
def test_the_template_holds_a_private_read_only_unit_code_and_its_repr_shows_no_numbers():
    raw = np.arange(1, 129, dtype=np.float64)
    t = ProtectedTemplate(raw, "kfp-AAAA-BBBB-CCCC-DDDD", "0123456789abcdef")
    raw[:] = 0
    assert t.code.dtype == np.float32 and np.linalg.norm(t.code) == pytest.approx(1.0)
    assert not t.code.flags.writeable
    assert repr(t) == "ProtectedTemplate(key_fingerprint='kfp-AAAA-BBBB-CCCC-DDDD', space='0123456789abcdef')"
    huge = ProtectedTemplate(np.full(128, 3e38, np.float32), "kfp-x", "s")  # |code| overflows float32
    np.testing.assert_allclose(huge.code, np.full(128, 128 ** -0.5), rtol=1e-6)
    for code in (np.zeros(128), np.ones(64), np.full(128, np.nan)):
        with pytest.raises(ValueError, match=r"code: expected \(128,\) finite numbers"):
            ProtectedTemplate(code, "kfp-x", "s")
    with pytest.raises(ValueError, match="key_fingerprint: expected a non-empty str"):
        ProtectedTemplate(np.ones(128), "", "s")


def test_save_and_load_round_trip_privately_and_never_overwrite_by_accident(tmp_path):
    t = ProtectedTemplate.from_bytes(VECTORS["file"].encode())
    path = t.save(tmp_path / "alice.kft")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert ProtectedTemplate.load(path) == t
    with pytest.raises(FileExistsError, match="template file already exists"):
        t.save(path)
    t.save(path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice.kft"]  # no temporary file left


@pytest.mark.parametrize("edit, message", [
    (lambda d: "not json", "Expecting value"),
    (lambda d: "[1, 2]", "no \"format\""),
    (lambda d: d.replace('"version": 1', '"version": 2'), "this kfaar reads: version 2, expected 1"),
    (lambda d: d.replace('"code": "', '"code": "AAAA'), "its code has 515 bytes, expected 512"),
    (lambda d: d.replace('"code": "', '"code": "*'), "Only base64 data|Incorrect padding|Non-base64"),
    (lambda d: d.replace('"space"', '"spice"'), "'space'"),
])
def test_a_damaged_file_is_refused_naming_it(tmp_path, edit, message):
    path = tmp_path / "bad.kft"
    path.write_text(edit(VECTORS["file"]))
    with pytest.raises(ValueError, match=rf"{re.escape(str(path))} is not a kfaar protected template.*({message})"):
        ProtectedTemplate.load(path)


# ------------------------------------------------------------------ the CLI
def _key_file(tmp_path, label: str) -> Path:
    path = tmp_path / f"{label}.key"
    if not path.exists():
        _key(label).save(path, passphrase=ENV["KP"])
    return path


def test_cli_enroll_with_a_key_then_verify_without_it(tmp_path, grace_hopper_path, faces):
    from PIL import Image

    from kfaar.cli import main

    runner = CliRunner()
    for label in "AB":
        Image.fromarray(faces[label]).save(tmp_path / f"virtual{label}.png")
    pt, plain = tmp_path / "alice.kft", tmp_path / "alice.template"  # no .npy added to a name given
    r = runner.invoke(main, ["enroll", str(grace_hopper_path), "--out", str(pt), "--key", str(_key_file(tmp_path, "A")),
                             "--passphrase-env", "KP"], env=ENV)
    assert r.exit_code == 0 and "protected template written" in r.stdout, r.stdout + r.stderr
    assert runner.invoke(main, ["enroll", str(grace_hopper_path), "--out", str(plain)]).exit_code == 0
    assert stat.S_IMODE(os.stat(plain).st_mode) == 0o600 and np.load(plain).shape == (128,)
    cases = [
        ([str(tmp_path / "virtualA.png"), "--template", str(pt)], 0, "MATCH score="),
        ([str(tmp_path / "virtualB.png"), "--template", str(pt)], 1, "NO MATCH score="),
        ([str(tmp_path / "virtualA.png"), "--template", str(pt), "--key", str(_key_file(tmp_path, "A"))], 0, "MATCH"),
        ([str(tmp_path / "virtualA.png"), "--template", str(pt), "--key", str(_key_file(tmp_path, "B"))], 2,
         "Error: template: made with key"),
        ([str(tmp_path / "virtualA.png"), "--template", str(plain)], 2, "a plain template (.npy) is read with the key"),
    ]
    for args, code, text in cases:
        r = runner.invoke(main, ["verify", *args, "--passphrase-env", "KP"], env=ENV)
        assert r.exit_code == code and text in (r.stdout + r.stderr), (args, r.exit_code, r.stdout, r.stderr)
    (tmp_path / "broken.kft").write_text(VECTORS["file"].replace('"version": 1', '"version": 9'))
    r = runner.invoke(main, ["verify", str(tmp_path / "virtualA.png"), "--template", str(tmp_path / "broken.kft")])
    assert r.exit_code == 2 and "broken.kft is not a kfaar protected template" in r.stderr, r.stderr


def test_any_bytes_either_parse_or_raise_value_error():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    good = VECTORS["file"].encode()

    @settings(max_examples=300, deadline=None)
    @given(st.one_of(st.binary(max_size=2000),
                     st.tuples(st.integers(0, len(good) - 1), st.binary(min_size=1, max_size=8)).map(
                         lambda c: good[:c[0]] + c[1] + good[c[0] + len(c[1]):])))
    def check(data):
        try:
            t = ProtectedTemplate.from_bytes(data)
        except ValueError as e:
            assert str(e).startswith("data is not a kfaar protected template")
        else:
            assert t.code.shape == (128,) and np.isfinite(t.code).all()

    check()
    with pytest.raises(ValueError, match="data is not a kfaar protected template: maximum recursion depth"):
        ProtectedTemplate.from_bytes(b"[" * 50_000)
