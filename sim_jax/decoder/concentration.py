"""The interpolation concentration of the original's `eval_decoder` notebook: the paper's figure
(GIM 0.867, SIM 0.541; reference-semantics §6.6). Not the contribution score of score.py (§6.5).

What fdenoodt/Smooth-InfoMax@d39935c, eval_decoder.ipynb computes:
  cell 2  z: the items of the decoder's test loader (shuffle off, drop_last, batch 64 — the first 128
          of de Boer's 171 words), encoded once by `forward_through_all_cnn_modules`: latents of the
          last conv module, SIM samples (its `get_latents`), decoded by that module's decoder;
  cell 3  for k in 16, 32, 64, 128 and every ordered pair (i, j), i ≠ j: rank the dimensions by the
          squared difference of the time-averaged z_i, z_j (`dist_after_interpol_important_dims`);
          z' = z_i with its top-k dimensions (every frame) set to z_j's (`interpolate_partial(...)[0]`);
          distance = mean |dec(z') − dec(z_j)|, averaged over the k and the pairs. The same loop on
          the other end of the interpolation (`[-1]`: z' = z_i, nothing swapped) gives the "MAX" mean;
  cell 4  figure = mean distance / MAX mean distance.
Lower: swapping a few dimensions already moves the decoded audio most of the way to z_j's, i.e. the
information telling two items apart sits in few dimensions.

The k are the notebook's for a 512-wide latent; another width gets the same fractions of its width
(1/32 … 1/4, at least 1). Pairs go through the contribution score's batched loop with the absolute
instead of the squared error.
"""

from typing import Callable

import jax.numpy as jnp
import numpy as np

from sim_jax.decoder import score

NOTEBOOK_KS = (16, 32, 64, 128)  # dimensions swapped, of the notebook's 512
NOTEBOOK_WIDTH = 512


def notebook_ks(width: int) -> list[int]:
  """The notebook's k (16, 32, 64, 128 of 512 dimensions) for a `width`-wide latent."""
  return [max(1, k * width // NOTEBOOK_WIDTH) for k in NOTEBOOK_KS]


def mean_absolute_error(a, b):
  """Per-item mean absolute difference of two waveform batches, (B, T) x2 -> (B,): the notebook's distance."""
  return jnp.mean(jnp.abs(a - b), axis=-1)


def interpolation_concentration(decode: Callable, variables, z, pairs: np.ndarray, batch_size: int) -> dict:
  """The notebook's figure for latents z (M, L, C) and ordered `pairs` (P, 2) of them.

  decode: (variables, (B, L, C)) -> (B, T), e.g. a jitted decoder `apply`.
  Returns {'concentration': distance / max_distance, 'distance' (mean over k and pairs),
  'max_distance' (nothing swapped), 'k', 'distance_per_k', 'num_items', 'num_pairs'}.
  """
  ks = notebook_ks(np.shape(z)[-1])
  r = score.contribution_score(decode, variables, z, pairs, ks, batch_size, error=mean_absolute_error,
                               desc='interpolation concentration')
  distance = float(np.mean(r['absolute']))
  return {'concentration': distance / r['max_error'], 'distance': distance, 'max_distance': r['max_error'],
          'k': ks, 'distance_per_k': r['absolute'], 'num_items': r['num_items'], 'num_pairs': r['num_pairs']}
