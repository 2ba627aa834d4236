"""Bad input never crashes: hypothesis drives the bindings and the public ops with random shapes,
dtypes, layouts and values; each either works or raises ValueError/TypeError naming the
argument, with the same words in Python and C++."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kfaar import Key
from kfaar.ops import MappingWeights, ProjectionParams, cosine_scores, map_latent, project
from kfaar.ops import _dispatch

_C = _dispatch.native_module()
pytestmark = pytest.mark.skipif(_C is None, reason="kfaar._C is not compiled")

PARAMS = ProjectionParams.from_key(Key.from_bytes(bytes(range(32))), dim=16, rounds=3)
WEIGHTS = MappingWeights.random(8, 12, 2, 3, 4)
DTYPES = [np.float32, np.float64, np.float16, np.int32, np.int64, np.uint8, np.bool_, np.complex64]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def arrays(draw, near_shape: tuple[int, ...]):
    """Mostly arrays close to the expected shape, with a wrong dtype, layout or value now and then."""
    kind = draw(st.sampled_from(["ok", "ok", "dtype", "ndim", "shape", "empty", "strided", "misaligned", "nan", "inf",
                                 "object", "unpickled", "swapped"]))
    shape = list(near_shape)
    if kind == "ndim":
        shape = draw(st.lists(st.integers(1, 4), min_size=0, max_size=4).filter(lambda s: len(s) != len(near_shape)))
    elif kind == "shape":
        shape = [draw(st.integers(1, 20)) for _ in shape]
    elif kind == "empty":
        shape[draw(st.integers(0, len(shape) - 1))] = 0
    dtype = draw(st.sampled_from(DTYPES)) if kind == "dtype" else np.float32
    a = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(shape).astype(dtype)
    if kind == "object":
        return draw(st.sampled_from([None, 3, "z", a.tolist(), b"\0" * 16]))
    if kind == "strided":
        a = np.repeat(a, 2, axis=-1)[..., ::2] if a.ndim else a
    if kind == "misaligned" and a.size:
        raw = np.zeros(a.nbytes + 1, np.uint8)
        a = np.frombuffer(raw.data, np.float32, count=a.size, offset=1).reshape(a.shape)
    if kind == "unpickled":  # float32, but not numpy's own dtype object (what a process pool hands over)
        a = pickle.loads(pickle.dumps(a))
    if kind == "swapped":  # big-endian float32: not the float32 the kernels read
        a = a.astype(a.dtype.newbyteorder(">"))
    if kind in ("nan", "inf") and a.size:
        a = a.copy()
        a.flat[draw(st.integers(0, a.size - 1))] = np.nan if kind == "nan" else -np.inf
    return a


def outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        return exc


def same_error(a, b) -> bool:
    return type(a) is type(b) and str(a) == str(b)


@SETTINGS
@given(z=arrays((3, 16)), inverse=st.booleans())
def test_projection_binding_and_op_agree_on_bad_z(z, inverse):
    native = outcome(_C.projection_cpu, z, PARAMS.signs, PARAMS.perms, inverse=inverse)
    python = outcome(project, z, PARAMS, inverse=inverse, backend="ref")
    if isinstance(python, Exception):
        assert isinstance(native, Exception), f"C++ accepted what Python rejected: {python}"
        if "dim" not in str(python):  # dim mismatches are worded from each side's point of view
            assert same_error(native, python)
    else:
        np.testing.assert_allclose(native, python, atol=1e-5)


@SETTINGS
@given(signs=arrays((3, 16)), perms=arrays((3, 16)), flip=st.integers(0, 47))
def test_projection_binding_rejects_bad_params(signs, perms, flip):
    if isinstance(perms, np.ndarray) and perms.dtype == np.float32 and perms.shape == (3, 16):
        perms = np.argsort(perms, axis=1).astype(np.int32)  # a valid permutation, then maybe broken
        if flip % 2:
            perms.flat[flip] = (perms.flat[flip] + 1) % 16
    if isinstance(signs, np.ndarray) and signs.dtype == np.float32 and signs.size and signs.ndim and flip % 3:
        signs = np.where(np.nan_to_num(signs) >= 0, 1.0, -1.0).astype(np.float32)
    z = np.ones((2, 16), np.float32)
    result = outcome(_C.projection_cpu, z, signs, perms)
    assert isinstance(result, (Exception, np.ndarray))


@SETTINGS
@given(x=arrays((2, 8)), mix=st.one_of(st.none(), arrays((2, 3, 4))), alpha=st.one_of(st.none(), arrays((3,))))
def test_mapping_binding_and_op_agree_on_bad_inputs(x, mix, alpha):
    w = WEIGHTS
    native = outcome(
        _C.mapping_cpu, x, w.weights, w.biases, w.style_weight, w.style_bias, mix=mix, alpha=alpha, slope=w.slope, gain=w.gain
    )
    python = outcome(map_latent, x, w, mix=mix, alpha=alpha, backend="ref")
    if isinstance(python, Exception):
        assert isinstance(native, Exception), f"C++ accepted what Python rejected: {python}"
        if "dim" not in str(python):  # shape mismatches are worded from each side's point of view
            assert same_error(native, python)
    else:
        np.testing.assert_allclose(native, python, rtol=1e-5, atol=1e-5)


@SETTINGS
@given(weights=st.lists(arrays((12, 8)), max_size=3), biases=st.lists(arrays((12,)), max_size=3), sw=arrays((3, 4, 12)))
def test_mapping_binding_rejects_bad_weights(weights, biases, sw):
    x = np.ones((2, 8), np.float32)
    result = outcome(_C.mapping_cpu, x, weights, biases, sw, np.zeros((3, 4), np.float32))
    assert isinstance(result, (Exception, np.ndarray))


@SETTINGS
@given(probes=arrays((2, 5)), templates=arrays((3, 5)))
def test_scoring_binding_and_op_agree(probes, templates):
    native = outcome(_C.scoring_cpu, probes, templates)
    python = outcome(cosine_scores, probes, templates, backend="ref")
    if isinstance(python, Exception):
        assert same_error(native, python)
    else:
        np.testing.assert_allclose(native, python, atol=1e-5)


@pytest.mark.parametrize(
    ("z", "error", "match"),
    [
        (np.ones((0, 16), np.float32), ValueError, r"z: expected every axis of \(batch, dim\) to be >= 1, got shape \(0, 16\)"),
        (np.ones((2, 12), np.float32), ValueError, "z: expected dim to be a power of two from 2 to 65536"),
        (np.ones((2, 16)), TypeError, r"z: expected dtype float32, got float64 \(convert with .astype\(np.float32\)\)"),
        (np.ones((16, 2), np.float32).T, ValueError, "z: expected a C-contiguous array, got a strided view"),
        (np.full((1, 16), np.inf, np.float32), ValueError, "z: expected finite values, got NaN or inf"),
        ([[1.0] * 16], TypeError, "z: expected a numpy float32 array"),
        (np.ones(16, np.float32), ValueError, r"z: expected 2 dimensions \(batch, dim\), got shape \(16,\)"),
    ],
)
def test_binding_messages_name_the_argument(z, error, match):
    with pytest.raises(error, match=match):
        _C.projection_cpu(z, PARAMS.signs, PARAMS.perms)


def test_binding_takes_an_equal_dtype_that_is_not_numpys_own_object():
    """An unpickled float32 array has an equal dtype object of its own: the kernels read it (they
    compared dtype objects by identity and refused it, breaking a pickled Anonymizer)."""
    z = pickle.loads(pickle.dumps(np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)))
    assert z.dtype == np.float32 and z.dtype is not np.dtype(np.float32)
    np.testing.assert_array_equal(_C.projection_cpu(z, PARAMS.signs, PARAMS.perms),
                                  _C.projection_cpu(z.copy(), PARAMS.signs, PARAMS.perms))
    perms = pickle.loads(pickle.dumps(PARAMS.perms))
    np.testing.assert_array_equal(_C.projection_cpu(z, PARAMS.signs, perms), project(z.copy(), PARAMS, backend="cpu"))
    np.testing.assert_array_equal(_C.scoring_cpu(z, z), cosine_scores(z.copy(), z.copy(), backend="cpu"))
    swapped = z.astype(">f4")
    with pytest.raises(TypeError, match=r"z: expected dtype float32, got >f4"):
        _C.projection_cpu(swapped, PARAMS.signs, PARAMS.perms)
    with pytest.raises(TypeError, match=r"z: expected dtype float32, got >f4"):
        project(swapped, PARAMS, backend="ref")


def test_binding_rejects_a_misaligned_buffer():
    raw = np.zeros(2 * 16 * 4 + 1, np.uint8)
    z = np.frombuffer(raw.data, np.float32, count=32, offset=1).reshape(2, 16)
    with pytest.raises(ValueError, match="z: expected an aligned array"):
        _C.projection_cpu(z, PARAMS.signs, PARAMS.perms)
    with pytest.raises(ValueError, match="z: expected an aligned array"):
        project(z, PARAMS)


def test_binding_rejects_out_of_range_permutation_indices():
    perms = PARAMS.perms.copy()
    perms[0, 0] = 1 << 30
    with pytest.raises(ValueError, match="perms: expected each row to be a permutation of 0..15, row 0 is not"):
        _C.projection_cpu(np.ones((1, 16), np.float32), PARAMS.signs, perms)


def test_binding_rejects_partial_whitening():
    with pytest.raises(ValueError, match="whitening: expected mean, whiten and color together"):
        _C.projection_cpu(np.ones((1, 16), np.float32), PARAMS.signs, PARAMS.perms, mean=np.zeros(16, np.float32))


@SETTINGS
@given(
    dim_log2=st.integers(1, 10),
    batch=st.integers(1, 40),
    rounds=st.integers(1, 5),
    inverse=st.booleans(),
    seed=st.binary(min_size=32, max_size=32),
)
def test_random_valid_projections_match_the_reference(dim_log2, batch, rounds, inverse, seed):
    from kfaar.ops.projection import _project_ref

    params = ProjectionParams.from_seed(seed, dim=1 << dim_log2, rounds=rounds)
    z = np.random.default_rng(int.from_bytes(seed[:4], "little")).standard_normal((batch, params.dim)).astype(np.float32)
    got = _C.projection_cpu(z, params.signs, params.perms, inverse)
    np.testing.assert_allclose(got, _project_ref(z, params, inverse=inverse), rtol=0, atol=1e-5)
