"""Shapes of the real-size model, greedy gradient isolation, InfoNCE invariants, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sim_jax import losses
from sim_jax.config import model_config
from sim_jax.losses import draw_negatives, gaussian_kl, info_nce
from sim_jax.models import (check_audio, draw_randomness, encode, frame_counts, greedy_loss,
                            make_encoder, module_specs)


@pytest.mark.parametrize('kind', ['sim', 'gim'])
@pytest.mark.parametrize('num_samples,frames', [(20480, (1023, 257, 128)), (10240, (511, 129, 64))])
def test_real_size_frames(kind, num_samples, frames):
  cfg = model_config(kind)
  specs = module_specs(cfg)
  encoder = make_encoder(cfg, specs)
  audio = jax.ShapeDtypeStruct((2, num_samples), jnp.float32)
  variables = jax.eval_shape(lambda a: encoder.init(jax.random.PRNGKey(0), a, True), audio)
  outs = jax.eval_shape(lambda v, a: encoder.apply(v, a, False), variables, audio)
  assert [o['mu'].shape for o in outs[:3]] == [(2, f, 512) for f in frames]
  assert outs[3]['c'].shape == (2, frames[2], 256)
  assert variables['params']['module_0']['predictor'].shape == (512, 5120)
  assert variables['params']['module_3']['predictor'].shape == (256, 5120)
  assert frame_counts(specs, num_samples)[:3] == list(frames)


def test_cpc_extra_layers_frames():
  cfg = model_config('cpc')
  cfg.cpc_variant = 'extra_layers'
  cfg.channels, cfg.gru_hidden = 16, 8
  encoder = make_encoder(cfg, module_specs(cfg))
  audio = jnp.zeros((1, 10240))
  variables = jax.jit(lambda a: encoder.init(jax.random.PRNGKey(0), a, True))(audio)
  (out,) = jax.jit(lambda v, a: encoder.apply(v, a, False))(variables, audio)
  assert [layer.shape[1] for layer in out['layers']] == [2047, 511, 511, 256, 129, 129, 64, 64]
  assert out['c'].shape == (1, 64, 8)


def _narrow(kind):
  cfg = model_config(kind)
  cfg.channels, cfg.gru_hidden = 16, 8
  return cfg


@pytest.mark.parametrize('kind', ['sim', 'gim'])
def test_module_loss_has_zero_gradient_on_earlier_modules(kind):
  cfg = _narrow(kind)
  specs = module_specs(cfg)
  encoder = make_encoder(cfg, specs)
  audio = jax.random.normal(jax.random.PRNGKey(1), (3, 4000))
  variables = encoder.init(jax.random.PRNGKey(0), audio, True)
  draws = draw_randomness(jax.random.PRNGKey(2), specs, 3, 4000, num_negatives=10, window=128)
  loss_grad = jax.jit(jax.grad(lambda p, w: greedy_loss(
      p, variables.get('batch_stats', {}), audio, draws, encoder=encoder, model_config=cfg,
      train=(True,) * 4)[1][0]['total'] @ w))
  for i in range(1, len(specs)):
    grads = loss_grad(variables['params'], jnp.asarray([float(j == i) for j in range(len(specs))]))
    for j in range(i):
      leaves = jax.tree_util.tree_leaves(grads[f'module_{j}'])
      assert all(np.all(np.asarray(g) == 0) for g in leaves), (i, j)
    own = jax.tree_util.tree_leaves(grads[f'module_{i}'])
    assert any(np.any(np.asarray(g) != 0) for g in own)


def _loop_info_nce(c, z, predictor, start, neg_perm, steps, window):
  """The original's loop over k, written directly in numpy from reference-semantics §2.1."""
  c, z = np.asarray(c, np.float64), np.asarray(z, np.float64)
  b, length, ch = z.shape
  z_flat = z.reshape(b * length, ch)
  if length > window:
    c, z = c[:, start:start + window], z[:, start:start + window]
  w = z.shape[1]
  negs = z_flat[neg_perm]  # (J, B*L, C)
  total = 0.0
  for k in range(1, steps + 1):
    wk = np.asarray(predictor, np.float64)[:, (k - 1) * ch:k * ch]
    pred = (c[:, :w - k] @ wk).reshape(-1, ch)  # (B*(W-k), C)
    pos = np.sum(pred * z[:, k:].reshape(-1, ch), -1)
    neg = np.einsum('rc,jrc->rj', pred, negs[:, -pred.shape[0]:])
    logits = np.concatenate([pos[:, None], neg], 1)
    lse = np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1)) + logits.max(1)
    total += np.mean(lse - pos)
  return total / steps


