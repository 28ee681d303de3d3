"""The linear probe: initialisers, masking, clipping, batching of items and frames, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sim_jax.probe.linear import (ProbeData, ProbeSpec, batch_of, eval_step, feature_norm,
                                  identity_norm, init_probe, make_optimizer, make_train_step, predict,
                                  probe_logits, train_epoch)


def test_init_bias_and_scales():
  torch = init_probe(jax.random.PRNGKey(0), ProbeSpec(256, 41, bias=True))
  assert torch['kernel'].shape == (256, 41) and torch['bias'].shape == (41,)
  assert float(jnp.max(jnp.abs(torch['kernel']))) <= 256 ** -0.5
  xavier = init_probe(jax.random.PRNGKey(0), ProbeSpec(256, 41, init='xavier_normal'))
  assert float(jnp.std(xavier['kernel'])) == pytest.approx(np.sqrt(2 / (256 + 41)), rel=0.05)
  nobias = init_probe(jax.random.PRNGKey(0), ProbeSpec(8, 3, bias=False))
  assert set(nobias) == {'kernel'}
  x = jnp.ones((2, 5, 8))
  assert probe_logits(nobias, identity_norm(8), x).shape == (2, 5, 3)
  with pytest.raises(ValueError, match='init'):
    init_probe(jax.random.PRNGKey(0), ProbeSpec(8, 3, init='he'))


def test_padding_changes_nothing():
  """A batch padded with masked rows gives the same update as the unpadded batch."""
  key = jax.random.PRNGKey(1)
  params = init_probe(key, ProbeSpec(6, 4))
  x = jax.random.normal(key, (3, 6))
  y = jnp.array([0, 2, 3])
  tx = make_optimizer(1e-2)
  step = make_train_step(tx)
  copy = lambda t: jax.tree_util.tree_map(jnp.array, t)  # noqa: E731 (the step donates its inputs)
  norm = identity_norm(6)
  p1, _, m1 = step(copy(params), tx.init(params), norm, x, y, jnp.ones(3))
  xp = jnp.concatenate([x, 100 * jnp.ones((2, 6))])
  yp = jnp.concatenate([y, jnp.array([1, 1])])
  p2, _, m2 = step(copy(params), tx.init(params), norm, xp, yp, jnp.array([1., 1., 1., 0., 0.]))
  np.testing.assert_allclose(p1['kernel'], p2['kernel'], rtol=1e-6)
  np.testing.assert_allclose(p1['bias'], p2['bias'], rtol=1e-6)
  assert float(m1['count']) == float(m2['count']) == 3
  np.testing.assert_allclose(m1['loss'], m2['loss'], rtol=1e-6)


def test_gradient_clipping_bounds_the_first_step():
  """Adam's first step is ±lr per weight whatever the gradient; clipping must act before Adam."""
  params = {'kernel': jnp.zeros((2, 2)), 'bias': jnp.zeros(2)}
  tx = make_optimizer(0.1, gradient_clipping=1e-9)
  grads = {'kernel': jnp.full((2, 2), 5.0), 'bias': jnp.zeros(2)}
  updates, _ = tx.update(grads, tx.init(params), params)
  assert float(jnp.max(jnp.abs(updates['kernel']))) < 0.1  # clipped to ~1e-9: Adam's eps dominates


def test_batches_of_frames_are_padded_and_masked():
  x = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # (F=10, D=3)
  labels = np.array([-1, 1, 2, 0, 0, 1, -1, 2, 2, 2], np.int32)
  data = ProbeData(x, labels, np.array([0, 3, 3, 10]))  # items of 3, 0 and 7 frames
  assert data.num_items == 3
  np.testing.assert_array_equal(data.trainable_items(), [0, 2])
  xb, yb, mask = batch_of(data, np.array([2, 0]), 4)
  assert xb.shape == (4, 64, 3) and yb.shape == mask.shape == (4, 64)
  np.testing.assert_array_equal(xb[0, :7, 0], np.arange(3, 10))
  np.testing.assert_array_equal(mask[0, :8], [1, 1, 1, 0, 1, 1, 1, 0])
  np.testing.assert_array_equal(mask[1, :4], [0, 1, 1, 0])
  assert mask[2:].sum() == 0 and mask.sum() == 8
  pooled = ProbeData.pooled(x[:4], np.array([0, 1, 2, 1]))
  xb, yb, mask = batch_of(pooled, np.array([3, 1]), 3)
  assert xb.shape == (3, 1, 3) and mask[:, 0].tolist() == [1, 1, 0]


