"""The two formulations of the step (config.model.implementation 'cpu' | 'plain') and the precision
policy (config.model.matmul_precision, config.model.compute_dtype).

Both paths run here on the CPU so that neither can rot: they must give the same draws exactly, the
same losses and gradients to float32 round-off, and the same parameters after a few Adam steps.
(Both also reproduce the original's recorded outputs: tests/models/test_reference_parity.py.)
"""

import functools
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sim_jax import io
from sim_jax.config import analysis_config, base_config, model_config, train_config
from sim_jax.models import draw_randomness, greedy_loss, make_encoder, module_specs
from sim_jax.models.encoder import resolve_implementation
from sim_jax.models.layers import BatchNorm1d
from sim_jax.parallel import make_mesh
from sim_jax.state import create_train_state
from sim_jax.train.step import make_train_step
from sim_jax.workdir import load_config

BATCH, SAMPLES = 4, 3000


def _config(kind='sim', implementation='cpu', batch_norm=False, dtype='float32'):
  config = ml_collections.ConfigDict(dict(model=model_config(kind), train=train_config('deboer')))
  config.model.update(dict(channels=16, gru_hidden=8, use_batch_norm=batch_norm,
                           implementation=implementation, compute_dtype=dtype))
  config.train.learning_rate = 1e-3
  return config


def _audio(seed=0):
  return jnp.asarray(np.random.default_rng(seed).normal(size=(BATCH, SAMPLES)) * 0.1, jnp.float32)


def _draws(config, key):
  specs = module_specs(config.model)
  return draw_randomness(key, specs, BATCH, SAMPLES, num_negatives=config.model.num_negatives,
                         window=config.model.window)


def test_auto_is_the_cpu_path_on_the_cpu_backend():
  assert jax.default_backend() == 'cpu'
  assert resolve_implementation(_config(implementation='auto').model) == 'cpu'
  assert {s.implementation for s in module_specs(_config(implementation='plain').model)} == {'plain'}


def test_both_paths_draw_the_same_numbers():
  """Row-at-a-time (cpu) and whole-batch (plain) Gaussian draws: same key, identical arrays."""
  key = jax.random.PRNGKey(3)
  cpu, plain = _draws(_config(), key), _draws(_config(implementation='plain'), key)
  for a, b in zip(cpu, plain):
    assert a.keys() == b.keys()
    for name in a:
      np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  assert cpu[0]['eps_c'].shape == (BATCH, 149, 16) and float(jnp.std(cpu[0]['eps_c'])) == pytest.approx(1, abs=0.02)


def test_both_paths_give_the_same_losses_and_gradients():
  """patch_conv + chunked InfoNCE against lax.conv + unchunked InfoNCE, on the same draws (SIM with
  BatchNorm; GIM and CPC: both paths against the reference files, tests/models)."""
  results = []
  for implementation in ('cpu', 'plain'):
    config = _config('sim', implementation, batch_norm=True)
    encoder, state = create_train_state(config, jax.random.PRNGKey(0))
    draws = _draws(config, jax.random.PRNGKey(1))
    loss = functools.partial(greedy_loss, batch_stats=state.batch_stats, audio=_audio(), draws=draws,
                             encoder=encoder, model_config=config.model, train=(True,) * len(encoder.specs))
    fn = jax.jit(jax.value_and_grad(loss, has_aux=True))
    (_, (metrics, stats, _)), grads = fn(state.params)
    results.append((metrics, stats, grads))
  (m_cpu, s_cpu, g_cpu), (m_plain, s_plain, g_plain) = results
  for name in ('nce', 'kld', 'total'):
    np.testing.assert_allclose(m_cpu[name], m_plain[name], rtol=1e-5, atol=1e-6, err_msg=name)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), s_cpu, s_plain)

  def check(path, a, b):  # relative to the array's scale (a bias before BatchNorm is round-off only)
    error = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
    assert error <= 1e-5 * float(np.max(np.abs(b))) + 1e-6, jax.tree_util.keystr(path)

  jax.tree_util.tree_map_with_path(check, g_cpu, g_plain)


@functools.lru_cache(maxsize=None)
def _train(implementation: str, dtype: str, steps: int = 2):
  """Two Adam steps of a narrow SIM (shared by the tests below: each compile costs)."""
  config = _config(implementation=implementation, dtype=dtype)
  mesh = make_mesh()
  encoder, state = create_train_state(config, jax.random.PRNGKey(0))
  step = make_train_step(config, encoder, mesh, tuple(range(len(encoder.specs))))
  losses = []
  for i in range(steps):
    state, metrics = step(state, {'audio': _audio(i)}, jax.random.PRNGKey(10 + i))
    losses.append(np.asarray(metrics['total']))
  return state, np.stack(losses)


