"""InfoNCE and KL losses of the original code, as pure functions; the random draws are arguments.

InfoNCE (reference-semantics §2.1), for one module with context c (B, L, H) and targets z (B, L, C):
  * if L > window, c and z are cropped to `window` frames starting at `window_start`;
  * K prediction steps share one bias-free predictor; W_k is block k of its (H, K*C) kernel;
  * positives <W_k c_t, z_{t+k}>, raw dot products;
  * negatives: `num_negatives` permutations of the full, uncropped z flattened batch-major to
    (B*L, C); for step k the original pairs the *last* B*(W-k) rows of each permutation, in order,
    with the B*(W-k) predictions (batch-major). All k together use only the last M = B*(W-1) rows,
    so the draw is just those M entries of each permutation (`neg_idx`, (num_negatives, M)).

All K steps are computed at once in a "row space": row m = B*(k-1) + r holds step k's r-th
prediction, which the original pairs with entry N - M + m of every permutation (N = B*L). A
batched contraction then scores every step against its positive and its negatives, a chunk of rows
at a time.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=64)
def _row_space(batch: int, window: int, num_steps: int):
  """Static index maps of the row space, shape (K, M) each, M = batch * (window - 1).

  src: flat (b * W + t) index of the context frame of row m for step k;
  tgt: flat index of its positive target frame t + k; valid: whether row m is used by step k.
  """
  ks = np.arange(1, num_steps + 1)[:, None]
  m = np.arange(batch * (window - 1))[None, :]
  r = m - batch * (ks - 1)
  valid = r >= 0
  r = np.where(valid, r, 0)
  b, t = r // (window - ks), r % (window - ks)
  src = b * window + t
  return src.astype(np.int32), (src + ks).astype(np.int32), valid


# The fewest rows of the row space scored per chunk (~ one batch row's worth at W = 128): a chunk's
# gathered rows stay in cache and only one chunk's are alive at a time (module 0, forward +
# backward: batch 64 1.36 -> 0.93 s and 0.87 -> 0.38 GB of temporaries; batch 8 145 -> 121 ms).
ROWS_PER_CHUNK = 64


def info_nce(c, z, predictor, window_start, neg_idx, *, num_steps: int, window: int = 128,
             chunked: bool = True):
  """The original's InfoNCE for one module.

  Args:
    c: (B, L, H) contexts. z: (B, L, C) targets. predictor: (H, K * C) kernel.
    window_start: int scalar, first frame of the positive window (ignored when L <= window).
    neg_idx: (J, M) int rows of the flattened full z used as negatives, M = B * (W - 1).
  Returns:
    (loss, per_step): the mean over k of the per-step losses, and the (K,) per-step losses.

  The predictions are one matmul (in the inputs' dtype); the logits are float32. With `chunked`
  (XLA:CPU) the rows are scored a chunk at a time (`ROWS_PER_CHUNK`), each chunk's gathers redone in
  the backward pass rather than kept; without, all rows at once (XLA:GPU/TPU).
  """
  batch, length, channels = z.shape
  z_flat = z.reshape(batch * length, channels)  # (B*L, C)
  if length > window:
    c = jax.lax.dynamic_slice_in_dim(c, window_start, window, axis=1)
    z = jax.lax.dynamic_slice_in_dim(z, window_start, window, axis=1)
  else:
    window = length
  z_win = z.reshape(batch * window, channels)  # (B*W, C)
  # every step's prediction of every window frame in one matmul
  pred_all = (c.reshape(batch * window, -1) @ predictor).reshape(batch * window, num_steps, channels)

  def chunk_nll(rows):  # the summed -log p(positive) of one chunk of R rows, per step
    src, tgt, valid, neg = rows  # (K, R) each, neg (J, R)
    pred = pred_all[src.T, np.arange(num_steps)]  # (R, K, C)
    pos = jnp.einsum('rkc,rkc->rk', pred, z_win[tgt.T], preferred_element_type=jnp.float32)  # (R, K)
    negs = jnp.einsum('rkc,rjc->rkj', pred, z_flat[neg.T],
                      preferred_element_type=jnp.float32)  # (R, K, J)
    logits = jnp.concatenate([pos[..., None], negs], axis=-1)  # (R, K, 1 + J)
    nll = jax.nn.logsumexp(logits, axis=-1) - pos  # (R, K)
    return jnp.sum(jnp.where(valid.T, nll, 0.0), axis=0)  # (K,)

  src, tgt, valid = _row_space(batch, window, num_steps)
  rows = (src, tgt, valid, neg_idx)
  if chunked:
    num_rows = src.shape[1]
    # n chunks, n a divisor of B (so of M), the most that keep >= ROWS_PER_CHUNK rows each
    n = max(d for d in range(1, batch + 1)
            if batch % d == 0 and (d == 1 or num_rows // d >= ROWS_PER_CHUNK))

    def split(a):  # (K or J, M) -> (n, K or J, R)
      return a.reshape(a.shape[0], n, num_rows // n).swapaxes(0, 1)

    sums = jnp.sum(jax.lax.map(jax.checkpoint(chunk_nll), tuple(map(split, rows))), axis=0)  # (K,)
  else:
    sums = chunk_nll(rows)  # (K,)
  per_step = sums / (batch * (window - np.arange(1, num_steps + 1)))
  return jnp.mean(per_step), per_step


def kl_to_standard_normal(mu, logvar):
  """Elementwise KL(N(mu, exp(logvar)) || N(0, 1)) in nats, the shape of `mu`."""
  return -0.5 * (1.0 + logvar - jnp.square(mu) - jnp.exp(logvar))


def gaussian_kl(mu, logvar, reduction: str = 'sum_time'):
  """KL(N(mu, exp(logvar)) || N(0, I)) of (B, L, C) heads.

  reduction 'sum_time' (the original's): summed over time, averaged over batch and channels, so it
  grows with the number of frames; 'mean': averaged over every element (per frame and channel).
  """
  kl = kl_to_standard_normal(mu, logvar)  # (B, L, C)
  if reduction == 'sum_time':
    return jnp.mean(jnp.sum(kl, axis=1))
  if reduction == 'mean':
    return jnp.mean(kl)
  raise ValueError(f"kl_reduction={reduction!r}: use 'sum_time' (the original's) or 'mean'")


def draw_window_start(key, length: int, window: int = 128):
  """Start of the positive window: uniform in [0, length - window) as the original (last excluded).

  Returns -1 (no window) when length <= window.
  """
  if length <= window:
    return jnp.int32(-1)
  return jax.random.randint(key, (), 0, length - window, dtype=jnp.int32)


def draw_negatives(key, num_rows: int, num_used: int, num_negatives: int = 10):
  """(num_negatives, num_used) row indices: the last `num_used` entries of independent permutations
  of range(num_rows), which is what the original's negatives use."""
  keys = jax.random.split(key, num_negatives)
  return jax.vmap(lambda k: jax.random.permutation(k, num_rows)[num_rows - num_used:])(keys)
