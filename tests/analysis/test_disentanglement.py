"""Disentanglement metrics: known answers (factor copies, their rotation, independent codes), the
published formulas evaluated by hand on small fixed examples, an independent MI implementation, and
the choice of factors from a source's labels."""

import math

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from sim_jax.analysis import disentanglement as dis

N_TRAIN, N_TEST = 1500, 500


@pytest.fixture(scope='module')
def factors():
  """Three independent factors with 3, 4 and 5 classes: (N_TRAIN + N_TEST, 3)."""
  rng = np.random.default_rng(0)
  return np.stack([rng.integers(0, k, N_TRAIN + N_TEST) for k in (3, 4, 5)], 1)


def _scores(codes, factors, seeds=(0,)):
  return dis.scores(codes[:N_TRAIN], factors[:N_TRAIN], codes[N_TRAIN:], factors[N_TRAIN:], list(seeds))


@pytest.fixture(scope='module')
def copied(factors):
  """Codes that copy the factors one per dimension, plus two noise dimensions."""
  rng = np.random.default_rng(1)
  codes = np.concatenate([factors, rng.standard_normal((len(factors), 2))], 1).astype(np.float64)
  return codes, _scores(codes, factors)


def test_codes_copying_the_factors_score_one(copied):
  _, r = copied
  for key in ('mig', 'dci_disentanglement', 'dci_completeness', 'dci_informativeness', 'sap'):
    assert r[key] > 0.95, (key, r[key])
  # modularity averages over every dimension, the noise ones too: the copies' own are 1
  assert np.all(dis.modularity(r['mi'])['per_dim'][:3] > 0.99)
  assert list(r['mig_top_dims']) == [0, 1, 2] and list(r['sap_top_dims']) == [0, 1, 2]
  assert np.all(r['importance'][[0, 1, 2], [0, 1, 2]] > 0.95)


def test_a_rotation_of_the_copies_scores_far_lower(factors, copied):
  codes, r = copied
  rotation, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((5, 5)))
  standardised = (codes - codes.mean(0)) / codes.std(0)
  rotated = _scores(standardised @ rotation, factors)
  for key in ('mig', 'dci_disentanglement', 'sap'):
    assert rotated[key] < 0.5 * r[key], (key, rotated[key], r[key])
  # the information is all still there, only spread over the dimensions
  assert rotated['dci_informativeness'] > 0.9


def test_codes_independent_of_the_factors_score_about_zero(factors):
  codes = np.random.default_rng(3).standard_normal((len(factors), 6))
  r = _scores(codes, factors, seeds=(0, 1))
  for key in ('mig', 'dci_disentanglement', 'dci_completeness', 'sap'):
    assert r[key] < 0.06, (key, r[key])
  chance = np.mean([1 / 3, 1 / 4, 1 / 5])
  assert abs(r['dci_informativeness'] - chance) < 0.06
  assert len(r['seeds']['dci_disentanglement']) == 2
  assert r['dci_disentanglement'] == pytest.approx(np.mean(r['seeds']['dci_disentanglement']))
  assert r['dci_disentanglement_std'] == pytest.approx(np.std(r['seeds']['dci_disentanglement']))


def test_mutual_information_matches_an_independent_implementation(factors):
  rng = np.random.default_rng(4)
  codes = np.concatenate([factors[:, :1] + rng.standard_normal((len(factors), 1)),
                          rng.standard_normal((len(factors), 3))], 1)
  binned = dis.discretize(codes, 20)
  mi = dis.mutual_information(binned, factors)  # (C, F)
  expected = np.array([[mutual_info_score(y, b) for y in factors.T] for b in binned.T])
  np.testing.assert_allclose(mi, expected, rtol=1e-10, atol=1e-12)
  assert dis.entropy(factors[:, 0]) == pytest.approx(mutual_info_score(factors[:, 0], factors[:, 0]))


