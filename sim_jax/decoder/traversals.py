"""Walks through a latent space that a decoder can voice (reference-semantics §6.6, the original's demo).

All functions are pure and work on one item's latents z (L, C):
  interpolation          every dimension at once, from z_a (first step) to z_b (last step);
  partial interpolation  only the k dimensions whose time averages differ most (score.py's ranking);
  dimension sweep        one dimension set, at every frame, to mean + s·std for s from -3 to +3,
                         the others left as they are.
"""

import difflib
import os

import jax.numpy as jnp
import numpy as np

from sim_jax.analysis.weights import load_probe_weights
from sim_jax.decoder.latents import DecoderError
from sim_jax.decoder.score import dimension_ranks


def interpolate(z_a, z_b, steps: int):
  """(steps, L, C): z_a·(1 - v) + z_b·v for v = 0 … 1."""
  v = jnp.linspace(0.0, 1.0, steps)[:, None, None]
  return z_a[None] * (1.0 - v) + z_b[None] * v


def partial_interpolate(z_a, z_b, steps: int, k: int):
  """(steps, L, C) interpolation of only the k dims with the largest squared difference of time
  averages (the others stay at z_a), and those dims (k,), largest difference first."""
  ranks = dimension_ranks(z_a[None], z_b[None])[0]  # (C,)
  chosen = ranks < k
  path = interpolate(z_a, z_b, steps)
  return jnp.where(chosen[None, None, :], path, z_a[None]), jnp.argsort(ranks)[:k]


def sweep(z, dim: int, values):
  """(len(values), L, C): z with dimension `dim` set to each value at every frame."""
  values = jnp.asarray(values, z.dtype)
  return jnp.broadcast_to(z, (len(values),) + z.shape).at[:, :, dim].set(values[:, None])


def find_item(names: dict, name: str) -> tuple[str, int]:
  """(split, index) of item `name`, looked up in names = {split: [item names]} in order.

  An unknown name is a DecoderError suggesting the closest names.
  """
  for split, split_names in names.items():
    if name in split_names:
      return split, list(split_names).index(name)
  every = [n for split_names in names.values() for n in split_names]
  close = difflib.get_close_matches(name, every, n=3)
  hint = f"; did you mean {', '.join(close)}?" if close else f"; e.g. {', '.join(every[:3])}"
  raise DecoderError(f"no item named {name!r} in the {' or '.join(names)} split{hint}")


def parse_sweep_dims(dims: str, width: int) -> list[int] | None:
  """config.decoder.sweep_dims ('3,17') as dims of a `width`-wide latent, or None when empty;
  checked before the decoder trains, so a typo does not surface at the end of a long run."""
  if not dims.strip():
    return None
  try:
    chosen = [int(d) for d in dims.split(',')]
  except ValueError:
    raise DecoderError(f'config.decoder.sweep_dims={dims!r}: use comma-separated integers, '
                       'e.g. 3,17') from None
  bad = [d for d in chosen if not 0 <= d < width]
  if bad:
    raise DecoderError(f'config.decoder.sweep_dims={dims!r}: dims {bad} out of range 0..{width - 1}')
  return chosen


def sweep_dimensions(chosen: list[int] | None, probe_weights: str, num: int, std: np.ndarray,
                     probe_hint: str = '') -> tuple[list, str]:
  """The dims to sweep and why: `chosen` (`parse_sweep_dims`) if given, else the `num` dims whose
  raw-feature-scale probe weights (`analysis.weights.load_probe_weights` of `probe_weights`) have
  the largest L2 norm over classes, else the `num` dims of largest `std` (`probe_hint`, the command
  making the probe, then goes into the why)."""
  width = len(std)
  if chosen is not None:
    return chosen, 'chosen by config.decoder.sweep_dims'
  if os.path.exists(probe_weights):
    weights, _, standardized = load_probe_weights(probe_weights)  # (classes, D)
    if weights.shape[1] != width:
      raise DecoderError(f'{probe_weights}: probe weights have {weights.shape[1]} dims but the latents '
                         f'have {width}; rerun the probe on this encoder')
    importance = np.linalg.norm(weights, axis=0)
    scale = ('trained on standardised features, weights mapped back to raw-feature scale'
             if standardized else 'trained on raw features')
    return ([int(d) for d in np.argsort(-importance)[:num]],
            f'largest weights of the probe {probe_weights} ({scale})')
  return [int(d) for d in np.argsort(-std)[:num]], ('largest standard deviation (no probe weights found'
                                                    + (f'; {probe_hint}' if probe_hint else '') + ')')
