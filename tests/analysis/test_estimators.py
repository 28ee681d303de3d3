"""Total-correlation estimators and probe-weight numbers on inputs with a known answer."""

import numpy as np
import pytest

from sim_jax.analysis import entanglement, weights


def _ar1_cov(d: int, rho: float) -> np.ndarray:
  return rho ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))


def test_kde_log_density_matches_sklearn():
  from sklearn.neighbors import KernelDensity
  x = np.random.default_rng(0).standard_normal((300, 5))
  expected = KernelDensity(kernel='gaussian', bandwidth=0.1).fit(x).score_samples(x)
  np.testing.assert_allclose(entanglement.kde_log_density(x, 0.1), expected, atol=1e-4)


def test_kde_tc_independent_is_near_zero():
  x = np.random.default_rng(1).standard_normal((8000, 2))
  assert abs(entanglement.kde_total_correlation(x, 0.1)) < 0.1


def test_kde_tc_correlated_matches_closed_form():
  cov = np.array([[1.0, 0.8], [0.8, 1.0]])
  x = np.random.default_rng(2).multivariate_normal([0, 0], cov, 8000)
  expected = entanglement.gaussian_tc_closed_form(cov)  # −½ log(1 − 0.64) ≈ 0.511
  assert expected == pytest.approx(-0.5 * np.log(1 - 0.64))
  assert entanglement.kde_total_correlation(x, 0.1) == pytest.approx(expected, abs=0.1)


@pytest.mark.parametrize('d', [3, 512])
def test_gaussian_tc_independent_is_near_zero_after_null(d):
  x = np.random.default_rng(3).standard_normal((20000, d))
  result = entanglement.gaussian_tc_summary(x, seed=0)
  assert result['tc'] == pytest.approx(d * (d - 1) / (4 * 20000), abs=0.05 + 0.01 * d)  # known bias
  assert abs(result['excess_tc']) < 0.1


@pytest.mark.parametrize('d,rho', [(2, 0.8), (64, 0.5), (512, 0.5)])
def test_gaussian_tc_correlated_matches_closed_form(d, rho):
  cov = _ar1_cov(d, rho)
  expected = entanglement.gaussian_tc_closed_form(cov)
  assert expected == pytest.approx(-0.5 * (d - 1) * np.log(1 - rho ** 2))  # AR(1) determinant
  x = np.random.default_rng(4).standard_normal((20000, d)) @ np.linalg.cholesky(cov).T
  result = entanglement.gaussian_tc_summary(x, seed=0)
  assert result['excess_tc'] == pytest.approx(expected, rel=0.02, abs=0.02)


def test_gaussian_tc_drops_constant_dims_and_needs_samples():
  x = np.random.default_rng(5).standard_normal((100, 4))
  x[:, 2] = 3.0
  result = entanglement.gaussian_total_correlation(x)
  assert (result['dims'], result['constant_dims']) == (3, 1)
  with pytest.raises(ValueError, match='more samples than dimensions'):
    entanglement.gaussian_total_correlation(x[:3])


def test_sample_signals_respects_items_channels_and_limit():
  frames = np.arange(60, dtype=np.float32).reshape(20, 3)  # 4 items of 5 frames, 3 channels
  offsets = np.array([0, 5, 10, 15, 20])
  rng = np.random.default_rng(0)
  x = entanglement.sample_signals(frames, offsets, channels=2, times=2, max_signals=7, rng=rng)
  assert x.shape == (7, 2)
  every = entanglement.sample_signals(frames, offsets, channels=-1, times=-1, max_signals=-1, rng=rng)
  assert sorted(every[:, 0]) == sorted(frames[:, 0])


def test_kde_tc_table_has_one_row_per_capped_size():
  rng = np.random.default_rng(6)
  frames = rng.standard_normal((200, 8))
  offsets = np.arange(0, 201, 10)
  table = entanglement.kde_tc_table(frames, offsets, (4, 16, -1), times=5, max_signals=100,
                                    repeats=2, bandwidth=0.1, seed=0)
  assert [row['channels'] for row in table] == [4, 8]
  assert all(len(row['tc_runs']) == 2 and row['samples'] == 100 for row in table)


def test_weight_rescale_and_concentration():
  w = np.zeros((2, 10))
  w[0, 3] = 4.0                           # class 0: one dimension holds everything
  w[1] = 1.0                              # class 1: spread evenly over all 10
  w[1, 0] = -1.0
  rescaled = weights.rescale_per_class(w)
  assert rescaled.min(axis=1).tolist() == [-1.0, -1.0] and rescaled.max(axis=1).tolist() == [1.0, 1.0]
  stats = weights.concentration(w)
  assert stats['dims_for_50pct'] == [1, 5] and stats['dims_for_90pct'] == [1, 9]
  np.testing.assert_allclose(stats['entropy'], [0.0, np.log(10)], atol=1e-12)
  assert stats['mean_effective_dims'] == pytest.approx(5.5)
  assert weights.importance_order(w)[0] == 3