def test_feature_norm_uses_labelled_rows_in_chunks():
  rng = np.random.default_rng(0)
  x = rng.normal(3.0, 2.0, size=(1000, 4)).astype(np.float32)
  x[:, 3] = 7.0  # constant: std 1, not 0
  labels = np.where(np.arange(1000) % 10 == 0, -1, 1).astype(np.int32)
  x[labels < 0] = 1e6  # unlabelled rows are ignored
  norm = feature_norm(ProbeData(x, labels, np.array([0, 1000])), chunk=64)
  kept = x[labels >= 0]
  np.testing.assert_allclose(norm.mean, kept.mean(0), rtol=1e-5)
  np.testing.assert_allclose(norm.std[:3], kept[:, :3].std(0), rtol=1e-4)
  assert norm.std[3] == 1.0


def test_probe_learns_separable_classes_and_predict_sees_every_item():
  """Classes that differ by 1e-4 around an offset of 0.1 (a barely trained encoder): learnable only
  with standardisation."""
  rng = np.random.default_rng(0)
  centres = rng.normal(size=(3, 5)) * 3
  labels = rng.integers(0, 3, 203).astype(np.int32)
  x = (0.1 + 1e-4 * (centres[labels] + rng.normal(size=(203, 5)))).astype(np.float32)
  data = ProbeData.pooled(x, labels)
  norm = feature_norm(data)
  params = init_probe(jax.random.PRNGKey(0), ProbeSpec(5, 3))
  tx = make_optimizer(5e-2)
  opt_state = tx.init(params)
  step = make_train_step(tx)
  losses = []
  for epoch in range(15):
    params, opt_state, m = train_epoch(step, params, opt_state, norm, data, data.trainable_items(),
                                       32, [0, epoch])
    losses.append(m['loss'])
  assert losses[-1] < 0.5 * losses[0]
  loss, targets, preds = predict(params, norm, data, 64)  # 203 items: the last batch is padded
  assert len(targets) == 203
  np.testing.assert_array_equal(targets, labels)
  assert np.mean(targets == preds) > 0.9
  total, _ = eval_step(params, norm, x[None], labels[None], np.ones((1, 203), np.float32))
  assert loss == pytest.approx(float(total) / 203, rel=1e-5)


def test_drop_last_trains_whole_batches_of_the_epoch_order_only():
  """The original's loaders drop the last partial batch (drop_last=True): of 10 items in batches of
  4, the last 2 of the epoch's permutation sit the epoch out; a set under one batch still trains."""
  data = ProbeData.pooled(np.arange(10, dtype=np.float32)[:, None], np.zeros(10, np.int32))
  seen = []

  def step(params, opt_state, norm, x, labels, mask):
    seen.append(sorted(x[mask > 0, 0].astype(int).tolist()))
    return params, opt_state, {'loss': 0.0, 'correct': float(mask.sum()), 'count': float(mask.sum())}

  params = init_probe(jax.random.PRNGKey(0), ProbeSpec(1, 2))
  order = np.random.default_rng([3, 1]).permutation(np.arange(10))
  for drop_last, batches in ((False, 3), (True, 2)):
    seen.clear()
    train_epoch(step, params, None, identity_norm(1), data, np.arange(10), 4, [3, 1], drop_last)
    assert len(seen) == batches
    assert sorted(sum(seen, [])) == sorted(order[:4 * batches].tolist())
  seen.clear()
  train_epoch(step, params, None, identity_norm(1), data, np.arange(3), 4, None, True)
  assert seen == [[0, 1, 2]]
