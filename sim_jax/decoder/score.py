"""The interpolation contribution score (reference-semantics §6.5), batched over pairs.

For an ordered pair of items (i, j), i ≠ j, rank the latent dimensions by the squared difference of
their time averages, largest first; z' is z_i with its top-k dimensions (all frames) replaced by
z_j's. Then
  absolute(k) = mean over pairs of MSE(dec(z'), dec(z_j)),
  max error   = mean over pairs of MSE(dec(z_i), dec(z_j)),
  relative(k) = absolute(k) / max error,
for k = 2, 4, 8, ... up to the width (the original: 2 … 512). A low relative error at small k means
the information that tells two items apart sits in few dimensions.

The original decodes every pair and k one item at a time, each target dec(z_j) again with every
decode (20 decoder calls per pair, ~800k for its 200 items) and crashes on sets under 200 items;
here the targets are decoded once, pairs go through the decoder in batches, k = width (every
dimension swapped: z' = z_j, an error of exactly 0) is not decoded, and the items are all of the
set or a random `max_items` of it.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm


def score_ks(width: int) -> list[int]:
  """k = 2, 4, 8, ... below `width`, then `width` itself."""
  ks, k = [], 2
  while k < width:
    ks.append(k)
    k *= 2
  return ks + [width]


def map_batches(fn: Callable, x, batch_size: int, *more) -> np.ndarray:
  """fn over x (N, ...) in batches of exactly `batch_size` (the last one zero-padded, so a jitted fn
  compiles once), concatenated to (N, ...) on the host; arrays `more` (N, ...) are batched alongside
  and passed as further arguments."""
  arrays = [np.asarray(a) for a in (x,) + more]
  n = len(arrays[0])
  pad = -n % batch_size
  padded = [np.concatenate([a, np.zeros((pad,) + a.shape[1:], a.dtype)]) if pad else a for a in arrays]
  out = [np.asarray(fn(*(a[s:s + batch_size] for a in padded))) for s in range(0, n + pad, batch_size)]
  return np.concatenate(out)[:n]


def choose_pairs(num_items: int, max_items: int, max_pairs: int, seed: int):
  """Items (M,) drawn without replacement (all when num_items <= max_items) and ordered pairs
  (P, 2) of positions into them: all M·(M-1), or a random `max_pairs` of them when max_pairs > 0."""
  if num_items < 2:
    raise ValueError(f'the contribution score needs at least 2 test items; got {num_items}')
  rng = np.random.default_rng(seed)
  items = (np.arange(num_items) if num_items <= max_items
           else np.sort(rng.choice(num_items, max_items, replace=False)))
  m = len(items)
  first, second = np.nonzero(~np.eye(m, dtype=bool))
  pairs = np.stack([first, second], axis=1)  # (M·(M-1), 2)
  if 0 < max_pairs < len(pairs):
    pairs = pairs[np.sort(rng.choice(len(pairs), max_pairs, replace=False))]
  return items, pairs.astype(np.int32)


def dimension_ranks(z_a, z_b):
  """Rank (0 = largest) of each dimension by squared difference of time averages: (B, L, C) x2 -> (B, C)."""
  diff = jnp.square(jnp.mean(z_a, axis=1) - jnp.mean(z_b, axis=1))  # (B, C)
  order = jnp.argsort(-diff, axis=-1)
  return jnp.argsort(order, axis=-1)


def swap_top_dims(z_a, z_b, ranks, k: int):
  """z_a with the k top-ranked dimensions (every frame) taken from z_b: (B, L, C)."""
  return jnp.where((ranks < k)[:, None, :], z_b, z_a)


def mean_squared_error(a, b):
  """Per-item mean squared difference of two waveform batches, (B, T) x2 -> (B,): the score's error."""
  return jnp.mean(jnp.square(a - b), axis=-1)


def contribution_score(decode: Callable, variables, z, pairs: np.ndarray, ks, batch_size: int,
                       error: Callable = mean_squared_error, desc: str = 'contribution score') -> dict:
  """Absolute and relative errors of the score for latents z (M, L, C) and ordered `pairs` (P, 2).

  decode: a function (variables, (B, L, C)) -> (B, T), e.g. a jitted decoder `apply`.
  error: the per-item error of decoded waveforms, (B, T) x2 -> (B,) (the score's: mean squared).
  Returns {'k', 'absolute', 'relative', 'max_error', 'num_items', 'num_pairs'}.
  """
  num, width = len(z), z.shape[-1]
  targets = jnp.asarray(map_batches(lambda x: decode(variables, x), z, batch_size))  # (M, T)
  z = jnp.asarray(z)
  decoded = [i for i, k in enumerate(ks) if k < width]  # k >= width swaps every dimension: z' = z_j, error 0

  @jax.jit
  def chunk(variables, z, targets, idx, mask):  # idx (B, 2), mask (B,) -> (sum of max errors, (K',) sums)
    z_a, z_b = z[idx[:, 0]], z[idx[:, 1]]
    target_a, target_b = targets[idx[:, 0]], targets[idx[:, 1]]
    ranks = dimension_ranks(z_a, z_b)
    max_err = jnp.sum(error(target_a, target_b) * mask)

    def error_sum(k):  # one decoder pass per k, compiled once for every k
      swapped = decode(variables, swap_top_dims(z_a, z_b, ranks, k))  # (B, T)
      return jnp.sum(error(swapped, target_b) * mask)

    return max_err, jax.lax.map(error_sum, jnp.asarray([ks[i] for i in decoded], jnp.int32))

  max_total, totals = jnp.zeros(()), jnp.zeros(len(decoded))  # summed on the device
  in_flight = None
  for s in tqdm(range(0, len(pairs), batch_size), desc=desc, unit='batch',
                dynamic_ncols=True):
    idx = pairs[s:s + batch_size]
    mask = np.ones(batch_size, np.float32)
    mask[len(idx):] = 0.0
    idx = np.concatenate([idx, np.repeat(idx[-1:], batch_size - len(idx), axis=0)])
    m, t = chunk(variables, z, targets, idx, mask)
    max_total, totals = max_total + m, totals + t
    if in_flight is not None:  # one batch queued ahead: the device stays busy and the bar counts finished batches
      jax.block_until_ready(in_flight)
    in_flight = totals
  max_error = float(max_total) / len(pairs)
  absolute = np.zeros(len(ks))
  absolute[decoded] = np.asarray(totals, np.float64) / len(pairs)
  return {'k': list(ks), 'absolute': absolute.tolist(), 'relative': (absolute / max_error).tolist(),
          'max_error': max_error, 'num_items': num, 'num_pairs': len(pairs)}
