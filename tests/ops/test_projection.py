"""Keyed projection: key -> parameters (golden vectors), reference ≡ C++ ≡ CUDA, exact inverse,
orthogonality, and what two keys do to the same embeddings."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kfaar import Key
from kfaar.errors import KeyFormatError
from kfaar.ops import project
from kfaar.ops.projection import CONTEXT, ProjectionParams, Whitening, _Keystream, _project_ref, project_torch


def randn(rng: np.random.Generator, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(np.float32)

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "projection_v1.json").read_text())
KEY_A = Key.from_bytes(bytes(range(32)))
KEY_B = Key.from_bytes(bytes(range(255, 223, -1)))


def whitening_for(dim: int, rng: np.random.Generator) -> Whitening:
    """A well-conditioned, non-centred covariance like real embeddings (mean norm ~0.3)."""
    a = rng.standard_normal((dim, dim)) / math.sqrt(dim)
    cov = 0.5 * np.eye(dim) + 0.5 * a @ a.T
    mean = rng.standard_normal(dim) * 0.3 / math.sqrt(dim)
    return Whitening.from_covariance(mean, cov)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: f"{c['key_hex'][:6]}-d{c['dim']}-r{c['rounds']}")
def test_from_key_reproduces_golden_vectors(case):
    key = Key.from_bytes(bytes.fromhex(case["key_hex"]))
    assert key.derive(CONTEXT).hex() == case["seed_hex"], "HKDF subkey changed: every enrolled template breaks"
    params = ProjectionParams.from_key(key, dim=case["dim"], rounds=case["rounds"])
    np.testing.assert_array_equal(params.signs, np.array(case["signs"], np.float32))
    np.testing.assert_array_equal(params.perms, np.array(case["perms"], np.int32))
    z = np.array(case["input"], np.float32)
    np.testing.assert_allclose(_project_ref(z, params), case["forward"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(project(z, params), case["forward"], rtol=0, atol=1e-5)


def test_same_key_gives_bit_identical_params_in_a_fresh_process():
    code = (
        "from kfaar import Key; from kfaar.ops.projection import ProjectionParams;"
        "p = ProjectionParams.from_key(Key.from_bytes(bytes(range(32))));"
        "import sys; sys.stdout.write(p.signs.tobytes().hex() + ' ' + p.perms.tobytes().hex())"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    params = ProjectionParams.from_key(KEY_A)
    assert out == params.signs.tobytes().hex() + " " + params.perms.tobytes().hex()


def test_params_repr_shows_no_key_material():
    params = ProjectionParams.from_key(KEY_A)
    assert repr(params) == "ProjectionParams(dim=128, rounds=4)"
    assert str(params) == repr(params)
    assert not params.signs.flags.writeable and not params.perms.flags.writeable


def test_different_keys_and_dims_give_different_params():
    a, b = ProjectionParams.from_key(KEY_A), ProjectionParams.from_key(KEY_B)
    assert not np.array_equal(a.perms, b.perms) and not np.array_equal(a.signs, b.signs)
    assert ProjectionParams.from_key(KEY_A, dim=64).dim == 64


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"dim": 100}, ValueError, "dim: expected a power of two"),
        ({"dim": 1}, ValueError, "dim: expected a power of two"),
        ({"dim": 128.0}, TypeError, "dim: expected an int"),
        ({"rounds": 2}, ValueError, "rounds: expected 3 to 64"),
        ({"rounds": True}, TypeError, "rounds: expected an int"),
    ],
)
def test_from_key_rejects_bad_sizes(kwargs, error, match):
    with pytest.raises(error, match=match):
        ProjectionParams.from_key(KEY_A, **kwargs)


def test_from_seed_rejects_a_wrong_size_seed():
    with pytest.raises(ValueError, match="seed: expected 32 bytes, got 31 bytes"):
        ProjectionParams.from_seed(bytes(31))


def test_wrong_size_key_is_rejected_before_any_projection():
    with pytest.raises(KeyFormatError):
        Key.from_bytes(bytes(16))


def test_params_reject_a_non_permutation():
    perms = np.tile(np.arange(8, dtype=np.int32), (3, 1))
    perms[1, 0] = 1
    with pytest.raises(ValueError, match="perms: expected each row to be a permutation of 0..7, row 1 is not"):
        ProjectionParams(np.ones((3, 8), np.float32), perms)


@pytest.mark.parametrize("dim", [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024])
@pytest.mark.parametrize("inverse", [False, True])
def test_native_matches_reference(backend, rng, dim, inverse):
    params = ProjectionParams.from_seed(rng.bytes(32), dim=dim, rounds=int(rng.integers(1, 6)))
    for batch in (1, 7, 33):
        z = randn(rng, batch, dim)
        got = project(z, params, inverse=inverse, backend=backend)
        assert got.dtype == np.float32 and got.shape == (batch, dim)
        np.testing.assert_allclose(got, _project_ref(z, params, inverse=inverse), rtol=0, atol=1e-5)


@pytest.mark.parametrize("dim", [8, 128, 256])
def test_native_matches_reference_with_whitening(backend, rng, dim):
    params = ProjectionParams.from_key(KEY_A, dim=dim)
    w = whitening_for(dim, rng)
    for batch in (1, 5, 130):
        z = randn(rng, batch, dim, scale=0.1)
        for inverse in (False, True):
            expected = _project_ref(z, params, inverse=inverse, whitening=w)
            got = project(z, params, inverse=inverse, whitening=w, backend=backend)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("use_whitening", [False, True])
def test_inverse_undoes_forward(backend, rng, use_whitening):
    params = ProjectionParams.from_key(KEY_A)
    w = whitening_for(128, rng) if use_whitening else None
    z = randn(rng, 257, 128, scale=0.1)
    zp = project(z, params, whitening=w, backend=backend)
    np.testing.assert_allclose(project(zp, params, inverse=True, whitening=w, backend=backend), z, rtol=0, atol=1e-5)
    np.testing.assert_allclose(project(zp, params, inverse=True, whitening=w, backend="ref"), z, rtol=0, atol=1e-5)


def test_projection_keeps_norms_and_inner_products(rng):
    params = ProjectionParams.from_key(KEY_A)
    z = randn(rng, 64, 128)
    zp = project(z, params)
    np.testing.assert_allclose(zp @ zp.T, z @ z.T, rtol=1e-5, atol=1e-4)
    q = params.as_matrix()
    np.testing.assert_allclose(q @ q.T, np.eye(128), atol=1e-12)
    np.testing.assert_allclose(z @ q.T, zp, atol=1e-5)
    np.testing.assert_allclose(params.as_matrix(inverse=True), q.T)


def test_two_keys_give_uncorrelated_projections(rng):
    z = randn(rng, 2000, 128)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    z1 = project(z, ProjectionParams.from_key(KEY_A))
    z2 = project(z, ProjectionParams.from_key(KEY_B))
    cos12 = np.abs(np.sum(z1 * z2, axis=1))
    cos_moved = np.abs(np.sum(z * z1, axis=1))
    # a random rotation on the unit sphere in d=128: E|cos| = sqrt(2 / (pi d)) ≈ 0.07
    assert cos12.mean() < 0.1 and cos_moved.mean() < 0.1
    assert np.percentile(cos12, 99) < 0.363, "wrong-key projections must stay under SFace's match threshold"


def test_whitened_projection_keeps_mean_and_covariance(rng):
    dim = 16
    a = rng.standard_normal((dim, dim))
    cov = a @ a.T / dim + 0.1 * np.eye(dim)
    mean = np.full(dim, 0.3)
    w = Whitening.from_covariance(mean, cov)
    samples = rng.multivariate_normal(mean, cov, size=40000).astype(np.float32)
    out = project(samples, ProjectionParams.from_key(KEY_A, dim=dim), whitening=w)
    np.testing.assert_allclose(out.mean(axis=0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(out, rowvar=False), cov, atol=0.06)


def test_whitening_rejects_a_color_that_is_not_the_inverse():
    with pytest.raises(ValueError, match="color: expected the inverse of whiten"):
        Whitening(np.zeros(4, np.float32), np.eye(4, dtype=np.float32), 2 * np.eye(4, dtype=np.float32))


def test_whitening_of_another_dim_is_rejected(rng):
    with pytest.raises(ValueError, match="whitening: expected dim = 128"):
        project(randn(rng, 1, 128), ProjectionParams.from_key(KEY_A), whitening=whitening_for(64, rng))


@pytest.mark.parametrize("use_whitening", [False, True])
@pytest.mark.parametrize("inverse", [False, True])
def test_torch_twin_matches_reference_and_is_differentiable(rng, use_whitening, inverse):
    torch = pytest.importorskip("torch")
    params = ProjectionParams.from_key(KEY_A, dim=32)
    w = whitening_for(32, rng) if use_whitening else None
    z = rng.standard_normal((3, 32))
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    out = project_torch(zt, params, inverse=inverse, whitening=w)
    np.testing.assert_allclose(out.detach().numpy(), _project_ref(z, params, inverse=inverse, whitening=w), atol=1e-5)
    out.square().sum().backward()
    assert zt.grad is not None and torch.isfinite(zt.grad).all()


class _ScriptedStream(_Keystream):
    """A keystream that replays given bytes, to force rejections (never seen with real keys)."""

    def __init__(self, data: bytes):
        self._data, self._pos = data, 0

    def read(self, n: int) -> bytes:
        out = self._data[self._pos : self._pos + n]
        assert len(out) == n, "read past the scripted stream"
        self._pos += n
        return out


def _fisher_yates_one_word_at_a_time(stream, n):
    perm = list(range(n))
    for i in range(n - 1, 0, -1):
        limit = (1 << 32) - (1 << 32) % (i + 1)
        while (word := int.from_bytes(stream.read(4), "little")) >= limit:
            pass
        j = word % (i + 1)
        perm[i], perm[j] = perm[j], perm[i]
    return perm


def test_rejected_words_are_consumed_in_stream_order(rng):
    words = rng.integers(0, 1 << 32, 400, dtype=np.uint64)
    words[rng.integers(0, 400, 60)] = 0xFFFFFFFF  # rejected for every bound that is not a power of two
    data = words.astype("<u4").tobytes()
    fast, slow = _ScriptedStream(data), _ScriptedStream(data)
    assert fast.permutation(37) == _fisher_yates_one_word_at_a_time(slow, 37)
    assert fast._pos == slow._pos  # the next round starts at the same place in the stream
    assert fast.read(8) == slow.read(8)


def test_the_documented_recipe_gives_the_same_params():
    """kfaar.h spells the key-to-parameters recipe out for native ports; follow it literally."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    key_bytes, dim, rounds = bytes(range(32)), 128, 4
    subkey = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kfaar/v1/projection").derive(key_bytes)
    stream = Cipher(algorithms.ChaCha20(subkey, bytes(16)), mode=None).encryptor().update(bytes(1 << 16))
    pos = 0
    signs, perms = [], []
    for _ in range(rounds):
        raw = stream[pos : pos + (dim + 7) // 8]
        pos += len(raw)
        signs.append([-1.0 if raw[i // 8] >> (i % 8) & 1 else 1.0 for i in range(dim)])
        p = list(range(dim))
        for i in range(dim - 1, 0, -1):
            while True:
                w = int.from_bytes(stream[pos : pos + 4], "little")
                pos += 4
                if w < 2**32 - 2**32 % (i + 1):
                    break
            p[i], p[w % (i + 1)] = p[w % (i + 1)], p[i]
        perms.append(p)
    params = ProjectionParams.from_key(Key.from_bytes(key_bytes), dim=dim, rounds=rounds)
    np.testing.assert_array_equal(params.signs, signs)
    np.testing.assert_array_equal(params.perms, perms)
