import numpy as np
import pytest

from kfaar.errors import ModelIntegrityError
from kfaar.faces import SFaceEncoder
from kfaar.faces.models import (
    SFACE,
    YUNET,
    _dequantize_blocks,
    model_cache_dir,
    ort_model_path,
    source_model_path,
    verified_model_path,
)


def test_shipped_files_match_their_pins():
    for spec in (YUNET, SFACE):
        assert verified_model_path(spec) == source_model_path(spec)


def test_hash_mismatch_raises(tmp_path):
    fake = tmp_path / "sface.onnx"
    fake.write_bytes(source_model_path(SFACE).read_bytes()[:-1] + b"\x00")  # one byte changed
    with pytest.raises(ModelIntegrityError, match="expected the pinned"):
        verified_model_path("sface", fake)
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        ort_model_path("sface", fake, cache_dir=tmp_path / "cache")
    with pytest.raises(ModelIntegrityError, match="SHA-256"):
        SFaceEncoder(fake)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_unknown_model_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"\['sface', 'yunet'\]"):
        source_model_path("arcface")


def test_conversion_is_cached_atomically(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    first = ort_model_path("yunet", cache_dir=tmp_path)
    stamp = first.stat().st_mtime_ns
    assert ort_model_path("yunet", cache_dir=tmp_path) == first and first.stat().st_mtime_ns == stamp
    assert YUNET.sha256[:16] in first.name
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary left behind
    sess = ort.InferenceSession(str(first), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"input": np.zeros((1, 3, 640, 640), np.float32)})
    assert len(outs) == 12


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("KFAAR_CACHE_DIR", str(tmp_path))
    assert model_cache_dir() == tmp_path / "models"


def test_blocked_dequantize_matches_the_definition():
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (3, 10)).astype(np.int8)
    scale = rng.uniform(0.1, 1, (3, 3)).astype(np.float32)  # blocks of 4 along axis 1: 4+4+2
    zero = rng.integers(-3, 3, (3, 3)).astype(np.int8)
    out = _dequantize_blocks(q, scale, zero, axis=1, block_size=4)
    for i in range(3):
        for j in range(10):
            b = j // 4
            assert out[i, j] == pytest.approx((float(q[i, j]) - zero[i, b]) * scale[i, b])
    per_axis = _dequantize_blocks(q, scale[:, 0], None, axis=0, block_size=0)
    np.testing.assert_allclose(per_axis, q * scale[:, :1])
