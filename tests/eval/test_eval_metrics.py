"""Metric functions on synthetic score arrays (no judges, no data)."""

from __future__ import annotations

import numpy as np
import pytest

from kfaar.eval import metrics


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def test_tar_at_far_separated_scores_accepts_every_genuine(rng):
    res = metrics.tar_at_far(rng.uniform(2, 3, 1000), rng.uniform(0, 1, 10_000), 0.01)
    assert res.tar == 1.0
    assert res.far <= 0.01
    assert 0.98 < res.threshold < 1.0


def test_tar_at_far_equals_far_when_genuine_and_impostor_are_alike(rng):
    res = metrics.tar_at_far(rng.normal(size=200_000), rng.normal(size=200_000), 0.01)
    assert res.tar == pytest.approx(0.01, abs=0.002)
    assert res.far == pytest.approx(0.01, abs=1e-4)


def test_tar_at_far_known_gaussian_value(rng):
    # genuine ~ N(2, 1), impostor ~ N(0, 1): threshold z_{0.99} = 2.326, TAR = P(N(0,1) > 0.326) = 0.372
    res = metrics.tar_at_far(rng.normal(2, 1, 200_000), rng.normal(0, 1, 200_000), 0.01)
    assert res.threshold == pytest.approx(2.326, abs=0.03)
    assert res.tar == pytest.approx(0.372, abs=0.01)


def test_tar_at_far_never_exceeds_target_with_ties():
    imp = np.array([0.0] * 90 + [1.0] * 10)
    res = metrics.tar_at_far(np.array([1.0, 2.0]), imp, 0.05)
    assert res.far <= 0.05
    assert res.tar == 0.5  # only the 2.0 is above the tied 1.0 block


def test_tar_at_far_rejects_bad_rate():
    with pytest.raises(ValueError, match="far"):
        metrics.tar_at_far([1.0], [0.0], 1.5)


def test_tar_at_far_empty_is_nan_not_error():
    res = metrics.tar_at_far([], [0.1, 0.2], 0.01)
    assert np.isnan(res.tar) and res.n_genuine == 0


def test_roc_auc_extremes(rng):
    assert metrics.roc_curve(rng.uniform(2, 3, 500), rng.uniform(0, 1, 500)).auc == 1.0
    same = metrics.roc_curve(rng.normal(size=20_000), rng.normal(size=20_000))
    assert same.auc == pytest.approx(0.5, abs=0.01)
    assert metrics.roc_curve([1.0, 1.0], [1.0, 1.0]).auc == 0.5  # ties count half


def test_roc_curve_is_monotone_and_spans_zero_to_one(rng):
    roc = metrics.roc_curve(rng.normal(1, 1, 5000), rng.normal(0, 1, 50_000))
    assert roc.far[0] == 1.0 and roc.tar[0] == 1.0
    assert roc.far[-1] == 0.0
    assert np.all(np.diff(roc.far) <= 0) and np.all(np.diff(roc.tar) <= 0)
    assert len(roc.far) <= 400


def test_dsys_identical_distributions_is_near_zero(rng):
    res = metrics.dsys(rng.normal(size=20_000), rng.normal(size=200_000))
    assert res.dsys < 0.05


def test_dsys_disjoint_distributions_is_one(rng):
    res = metrics.dsys(rng.uniform(2, 3, 2000), rng.uniform(0, 1, 20_000))
    assert res.dsys == pytest.approx(1.0)


def test_dsys_partial_overlap_is_between(rng):
    res = metrics.dsys(rng.normal(1.5, 1, 20_000), rng.normal(0, 1, 200_000))
    assert 0.2 < res.dsys < 0.8


def test_dsys_omega_weights_the_mated_prior(rng):
    m, nm = rng.normal(1, 1, 20_000), rng.normal(0, 1, 200_000)
    assert metrics.dsys(m, nm, omega=10).dsys > metrics.dsys(m, nm).dsys > metrics.dsys(m, nm, omega=0.1).dsys


def test_dsys_rejects_nan():
    with pytest.raises(ValueError, match="mated"):
        metrics.dsys([np.nan, 1.0], [0.0, 1.0])


def test_abs_error_wraps_angles():
    res = metrics.abs_error([179.0, -179.0, 10.0], [-179.0, 179.0, np.nan], period=360.0)
    assert res.n == 2
    assert res.median == pytest.approx(2.0)


def test_abs_error_median_and_p90():
    a = np.arange(101, dtype=float)
    res = metrics.abs_error(a, np.zeros(101))
    assert res.median == 50.0 and res.p90 == 90.0 and res.n == 101


def test_abs_error_length_mismatch_names_arguments():
    with pytest.raises(ValueError, match="same length"):
        metrics.abs_error([1.0], [1.0, 2.0])


def test_correlation_perfect_and_undefined():
    x = np.linspace(0, 1, 50)
    assert metrics.correlation(x, 3 * x + 1).r == pytest.approx(1.0)
    assert np.isnan(metrics.correlation(x, np.ones(50)).r)
    assert np.isnan(metrics.correlation([1.0, 2.0], [1.0, 2.0]).r)


def test_share_and_json_null_for_empty():
    assert metrics.share([True, False, True, True]).value == 0.75
    assert metrics.share([]).to_json() == {"value": None, "n": 0}
