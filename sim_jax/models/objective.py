"""The greedy objective over the whole stack, and eval-mode feature extraction.

`draw_randomness` makes every random draw a training step needs (kept apart from the arithmetic so
recorded draws can be fed in); `greedy_loss` returns the sum of the per-module losses — each module
sees only its own term, because gradients stop between modules — with the per-module terms.
"""

from typing import Sequence

import jax
import jax.numpy as jnp

from sim_jax.losses import draw_negatives, draw_window_start, gaussian_kl, info_nce
from sim_jax.models.encoder import Encoder, ModuleSpec, frame_counts


def make_encoder(model_config, specs: Sequence[ModuleSpec]) -> Encoder:
  """The Flax encoder for `config.model` and its module specs."""
  return Encoder(tuple(specs), num_steps=model_config.prediction_steps)


def draw_randomness(key, specs: Sequence[ModuleSpec], batch: int, num_samples: int, *,
                    num_negatives: int, window: int, num_modules: int | None = None) -> list[dict]:
  """All random draws of one training step, per module.

  Each module's dict holds 'window_start' (int scalar), 'neg_idx' (J, B*(W-1)) and, for Gaussian
  modules, 'eps_c' and 'eps_z' (B, L, C) standard-normal draws for the two samples.
  """
  n = len(specs) if num_modules is None else num_modules
  frames = frame_counts(specs, num_samples)
  draws = []
  for i, spec in enumerate(specs[:n]):
    k_c, k_z, k_win, k_neg = jax.random.split(jax.random.fold_in(key, i), 4)
    length = frames[i]
    used = batch * (min(length, window) - 1)
    d = {'window_start': draw_window_start(k_win, length, window),
         'neg_idx': draw_negatives(k_neg, batch * length, used, num_negatives)}
    if spec.gaussian:
      shape = (batch, length, spec.channels)
      d['eps_c'] = jax.random.normal(k_c, shape)
      d['eps_z'] = jax.random.normal(k_z, shape)
    draws.append(d)
  return draws


def greedy_loss(params, batch_stats, audio, draws, *, encoder: Encoder, model_config,
                train: Sequence[bool], loss_weights: Sequence[float]):
  """Sum of the per-module losses of the stack (one value_and_grad trains every module greedily).

  Args:
    params, batch_stats: the encoder's variables ('module_<i>' trees; batch_stats may be {}).
    audio: (B, T) waveforms. draws: from `draw_randomness` (or recorded ones).
    train: per module, whether BatchNorm uses batch statistics (and updates its running ones).
    loss_weights: per module, 1.0 to train it, 0.0 to leave it out of the objective.
  Returns:
    (objective, (metrics, new_batch_stats, outputs)), metrics = {'nce', 'kld', 'total'} each (n,).
  """
  n = len(draws)
  eps = [(d['eps_c'], d['eps_z']) if 'eps_c' in d else None for d in draws]
  variables = {'params': params, 'batch_stats': batch_stats} if batch_stats else {'params': params}
  outputs, mutated = encoder.apply(variables, audio, tuple(train), eps, num_modules=n,
                                   mutable=['batch_stats'])
  nces, klds = [], []
  for i, (out, d) in enumerate(zip(outputs, draws)):
    spec = encoder.specs[i]
    nce, _ = info_nce(out['c'], out['z'], params[f'module_{i}']['predictor'], d['window_start'],
                      d['neg_idx'], num_steps=model_config.prediction_steps,
                      window=model_config.window)
    kld = (gaussian_kl(out['mu'], out['logvar'], model_config.kl_reduction) if spec.gaussian
           else jnp.zeros(()))
    nces.append(nce)
    klds.append(kld)
  nce, kld = jnp.stack(nces), jnp.stack(klds)
  total = nce + model_config.kld_weight * kld
  objective = jnp.sum(total * jnp.asarray(loss_weights, total.dtype))
  new_stats = mutated.get('batch_stats', {})
  return objective, ({'nce': nce, 'kld': kld, 'total': total}, new_stats, outputs)


def encode(encoder: Encoder, variables, audio, *, num_modules: int | None = None, sample_key=None):
  """Eval-mode forward (BatchNorm on running statistics): per-module output dicts.

  With `sample_key`, Gaussian (SIM) modules pass on a fresh sample z ~ N(mu, exp(logvar)) as the
  original's `get_latents` does; without it every module passes on its mean (deterministic).
  """
  n = len(encoder.specs) if num_modules is None else num_modules
  eps = None
  if sample_key is not None:
    frames = frame_counts(encoder.specs, audio.shape[1])
    eps = []
    for i, spec in enumerate(encoder.specs[:n]):
      shape = (audio.shape[0], frames[i], spec.channels)
      eps.append((None, jax.random.normal(jax.random.fold_in(sample_key, i), shape))
                 if spec.gaussian else None)
  return encoder.apply(variables, audio, False, eps, num_modules=n)
