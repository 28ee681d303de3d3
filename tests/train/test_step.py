"""The train step is Adam, one optimizer per module, on the gradient of the greedy objective.

The step takes each module's gradient of its own loss; the truth here is computed the other way:
the gradient of the summed objective (`greedy_loss`) of the whole stack, then optax's Adam per module.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from sim_jax.config import model_config, train_config
from sim_jax.models import draw_randomness, greedy_loss
from sim_jax.parallel import make_mesh
from sim_jax.state import create_train_state
from sim_jax.train.step import active_modules, make_train_step

BATCH, SAMPLES = 4, 3000


def _config(kind: str, batch_norm: bool) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(dict(model=model_config(kind), train=train_config('deboer')))
  config.model.channels, config.model.gru_hidden, config.model.use_batch_norm = 16, 8, batch_norm
  config.train.learning_rate = 1e-3
  return config


def _expected(config, encoder, state, audio, key, active):
  """Adam on the gradient of the summed objective, for the active modules only."""
  n = max(active) + 1
  draws = draw_randomness(key, encoder.specs, BATCH, SAMPLES, num_negatives=config.model.num_negatives,
                          window=config.model.window, num_modules=n)
  train = tuple(i in active for i in range(n))
  params = {f'module_{i}': state.params[f'module_{i}'] for i in range(n)}
  (_, (metrics, stats, _)), grads = jax.jit(jax.value_and_grad(
      lambda p: greedy_loss(p, state.batch_stats, audio, draws, encoder=encoder, model_config=config.model,
                            train=train), has_aux=True))(params)
  tx = optax.adam(config.train.learning_rate)
  new_params = dict(state.params)
  for i in active:
    name = f'module_{i}'
    updates, _ = tx.update(grads[name], state.opt_state[name], state.params[name])
    new_params[name] = optax.apply_updates(state.params[name], updates)
  return metrics, new_params, stats


def _close(a, b, lr=None):
  """Equal to float32 round-off. With BatchNorm (`lr` given), a conv bias feeding it has a gradient
  that is round-off only, which Adam turns into a step of up to ±lr: those may differ by 2 lr."""

  def check(path, x, y):
    names = [getattr(p, 'key', '') for p in path]
    if lr is not None and names[-1] == 'bias' and any(str(n).startswith('conv_') for n in names):
      assert np.max(np.abs(np.asarray(x) - np.asarray(y))) <= 2.01 * lr, names
    else:
      np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6, err_msg=str(names))

  jax.tree_util.tree_map_with_path(check, a, b)


@pytest.mark.slow(minutes=1)
@pytest.mark.parametrize('kind,batch_norm', [('sim', True), ('gim', False)])
def test_step_is_adam_on_the_gradient_of_the_summed_objective(kind, batch_norm):
  config = _config(kind, batch_norm)
  encoder, state = create_train_state(config, jax.random.PRNGKey(0))
  audio = jax.random.normal(jax.random.PRNGKey(1), (BATCH, SAMPLES)) * 0.1
  key = jax.random.PRNGKey(2)
  metrics, params, stats = _expected(config, encoder, state, audio, key, (0, 1, 2, 3))
  step = make_train_step(config, encoder, make_mesh(), (0, 1, 2, 3))
  new_state, got = step(jax.tree_util.tree_map(jnp.copy, state), {'audio': audio}, key)
  _close(got, metrics)
  _close(new_state.params, params, config.train.learning_rate if batch_norm else None)
  _close(new_state.batch_stats, stats)
  assert int(new_state.step) == 1
  if batch_norm:  # the running statistics moved
    assert not np.allclose(new_state.batch_stats['module_0']['encoder']['bn_0']['mean'],
                           state.batch_stats['module_0']['encoder']['bn_0']['mean'])


@pytest.mark.slow(minutes=1)
def test_layerwise_step_trains_one_module_and_leaves_the_others_exactly():
  config = _config('sim', True)
  config.train.layerwise = True
  config.train.num_epochs = 8
  assert [active_modules(config, e) for e in range(8)] == [(0,), (0,), (1,), (1,), (2,), (2,), (3,), (3,)]
  encoder, state = create_train_state(config, jax.random.PRNGKey(0))
  audio = jax.random.normal(jax.random.PRNGKey(1), (BATCH, SAMPLES)) * 0.1
  key = jax.random.PRNGKey(2)
  metrics, params, _ = _expected(config, encoder, state, audio, key, (1,))
  step = make_train_step(config, encoder, make_mesh(), (1,))
  new_state, got = step(jax.tree_util.tree_map(jnp.copy, state), {'audio': audio}, key)
  assert got['total'].shape == (2,)  # modules after the active one are not run
  _close(got, metrics)
  _close(new_state.params['module_1'], params['module_1'], config.train.learning_rate)
  for name in ('module_0', 'module_2', 'module_3'):  # bit-identical: parameters, Adam state, BatchNorm
    for tree in ('params', 'opt_state', 'batch_stats'):
      before, after = getattr(state, tree).get(name, {}), getattr(new_state, tree).get(name, {})
      jax.tree_util.tree_map(np.testing.assert_array_equal, after, before)
  assert not np.allclose(new_state.batch_stats['module_1']['encoder']['bn_0']['mean'],
                         state.batch_stats['module_1']['encoder']['bn_0']['mean'])