def test_bins_hold_equal_counts_and_ignore_monotone_rescaling():
  x = np.random.default_rng(5).standard_normal((1000, 2))
  binned = dis.discretize(x, 20)
  assert binned.min() == 0 and binned.max() == 19
  np.testing.assert_array_equal(np.bincount(binned[:, 0]), np.full(20, 50))
  np.testing.assert_array_equal(dis.discretize(np.exp(3 * x) - 7, 20), binned)
  # a dimension with three distinct values keeps three bins, whatever the count
  three = dis.discretize(np.repeat([[0.0], [1.0], [5.0]], [10, 20, 30], axis=0), 20)
  assert len(np.unique(three)) == 3


def test_mutual_information_of_a_hand_example():
  # 8 items: the code tells the factor's two halves apart exactly, the factor has 4 classes
  binned = np.array([[0], [0], [0], [0], [1], [1], [1], [1]])
  y = np.array([[0], [1], [0], [1], [2], [3], [2], [3]])
  assert dis.mutual_information(binned, y)[0, 0] == pytest.approx(math.log(2))
  assert dis.entropy(y[:, 0]) == pytest.approx(math.log(4))


def test_mig_modularity_and_dci_are_the_published_formulas_by_hand():
  mi = np.array([[0.9, 0.1], [0.3, 0.6], [0.2, 0.2]])  # (C = 3, F = 2)
  h = np.array([1.0, 0.8])
  # Chen et al. eq. 7: mean over factors of (top − second) / H
  assert dis.mig(mi, h)['mig'] == pytest.approx(((0.9 - 0.3) / 1.0 + (0.6 - 0.2) / 0.8) / 2)
  # Ridgeway & Mozer: 1 − Σ_{f ≠ argmax} m² / (θ² (F − 1)) per dimension, averaged
  per_dim = [1 - 0.1 ** 2 / 0.9 ** 2, 1 - 0.3 ** 2 / 0.6 ** 2, 1 - 0.2 ** 2 / 0.2 ** 2]
  assert dis.modularity(mi)['modularity'] == pytest.approx(np.mean(per_dim))
  assert dis.modularity(mi[:, :1])['modularity'] is None
  # Eastwood & Williams: D_i = 1 − H_F(P_i.), weighted by the dimensions' share of importance;
  # C_f = 1 − H_C(P_.f), averaged over factors
  r = np.array([[0.6, 0.1], [0.3, 0.3], [0.1, 0.6]])
  d = []
  for row in r:
    p = row / row.sum()
    d.append(1 + sum(q * math.log(q) for q in p) / math.log(2))
  weights = r.sum(1) / r.sum()
  c = []
  for col in r.T:
    p = col / col.sum()
    c.append(1 + sum(q * math.log(q) for q in p) / math.log(3))
  out = dis.dci(r)
  assert out['disentanglement'] == pytest.approx(float(np.dot(weights, d)))
  assert out['completeness'] == pytest.approx(float(np.mean(c)))
  assert dis.dci(np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]))['disentanglement'] == pytest.approx(1.0)
  assert dis.dci(r[:, :1])['disentanglement'] is None  # one factor: D is undefined


def test_sap_of_a_hand_example():
  # dimension 0 separates the two classes of factor 0 perfectly, dimension 1 partly those of factor 1
  train = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
  y_train = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
  test = np.array([[0.1, 0.2], [0.2, 0.3], [0.0, 0.6], [0.1, 0.9],
                   [0.9, 0.8], [1.0, 0.7], [0.8, 0.9], [0.9, 0.2]])
  y_test = np.array([[0, 0], [0, 0], [0, 1], [0, 1], [1, 0], [1, 0], [1, 1], [1, 1]])
  # dimension 1 for factor 0: class means 0.5 and 0.5 (a tie: argmin picks class 0) -> recall 1, 0
  scores = dis.sap_scores(train, y_train, test, y_test)
  assert scores[0, 0] == pytest.approx(1.0)
  assert scores[1, 0] == pytest.approx(0.0)  # balanced accuracy 0.5 = chance
  # factor 1 by dimension 1: means 0.0 and 1.0; predicted 0 0 1 1 1 1 1 0 for truths 0 0 1 1 0 0 1 1:
  # recall 2/4 of class 0, 3/4 of class 1, balanced 0.625, chance-corrected (0.625 − 0.5) / 0.5
  assert scores[1, 1] == pytest.approx(0.25)
  assert scores[0, 1] == pytest.approx(0.0)  # dimension 0's class means for factor 1 tie at 0.5
  assert dis.sap(scores)['sap'] == pytest.approx(((1.0 - 0.0) + (0.25 - 0.0)) / 2)


