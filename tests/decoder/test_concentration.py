"""The notebook's interpolation concentration: a case worked by hand, and the notebook's own loops."""

import jax
import numpy as np
import pytest

from sim_jax.decoder.concentration import interpolation_concentration, notebook_ks
from sim_jax.decoder.nets import make_decoder
from sim_jax.decoder.score import choose_pairs


def _notebook(decode, z, ks):
  """eval_decoder.ipynb cells 3–4 in numpy, one pair at a time: latents as the notebook holds them
  (C, L), its ranking (argsort of the squared difference of time averages, reversed), its
  `interpolate_partial(...)[0]` (the chosen dims set to z_j's) and [-1] (z_i), mean |Δ| distances."""
  z = np.transpose(np.asarray(z), (0, 2, 1))  # (M, C, L)
  dec = lambda x: np.asarray(decode(np.transpose(x, (1, 0))[None]))[0]  # noqa: E731
  total, total_max, n = 0.0, 0.0, len(z)
  for k in ks:
    for i in range(n):
      for j in range(n):
        if i == j:
          continue
        z1, z2 = z[i], z[j]
        dims = np.argsort((z1.mean(axis=1) - z2.mean(axis=1)) ** 2)[::-1][:k]
        partial = z1.copy()
        partial[dims] = z2[dims]
        total += np.abs(dec(partial) - dec(z2)).mean()
        total_max += np.abs(dec(z1) - dec(z2)).mean()
  return total / total_max


def test_notebook_ks_are_its_four_for_512_dimensions_and_the_same_fractions_otherwise():
  assert notebook_ks(512) == [16, 32, 64, 128]
  assert notebook_ks(32) == [1, 2, 4, 8] and notebook_ks(16) == [1, 1, 2, 4]


def test_a_case_worked_by_hand():
  # 32 dimensions (k = 1, 2, 4, 8), one frame, the identity as decoder. z_1 differs from z_0 = 0 in
  # dimension 3 (by 2) and 7 (by 1). Either order: k = 1 swaps dimension 3, leaving |Δ| = 1 in one of
  # 32 samples; k ≥ 2 swaps both, leaving 0. Mean over k: (1/32 + 0 + 0 + 0) / 4 = 1/128; nothing
  # swapped: (2 + 1) / 32. Figure: (1/128) / (3/32) = 1/12.
  z = np.zeros((2, 1, 32), np.float32)
  z[1, 0, 3], z[1, 0, 7] = 2.0, 1.0
  pairs = np.array([[0, 1], [1, 0]], np.int32)
  r = interpolation_concentration(lambda v, x: x.reshape(x.shape[0], -1), {}, z, pairs, batch_size=4)
  assert r['k'] == [1, 2, 4, 8] and r['num_pairs'] == 2 and r['num_items'] == 2
  np.testing.assert_allclose(r['distance_per_k'], [1 / 32, 0, 0, 0], atol=1e-7)
  assert r['max_distance'] == pytest.approx(3 / 32) and r['distance'] == pytest.approx(1 / 128)
  assert r['concentration'] == pytest.approx(1 / 12)


def test_batched_figure_equals_the_notebook_loops_on_a_module_2_decoder():
  width, frames, items = 32, 64, 3
  decoder = make_decoder(2, width)
  z = np.array(jax.random.normal(jax.random.PRNGKey(0), (items, frames, width)))
  z[:, :, :4] += 3.0 * np.arange(items)[:, None, None]  # a few dimensions tell the items apart most
  params = decoder.init(jax.random.PRNGKey(1), z[:1])
  decode = jax.jit(decoder.apply)
  _, pairs = choose_pairs(items, 200, 0, seed=0)  # all 6 ordered pairs: batches of 4 and a ragged 2
  r = interpolation_concentration(decode, params, z, pairs, batch_size=4)
  expected = _notebook(lambda x: decode(params, x), z, notebook_ks(width))
  assert r['num_pairs'] == 6
  assert r['concentration'] == pytest.approx(expected, rel=1e-4)
  assert 0 < r['concentration'] < 1
