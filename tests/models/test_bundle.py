"""The shipped bundle: save/load round trip, SHA-256 pinning, clear refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kfaar.errors import ModelIntegrityError  # noqa: E402
from kfaar.models.bundle import SHIPPED, WEIGHTS_DIR, ModelBundle, load_bundle, save_bundle, sha256_bytes  # noqa: E402
from kfaar.models.generator import Generator  # noqa: E402
from kfaar.models.identity_space import IdentitySpace  # noqa: E402
from kfaar.models.mapping import MappingNetwork  # noqa: E402


@pytest.fixture(scope="module")
def bundle_file(tmp_path_factory):
    torch.manual_seed(0)
    g = Generator()
    b = ModelBundle(g, MappingNetwork(n_styles=g.cfg.n_styles), IdentitySpace(), 0.25, {"run": "test"})
    path = tmp_path_factory.mktemp("bundle") / "b.safetensors"
    sha = save_bundle(b, path)
    return path, sha, b


def test_round_trip_keeps_every_tensor_and_the_threshold(bundle_file):
    path, sha, b = bundle_file
    loaded = load_bundle(path, sha)
    assert loaded.threshold == 0.25 and loaded.info == {"run": "test"}
    for name, mod in b.modules().items():
        for (k, v), v2 in zip(mod.state_dict().items(), loaded.modules()[name].state_dict().values()):
            torch.testing.assert_close(v, v2, msg=f"{name}.{k}")


def test_the_same_bundle_saves_to_the_same_bytes(bundle_file, tmp_path):
    # safetensors writes its metadata in a per-call hash order; save_bundle sorts it so a pin names the content
    path, sha, b = bundle_file
    shas = {save_bundle(b, tmp_path / f"{i}.safetensors") for i in range(8)}
    assert shas == {sha}
    data = (tmp_path / "0.safetensors").read_bytes()
    n = int.from_bytes(data[:8], "little")
    assert n % 8 == 0
    meta = json.loads(data[8:8 + n])["__metadata__"]
    assert list(meta) == sorted(meta)


def test_checksum_mismatch_refuses_to_load(bundle_file, tmp_path):
    path, sha, _ = bundle_file
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    bad = tmp_path / "tampered.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match the pinned"):
        load_bundle(bad, sha)
    with pytest.raises(ModelIntegrityError, match="does not match the pinned"):
        load_bundle(bytes(data), sha)


def test_shipped_model_is_pinned_and_verified(monkeypatch, bundle_file, tmp_path):
    path, sha, _ = bundle_file
    monkeypatch.setattr("kfaar.models.bundle.WEIGHTS_DIR", tmp_path)
    monkeypatch.setitem(SHIPPED, "kfaar-v2", ("w.safetensors", "0" * 64))
    (tmp_path / "w.safetensors").write_bytes(path.read_bytes())
    with pytest.raises(ModelIntegrityError, match="kfaar-v2|pinned"):
        load_bundle()
    # named by its path, the shipped file is held to its pin all the same
    with pytest.raises(ModelIntegrityError, match="does not match the pinned"):
        load_bundle(tmp_path / "w.safetensors")
    assert load_bundle(tmp_path / "w.safetensors", sha).threshold == 0.25  # unless the caller pins it


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ModelIntegrityError, match="valid names: \\['kfaar-v2'\\]"):
        load_bundle("no-such-model")


def test_not_a_bundle_is_refused(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, p)
    with pytest.raises(ModelIntegrityError, match="format"):
        load_bundle(p)


def test_the_committed_weights_match_their_pin():
    fname, pinned = SHIPPED["kfaar-v2"]
    data = (WEIGHTS_DIR / fname).read_bytes()
    assert sha256_bytes(data) == pinned
    assert len(data) <= 40e6
    assert np.isfinite(load_bundle().threshold)
