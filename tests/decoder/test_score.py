"""The batched contribution score against a direct, one-pair-at-a-time computation."""

import jax
import numpy as np
import pytest

from sim_jax.decoder.nets import make_decoder
from sim_jax.decoder.score import choose_pairs, contribution_score, map_batches, score_ks


def _direct_score(decode, z, pairs, ks):
  """The original's loops: every pair and k decoded alone, numpy ranking."""
  z = np.asarray(z)
  max_err, errs = 0.0, np.zeros(len(ks))
  for a, b in pairs:
    target = np.asarray(decode(z[b][None]))[0]
    max_err += np.mean((np.asarray(decode(z[a][None]))[0] - target) ** 2)
    diff = (z[a].mean(axis=0) - z[b].mean(axis=0)) ** 2
    order = np.argsort(diff)[::-1]
    for n, k in enumerate(ks):
      swapped = z[a].copy()
      swapped[:, order[:k]] = z[b][:, order[:k]]
      errs[n] += np.mean((np.asarray(decode(swapped[None]))[0] - target) ** 2)
  return max_err / len(pairs), errs / len(pairs)


def test_score_ks():
  assert score_ks(512) == [2, 4, 8, 16, 32, 64, 128, 256, 512]
  assert score_ks(48) == [2, 4, 8, 16, 32, 48]


def test_map_batches_pads_the_last_batch():
  seen = []
  out = map_batches(lambda x: seen.append(x.shape) or x * 2, np.arange(10.0)[:, None], 4)
  np.testing.assert_array_equal(out[:, 0], np.arange(10.0) * 2)
  assert seen == [(4, 1)] * 3


def test_choose_pairs_uses_all_items_of_a_small_set():
  items, pairs = choose_pairs(5, 200, 0, seed=0)
  assert list(items) == [0, 1, 2, 3, 4] and len(pairs) == 20
  assert np.all(pairs[:, 0] != pairs[:, 1]) and len({tuple(p) for p in pairs}) == 20
  items, pairs = choose_pairs(300, 10, 7, seed=0)
  assert len(items) == 10 and len(set(items)) == 10 and pairs.shape == (7, 2)
  with pytest.raises(ValueError, match='at least 2'):
    choose_pairs(1, 200, 0, seed=0)


def test_batched_score_matches_direct_computation():
  width, frames = 8, 64
  decoder = make_decoder(2, width)
  z = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (5, frames, width)))
  params = decoder.init(jax.random.PRNGKey(1), z[:1])
  decode = jax.jit(decoder.apply)
  direct = lambda latents: decode(params, latents)  # noqa: E731  (one item at a time)
  _, pairs = choose_pairs(5, 200, 0, seed=0)
  pairs = pairs[:13]  # a ragged last batch
  ks = score_ks(width)
  result = contribution_score(decode, params, z, pairs, ks, batch_size=4)
  max_err, absolute = _direct_score(direct, z, pairs, ks)
  np.testing.assert_allclose(result['max_error'], max_err, rtol=1e-4)
  np.testing.assert_allclose(result['absolute'], absolute, rtol=1e-4, atol=1e-6 * max_err)
  np.testing.assert_allclose(result['relative'], absolute / max_err, rtol=1e-4, atol=1e-6)
  assert result['relative'][-1] < 1e-6  # all dimensions swapped: z' = z_j
  assert result['num_pairs'] == 13 and result['k'] == ks


def test_decoder_defaults_and_scored_items_are_the_originals():
  """The original's decoder loaders read batch_size_multiGPU = 64 on every corpus (its README's
  LibriSpeech batch 8 never reaches them); its test loader (shuffle off, drop_last) yields the first
  floor(N/64)·64 test items — 128 of de Boer's 171 — from which the score draws 200 (all, if fewer)."""
  from sim_jax.config import decoder_config
  from sim_jax.decoder.run import loader_item_count
  for corpus in ('deboer', 'librispeech'):
    cfg = decoder_config(corpus)
    assert (cfg.batch_size, cfg.test_loader_batch, cfg.score_items, cfg.score_pairs) == (64, 64, 200, 0)
    assert cfg.notebook_concentration
  assert loader_item_count(171, 64) == 128 and loader_item_count(5707, 64) == 5696
  assert loader_item_count(40, 64) == 40 and loader_item_count(171, 0) == 171  # under one batch; every item
  items, pairs = choose_pairs(loader_item_count(171, 64), 200, 0, seed=0)
  assert list(items) == list(range(128)) and len(pairs) == 128 * 127  # the notebook's 16,256 pairs