@pytest.mark.parametrize('rows_per_chunk', [256, 30])  # all rows at once; 3 chunks of 31 rows
@pytest.mark.parametrize('length', [40, 150])
def test_info_nce_matches_a_direct_loop(length, rows_per_chunk, monkeypatch):
  monkeypatch.setattr(losses, 'ROWS_PER_CHUNK', rows_per_chunk)
  rng = np.random.default_rng(0)
  b, h, ch, steps, window = 3, 6, 5, 4, 32
  c = rng.normal(size=(b, length, h)).astype(np.float32)
  z = rng.normal(size=(b, length, ch)).astype(np.float32)
  predictor = rng.normal(size=(h, steps * ch)).astype(np.float32) * 0.3
  perm = np.stack([rng.permutation(b * length) for _ in range(10)])
  w = min(length, window)
  start = 7 if length > window else 0
  ours, per_step = info_nce(jnp.asarray(c), jnp.asarray(z), jnp.asarray(predictor), start,
                            jnp.asarray(perm[:, b * length - b * (w - 1):]), num_steps=steps,
                            window=window)
  assert per_step.shape == (steps,)
  np.testing.assert_allclose(float(ours), _loop_info_nce(c, z, predictor, start, perm, steps, window),
                             rtol=1e-5)


def test_info_nce_gradients_do_not_depend_on_chunking(monkeypatch):
  rng = np.random.default_rng(1)
  b, length, h, ch, steps, window = 6, 50, 6, 5, 4, 32
  args = [jnp.asarray(rng.normal(size=s).astype(np.float32)) for s in
          ((b, length, h), (b, length, ch), (h, steps * ch))]
  neg = jnp.asarray(np.stack([rng.permutation(b * length)[-b * (window - 1):] for _ in range(10)]))

  def grads():
    return jax.grad(lambda c, z, p: info_nce(c, z, p, 5, neg, num_steps=steps, window=window)[0],
                    argnums=(0, 1, 2))(*args)

  whole = grads()
  monkeypatch.setattr(losses, 'ROWS_PER_CHUNK', 31)  # 6 chunks of one batch row's 31 rows
  for a, c in zip(whole, grads()):
    np.testing.assert_allclose(np.asarray(c), np.asarray(a), rtol=1e-5, atol=1e-6)


def test_info_nce_is_ln11_when_every_logit_ties():
  z = jnp.zeros((2, 20, 4))
  c = jnp.ones((2, 20, 3))
  loss, _ = info_nce(c, z, jnp.ones((3, 40)), 0, jnp.zeros((10, 2 * 19), jnp.int32), num_steps=10)
  np.testing.assert_allclose(float(loss), np.log(11), rtol=1e-6)


def test_kl_reductions_and_zero_at_the_prior():
  mu, logvar = jnp.zeros((2, 7, 3)), jnp.zeros((2, 7, 3))
  assert float(gaussian_kl(mu, logvar)) == 0.0
  mu = jnp.ones((2, 7, 3))
  np.testing.assert_allclose(float(gaussian_kl(mu, logvar, 'sum_time')), 7 * 0.5, rtol=1e-6)
  np.testing.assert_allclose(float(gaussian_kl(mu, logvar, 'mean')), 0.5, rtol=1e-6)
  with pytest.raises(ValueError, match='kl_reduction'):
    gaussian_kl(mu, logvar, 'sum')


def test_negatives_are_distinct_rows_in_range():
  idx = np.asarray(draw_negatives(jax.random.PRNGKey(0), 100, 60, 10))
  assert idx.shape == (10, 60)
  assert idx.min() >= 0 and idx.max() < 100
  assert all(len(set(row)) == 60 for row in idx)


def test_sampled_features_differ_and_mean_features_are_deterministic():
  cfg = _narrow('sim')
  encoder = make_encoder(cfg, module_specs(cfg))
  audio = jax.random.normal(jax.random.PRNGKey(1), (2, 3000))
  variables = encoder.init(jax.random.PRNGKey(0), audio, True)
  run = jax.jit(lambda v, a, k=None: encode(encoder, v, a, sample_key=k))
  a = run(variables, audio)
  b = run(variables, audio)
  s = run(variables, audio, jax.random.PRNGKey(3))
  np.testing.assert_array_equal(a[2]['z'], b[2]['z'])
  np.testing.assert_array_equal(a[0]['z'], a[0]['mu'])
  assert not np.allclose(s[0]['z'], s[0]['mu'])


def test_bad_audio_is_a_clear_error():
  specs = module_specs(model_config('sim'))
  with pytest.raises(ValueError, match='receptive field of 465 samples'):
    check_audio(np.zeros((2, 300)), specs)
  with pytest.raises(ValueError, match=r'\(batch, samples\).*drop the channel axis'):
    check_audio(np.zeros((2, 1, 10240)), specs)
  check_audio(np.zeros((2, 465)), specs)
