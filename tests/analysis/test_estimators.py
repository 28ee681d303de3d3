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


def test_sample_signals_count_audio_items_in_whole_batches():
  """The original's sampling (main_total_correlation.py:68-111): shuffled whole batches (drop_last),
  the same random frames for every item of a batch, stop once the ITEMS reach max_items."""
  frames = np.arange(200 * 3, dtype=np.float32).reshape(200, 3)  # 20 items of 10 frames, 3 channels
  offsets = np.arange(0, 201, 10)
  rng = np.random.default_rng(0)
  x, items = entanglement.sample_signals(frames, offsets, channels=2, times=4, max_items=7,
                                         batch_size=6, drop_last=True, rng=rng)
  assert (items, x.shape) == (12, (48, 2))  # the 2nd batch of 6 crosses 7 items: 12 items × 4 frames
  frame_in_item = (x[:, 0] // 3).astype(int) % 10  # which frame of its item each row is
  item_of_row = (x[:, 0] // 3).astype(int) // 10
  assert len(set(item_of_row)) == 12
  for batch in (slice(0, 24), slice(24, 48)):  # one set of 4 frames per batch, shared by its items
    per_item = frame_in_item[batch].reshape(6, 4)
    assert (per_item == per_item[0]).all() and len(set(per_item[0])) == 4
  every, items = entanglement.sample_signals(frames, offsets, channels=-1, times=-1, max_items=-1,
                                             batch_size=6, drop_last=True, rng=rng)
  assert items == 18 and every.shape == (180, 3)  # 3 whole batches of 6: the last 2 items dropped
  _, items = entanglement.sample_signals(frames, offsets, -1, -1, -1, 6, False, rng)
  assert items == 20
  with pytest.raises(ValueError, match='fewer than one batch of config.analysis.kde_batch_size=32'):
    entanglement.sample_signals(frames, offsets, -1, 5, -1, 32, True, rng)


def test_kde_tc_table_has_one_row_per_setting_after_capping():
  rng = np.random.default_rng(6)
  frames = rng.standard_normal((200, 8))
  offsets = np.arange(0, 201, 10)
  settings = [(4, 5, 8), (16, 5, 8), (512, 5, 8), (-1, -1, -1)]  # 16 and 512 both cap to 8 channels
  table = entanglement.kde_tc_table(frames, offsets, settings, repeats=2, bandwidth=0.1, batch_size=4,
                                    drop_last=True, max_vectors=150, seed=0)
  assert [(r['channels'], r['times'], r['max_items']) for r in table] == [(4, 5, 8), (8, 5, 8), (8, -1, -1)]
  assert [(r['items'], r['samples'], r['capped']) for r in table] == [(8, 40, False), (8, 40, False),
                                                                      (20, 150, True)]
  assert all(len(row['tc_runs']) == 2 for row in table)
  assert table[2]['setting'] == '8 ch × ∞ frames, ∞ items'


def test_kde_estimates_read_a_fresh_sim_draw_each_when_given_one():
  """The original re-encodes its test loader for every estimate, so SIM's sampling noise is in the
  spread of the repeats: with `redraw`, estimate n reads draw n; without, every one reads the same."""
  rng = np.random.default_rng(7)
  draws = [rng.standard_normal((60, 3)) * (1 + n) for n in range(3)]  # 10 items of 6 frames each
  offsets = np.arange(0, 61, 6)
  common = dict(settings=[(-1, -1, -1)], repeats=3, bandwidth=0.5, batch_size=5, drop_last=False,
                max_vectors=0, seed=0)  # every channel, frame and item: an estimate reads all of a draw
  expected = [entanglement.kde_total_correlation(d, 0.5) for d in draws]
  fixed = entanglement.kde_tc_table(draws[0], offsets, **common)[0]
  np.testing.assert_allclose(fixed['tc_runs'], [expected[0]] * 3, rtol=1e-5)
  fresh = entanglement.kde_tc_table(draws[0], offsets, **common, redraw=lambda n: draws[n])[0]
  np.testing.assert_allclose(fresh['tc_runs'], expected, rtol=1e-5)
  assert fresh['tc_std'] > 0.1 * abs(np.mean(expected))


def test_original_analysis_defaults():
  """The defaults are the original's post-hoc recipe: SIM samples (get_latents,
  models/independent_module.py:52-61), 128-item loaders with drop_last (main_lat_space.py:88-96,
  data/get_dataloader.py:26-40), t-SNE and histograms on train splits (main_lat_space.py:99-122),
  KDE on the test loader at its six settings, 3× each (main_total_correlation.py:157-177)."""
  from sim_jax.config import analysis_config
  cfg = analysis_config()
  assert (cfg.features, cfg.drop_last, cfg.batch_size) == ('sample', True, 128)
  assert (cfg.tsne_split, cfg.tsne_per_class, cfg.tsne_perplexity) == ('train', 100, 0.0)
  assert (cfg.histogram_split, cfg.histogram_dims, cfg.histogram_range) == ('train', 32, 0.0)
  assert (cfg.kde_split, cfg.kde_batch_size, cfg.kde_repeats, cfg.kde_bandwidth) == ('test', 64, 3, 0.1)
  assert cfg.kde_redraw  # re-encoded for every estimate (main_total_correlation.py:81-87, :171-176)
  assert [tuple(s) for s in cfg.kde_settings] == [(10, 5, 1000), (50, 5, 1000), (100, 5, 1000),
                                                  (512, 5, 1000), (512, 5, -1), (512, -1, -1)]
  assert cfg.kde_max_vectors == 0


def test_weight_table_is_the_originals():
  """rescale_between_neg1_and_1(w, axis=1).T (utils/utils.py:120-129, main_vowel_classifier_analysis.py:
  205-211), recomputed here with np.ptp, saved as .npy and .csv."""
  import tempfile
  w = np.random.default_rng(7).standard_normal((3, 12))  # (classes, dims)
  expected = (2 * (w - w.min(axis=1, keepdims=True)) / np.ptp(w, axis=1, keepdims=True) - 1).T
  with tempfile.TemporaryDirectory() as out:
    paths = weights.write_weight_table(w, 'vowels', out)
    assert [p.rsplit('/', 1)[1] for p in paths] == ['vowel_classifier_weights.npy',
                                                    'vowel_classifier_weights.csv']
    np.testing.assert_allclose(np.load(paths[0]), expected, rtol=1e-12)
    np.testing.assert_allclose(np.loadtxt(paths[1], delimiter=','), expected, rtol=1e-12)


def test_standardised_probe_weights_are_read_on_the_raw_scale(tmp_path):
  kernel = np.array([[2.0, -1.0], [0.5, 0.5], [1.0, 4.0]])  # (D, classes) on standardised features
  std = np.array([4.0, 0.5, 2.0])
  np.savez(tmp_path / 'weights.npz', kernel=kernel, feature_mean=np.ones(3), feature_std=std,
           class_names=np.array(['a', 'b']))
  raw, names, standardized = weights.load_probe_weights(str(tmp_path / 'weights.npz'))
  np.testing.assert_allclose(raw, (kernel / std[:, None]).T)  # x·(W/s) = ((x − m)/s)·W + const
  assert names == ['a', 'b'] and standardized
  np.savez(tmp_path / 'weights.npz', weights=kernel, standardized=True)  # already on the raw scale
  raw, _, standardized = weights.load_probe_weights(str(tmp_path / 'weights.npz'))
  np.testing.assert_allclose(raw, kernel.T)
  assert standardized


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