def test_both_paths_train_alike():
  """Two Adam steps of SIM: the same losses and parameters either way."""
  cpu_state, cpu_losses = _train('cpu', 'float32')
  plain_state, plain_losses = _train('plain', 'float32')
  np.testing.assert_allclose(cpu_losses, plain_losses, rtol=1e-5)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                         cpu_state.params, plain_state.params)


def test_bfloat16_keeps_state_float32_and_losses_close():
  """compute_dtype=bfloat16: parameters and Adam moments stay float32, and so do the losses, which
  are those of float32 to bf16's ~3 significant digits."""
  f32_state, f32_losses = _train('cpu', 'float32')
  bf16_state, bf16_losses = _train('cpu', 'bfloat16')
  for tree in (bf16_state.params, bf16_state.opt_state):
    dtypes = {x.dtype for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)}
    assert dtypes == {jnp.dtype(jnp.float32)}
  assert bf16_losses.dtype == np.float32 and np.all(np.isfinite(bf16_losses))
  np.testing.assert_allclose(bf16_losses, f32_losses, rtol=3e-2)
  assert not np.array_equal(bf16_losses, f32_losses)  # it did compute in bf16


def test_batch_norm_keeps_float32_statistics_on_bfloat16_input():
  """BatchNorm on bf16 activations: statistics accumulated in float32 (those of the same values held
  in float32, not bf16-rounded means), float32 running statistics, a bf16 output."""
  x = jnp.asarray(np.random.default_rng(0).normal(3.0, 2.0, size=(4, 50, 8)), jnp.bfloat16)
  layer = BatchNorm1d()
  variables = layer.init(jax.random.PRNGKey(0), x, True)
  y32, s32 = layer.apply(variables, x.astype(jnp.float32), True, mutable=['batch_stats'])
  y16, s16 = layer.apply(variables, x, True, mutable=['batch_stats'])
  assert y16.dtype == jnp.bfloat16
  assert {v.dtype for v in jax.tree_util.tree_leaves(s16)} == {jnp.dtype(jnp.float32)}
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), s16, s32)
  np.testing.assert_allclose(np.asarray(y16, np.float32), y32, atol=0.02)


def test_matmul_precision_reaches_every_dot_of_the_step():
  """The step is traced under the policy: every dot and conv, backward pass included, carries it."""
  config = _config(kind='gim', implementation='plain')
  encoder, state = create_train_state(config, jax.random.PRNGKey(0))
  step = make_train_step(config, encoder, make_mesh(), (0, 1, 2, 3))
  text = step.lower(state, {'audio': _audio()}, jax.random.PRNGKey(0)).as_text()
  ops = re.findall(r'stablehlo\.(?:dot_general|convolution)[^\n]*', text)
  assert len(ops) > 20
  assert all('HIGHEST' in op for op in ops), [op for op in ops if 'HIGHEST' not in op][:2]


@pytest.mark.parametrize('key,value', [('implementation', 'gpu'), ('compute_dtype', 'float16'),
                                       ('matmul_precision', 'fast')])
def test_bad_policy_values_are_one_line_errors(key, value):
  config = _config()
  config.model[key] = value
  with pytest.raises(ValueError, match=f'config.model.{key}={value!r}'):
    make_encoder(config.model, module_specs(config.model))


def test_a_config_from_before_the_policy_keys_means_the_defaults(tmp_path):
  """A workdir's config.json written before these keys existed still loads (probe, decode, resume)."""
  old = base_config('deboer', 'sim').to_dict()
  old['model']['channels'] = 16
  for key in ('implementation', 'compute_dtype', 'matmul_precision'):
    del old['model'][key]
  del old['analysis']
  io.write_json(str(tmp_path / 'config.json'), old)
  loaded = load_config(str(tmp_path))
  encoder = make_encoder(loaded.model, module_specs(loaded.model))
  assert encoder.matmul_precision == 'highest' and loaded.model.compute_dtype == 'float32'
  assert {s.implementation for s in encoder.specs} == {'cpu'} and loaded.model.channels == 16
  assert loaded.analysis.to_dict() == analysis_config().to_dict()
