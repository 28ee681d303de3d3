"""The jitted, data-parallel greedy train / eval steps over the train state (`sim_jax.state`).

One `jax.jit` step over a 1-axis device mesh ('data', `sim_jax.parallel`): the batch is sharded along
it, parameters and optimizer states are replicated; the same code runs on 1 CPU, N GPUs and
multi-host TPU/GPU.
"""

import ctypes
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from sim_jax.models import Encoder, chain_modules, draw_randomness, greedy_loss, module_loss, module_specs
from sim_jax.parallel import batch_sharding, replicated
from sim_jax.state import TrainState, make_optimizer


def active_modules(config, epoch: int) -> tuple[int, ...]:
  """Modules trained in `epoch`: all of them, or in layer-wise mode one at a time, in order, each
  for an equal share of the epochs."""
  n = len(module_specs(config.model))
  if not config.train.layerwise:
    return tuple(range(n))
  return (min(epoch * n // config.train.num_epochs, n - 1),)


def _with_matmul_precision(encoder: Encoder) -> Callable:
  """Decorator: trace the step under `encoder.matmul_precision` (config.model.matmul_precision), so
  that every matmul and conv of it, backward pass included, gets that precision on GPU/TPU too."""

  def wrap(fn):
    @functools.wraps(fn)
    def traced(*args):
      with jax.default_matmul_precision(encoder.matmul_precision):
        return fn(*args)
    return traced

  return wrap


def make_train_step(config, encoder: Encoder, mesh: Mesh, active: tuple[int, ...]):
  """The jitted step (state, batch, key) -> (state, metrics) training the `active` modules.

  Modules after the last active one are not run; earlier, inactive ones run in eval mode (their
  BatchNorm statistics stay put) and keep their parameters and optimizer state exactly.
  metrics: {'nce', 'kld', 'total'} each (num_modules_run,).
  """
  tx = make_optimizer(config.train)
  n = max(active) + 1
  model_cfg = config.model

  @_with_matmul_precision(encoder)
  def step(state: TrainState, batch, key):
    audio = batch['audio']  # (B, T)
    draws = draw_randomness(key, encoder.specs, audio.shape[0], audio.shape[1],
                            num_negatives=model_cfg.num_negatives, window=model_cfg.window,
                            num_modules=n)

    def run_module(i, x):  # module i: its own loss, gradient and Adam step
      name = f'module_{i}'
      loss_fn = functools.partial(module_loss, batch_stats=state.batch_stats.get(name, {}), x=x,
                                  draw=draws[i], spec=encoder.specs[i], model_config=model_cfg,
                                  train=i in active)
      if i not in active:  # earlier module in layer-wise mode: forward only, BatchNorm in eval mode
        _, (m, _, out) = loss_fn(state.params[name])
        return m, out, (state.params[name], state.opt_state[name], {})  # {}: statistics unchanged
      (_, (m, stats, out)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params[name])
      updates, opt_state = tx.update(grads, state.opt_state[name], state.params[name])
      return m, out, (optax.apply_updates(state.params[name], updates), opt_state, stats)

    metrics, _, updated = chain_modules(audio, n, run_module)
    params, opt_state = dict(state.params), dict(state.opt_state)
    batch_stats = dict(state.batch_stats)
    for i, (p, o, stats) in enumerate(updated):
      params[f'module_{i}'], opt_state[f'module_{i}'] = p, o
      if stats:
        batch_stats[f'module_{i}'] = stats
    new_state = state.replace(step=state.step + 1, params=params, batch_stats=batch_stats,
                              opt_state=opt_state)
    return new_state, metrics

  return jax.jit(step, in_shardings=(replicated(mesh), batch_sharding(mesh), replicated(mesh)),
                 out_shardings=(replicated(mesh), replicated(mesh)), donate_argnums=(0,))


def make_eval_step(config, encoder: Encoder, mesh: Mesh):
  """The jitted validation step (params, batch_stats, batch, key) -> metrics: the same objective with
  BatchNorm in eval mode and no gradients (the original validates in train mode — a bug)."""
  model_cfg = config.model
  n = len(encoder.specs)

  @_with_matmul_precision(encoder)
  def step(params, batch_stats, batch, key):
    audio = batch['audio']
    draws = draw_randomness(key, encoder.specs, audio.shape[0], audio.shape[1],
                            num_negatives=model_cfg.num_negatives, window=model_cfg.window)
    _, (metrics, _, _) = greedy_loss(params, batch_stats, audio, draws, encoder=encoder,
                                     model_config=model_cfg, train=(False,) * n)
    return metrics

  return jax.jit(step, in_shardings=(replicated(mesh), replicated(mesh), batch_sharding(mesh),
                                     replicated(mesh)), out_shardings=replicated(mesh))


def compile_on_first_call(step) -> Callable:
  """`step` (a jitted function), compiled ahead of time for the arguments of its first call and
  then run as that executable (later calls must have the same shapes and shardings).

  Between compiling and the first run, the memory XLA's compiler freed (~0.25 GB that glibc keeps
  in the process) is handed back to the OS, so the run's peak memory does not stack the step's
  temporaries on top of it.
  """
  compiled = None

  def call(*args):
    nonlocal compiled
    if compiled is None:
      compiled = step.lower(*args).compile()
      _release_freed_memory()
    return compiled(*args)

  return call


def _release_freed_memory() -> None:
  """glibc's malloc_trim(0): return the free pages of every heap to the OS (no-op elsewhere)."""
  try:
    ctypes.CDLL('libc.so.6').malloc_trim(0)
  except (OSError, AttributeError):
    pass


@functools.partial(jax.jit, donate_argnums=(0,))
def accumulate(acc: dict, metrics: dict, step) -> dict:
  """Device-side running sums of the step metrics and, per module, the first non-finite step."""
  total = metrics['total']
  bad = ~jnp.isfinite(total) & (acc['first_bad_step'] < 0)
  return {'sum': jax.tree_util.tree_map(jnp.add, acc['sum'], metrics),
          'count': acc['count'] + 1,
          'first_bad_step': jnp.where(bad, step, acc['first_bad_step'])}


def empty_accumulator(num_modules: int) -> dict:
  """A zeroed accumulator for `accumulate`."""
  zeros = lambda: jnp.zeros((num_modules,), jnp.float32)  # noqa: E731 (distinct buffers: donated)
  return {'sum': {'nce': zeros(), 'kld': zeros(), 'total': zeros()},
          'count': jnp.zeros((), jnp.int32),
          'first_bad_step': -jnp.ones((num_modules,), jnp.int32)}