def test_active_units_count_dimensions_whose_mean_varies():
  rng = np.random.default_rng(6)
  means = rng.standard_normal((500, 4)) * np.array([1.0, 0.2, 0.05, 0.0])  # variances 1, .04, .0025, 0
  out = dis.active_units(means)
  assert out['active_units'] == 2
  np.testing.assert_allclose(out['variance'], means.var(0))


def test_factors_are_the_labels_less_products_and_constants():
  rng = np.random.default_rng(7)
  consonant, vowel, position = (rng.integers(0, 3, 200) for _ in range(3))
  labels = {'syllable': 3 * consonant + vowel, 'vowel': vowel, 'consonant': consonant, 'position': position,
            'speaker': np.zeros(200, int), 'take': rng.integers(0, 2, 200)}
  names = {k: ['x'] * 9 for k in labels if k != 'take'}  # 'take' has no class names: not a factor
  factors, left_out = dis.select_factors(labels, names)
  assert factors == ['vowel', 'consonant', 'position']
  assert left_out == {'speaker': 'one class among the items', 'syllable': 'the product of vowel × consonant'}
  assert dis.select_factors(labels, names, ('syllable',))[0] == ['syllable']
  with pytest.raises(ValueError, match='take not among the item labels'):
    dis.select_factors(labels, names, ('take',))
  # a label that is a function of one other only (a coarser grouping) is kept
  kept, _ = dis.select_factors({'vowel': vowel, 'open': (vowel == 0).astype(int)}, {'vowel': [], 'open': []})
  assert kept == ['vowel', 'open']


def test_a_label_some_items_lack_is_left_out_unless_asked_for():
  rng = np.random.default_rng(8)
  vowel, speaker = rng.integers(0, 3, 50), rng.integers(0, 2, 50)
  vowel[:10] = -1  # e.g. a folder corpus's empty cells
  labels, names = {'vowel': vowel, 'speaker': speaker}, {'vowel': ['a', 'i', 'u'], 'speaker': ['p', 'q']}
  factors, left_out = dis.select_factors(labels, names)
  assert factors == ['speaker'] and left_out['vowel'].startswith('no value for 10 of 50 items')
  assert dis.select_factors(labels, names, ('vowel', 'speaker'))[0] == ['vowel', 'speaker']
  rows = dis.labelled_rows(labels, ['vowel', 'speaker'])
  assert rows.sum() == 40 and not rows[:10].any()


def test_figures_are_written(tmp_path, copied):
  _, r = copied
  dis.plot_mutual_information(r['normalized_mi'], ['a', 'b', 'c'], str(tmp_path / 'mi.png'), 'MI')
  dis.plot_posterior(np.array([0.5, 0.001]), np.array([1.0, 0.0]), str(tmp_path / 'kl.png'), 'posterior')
  for name in ('mi.png', 'kl.png'):
    assert (tmp_path / name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  order, owner = dis.dims_by_factor(r['normalized_mi'])
  assert np.all(np.diff(owner) >= 0) and sorted(order) == list(range(5))
  for f in range(3):  # each factor's group starts with its copy (the noise dims follow in some group)
    assert order[np.flatnonzero(owner == f)[0]] == f
