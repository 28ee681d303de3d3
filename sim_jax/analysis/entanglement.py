"""Total correlation TC(x) = Σ_i H(x_i) − H(x): how far a representation is from independent dims.

Two estimators:
- `kde_total_correlation`: the original's (reference-semantics §7,
  post_hoc_analysis/interpretability/main_total_correlation.py:45-65): a Gaussian kernel density
  estimate (sklearn, bandwidth 0.1) of every 1-D marginal and of the joint, each entropy the mean
  negative log-density on the fitting samples themselves (resubstitution). The original's samples
  (`sample_signals`, `kde_tc_table`): last-conv-module features (`get_z(regression=False)`, :84-87 —
  SIM samples, as `get_latents`) of the TEST loader of the speaker probe's dataset (:157, :173; de
  Boer: the words, LibriSpeech: crops), counted in audio items, not vectors. Here it is
  vectorised in JAX (pairwise distances in row chunks, float32 with an exact self term) instead of
  one sklearn KernelDensity per dimension. It is strongly biased in high dimensions (with bandwidth
  0.1 a point's own kernel dominates the joint density), so only its trend across models and subsets
  is meaningful.
- `gaussian_total_correlation`: the total correlation of a Gaussian with the data's correlation
  matrix R, −½ log det R. Exact for Gaussian data, a lower bound on dependence otherwise, and cheap
  for all 512 dimensions. Its finite-sample bias ≈ d(d−1)/(4N) is measured by `permuted_null`.
"""

import functools
import time
from typing import Callable

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim_jax import io  # noqa: E402

_LOG_2PI = np.log(2 * np.pi)


def kde_log_density(x: np.ndarray, bandwidth: float = 0.1, chunk: int = 512) -> np.ndarray:
  """Log of the Gaussian-kernel density estimate fitted on `x` (N, d), evaluated at `x` itself: (N,).

  The kernel is the normalised N(0, bandwidth² I), as sklearn's KernelDensity(kernel='gaussian').
  """
  x = jnp.asarray(x, jnp.float32)
  n, d = x.shape
  log_sum = _log_kernel_sum(x, jnp.float32(bandwidth), min(chunk, n))
  return np.asarray(log_sum, np.float64) - np.log(n) - 0.5 * d * (_LOG_2PI + 2 * np.log(bandwidth))


@functools.partial(jax.jit, static_argnames='chunk')
def _log_kernel_sum(x, bandwidth, chunk: int):  # x (N, d) -> (N,): log Σ_j exp(−|x_i − x_j|² / 2h²)
  n, d = x.shape
  pad = (-n) % chunk
  sq = jnp.sum(x * x, axis=1)  # (N,)
  rows_x = jnp.pad(x, ((0, pad), (0, 0))).reshape(-1, chunk, d)  # (n_chunks, chunk, d)
  rows_i = jnp.arange(n + pad).reshape(-1, chunk)  # (n_chunks, chunk)

  def one_chunk(args):
    xr, ir = args  # (chunk, d), (chunk,)
    dist2 = (jnp.sum(xr * xr, axis=1)[:, None] + sq[None, :]
             - 2.0 * jnp.matmul(xr, x.T, precision=jax.lax.Precision.HIGHEST))  # (chunk, N)
    dist2 = jnp.where(ir[:, None] == jnp.arange(n)[None, :], 0.0, jnp.maximum(dist2, 0.0))
    return jax.nn.logsumexp(-dist2 / (2 * bandwidth ** 2), axis=1)

  return jax.lax.map(one_chunk, (rows_x, rows_i)).reshape(-1)[:n]


def kde_marginal_entropies(x: np.ndarray, bandwidth: float = 0.1) -> np.ndarray:
  """Resubstitution KDE entropy of every column of `x` (N, d) on its own: (d,) nats."""
  x = np.asarray(x)
  return np.array([-kde_log_density(x[:, i:i + 1], bandwidth).mean() for i in range(x.shape[1])])


def kde_total_correlation(x: np.ndarray, bandwidth: float = 0.1) -> float:
  """The original's estimate: Σ_i H_kde(x_i) − H_kde(x) for samples `x` (N, d), in nats."""
  joint = -kde_log_density(x, bandwidth).mean()
  return float(kde_marginal_entropies(x, bandwidth).sum() - joint)


def gaussian_total_correlation(x: np.ndarray) -> dict:
  """−½ log det of the correlation matrix of `x` (N, d), in nats.

  Constant columns carry no information and are dropped (their count is returned). Needs N > d.
  Returns {'tc', 'dims', 'constant_dims', 'samples'}.
  """
  x = np.asarray(x, np.float64)
  std = x.std(axis=0)
  keep = std > 1e-12 * max(float(std.max(initial=0.0)), 1.0)
  x = x[:, keep]
  n, d = x.shape
  if n <= d:
    raise ValueError(f'Gaussian total correlation needs more samples than dimensions: {n} samples '
                     f'for {d} dims')
  corr = np.corrcoef(x, rowvar=False) if d > 1 else np.ones((1, 1))
  sign, logdet = np.linalg.slogdet(corr)
  tc = float(-0.5 * logdet) if sign > 0 else float('inf')
  return {'tc': tc, 'dims': d, 'constant_dims': int((~keep).sum()), 'samples': n}


def permuted_null(x: np.ndarray, seed: int = 0) -> np.ndarray:
  """`x` (N, d) with each column shuffled independently: same marginals, no dependence (N, d)."""
  rng = np.random.default_rng(seed)
  return np.stack([rng.permutation(col) for col in np.asarray(x).T], axis=1)


def gaussian_tc_closed_form(cov: np.ndarray) -> float:
  """Exact total correlation of N(0, cov): −½ log det of its correlation matrix."""
  std = np.sqrt(np.diag(cov))
  return float(-0.5 * np.linalg.slogdet(cov / np.outer(std, std))[1])


def sample_signals(frames: np.ndarray, offsets: np.ndarray, channels: int, times: int, max_items: int,
                   batch_size: int, drop_last: bool, rng: np.random.Generator) -> tuple[np.ndarray, int]:
  """One draw of the original's TC samples (main_total_correlation.py:68-111): (n, channels) and the
  number of audio items they come from.

  frames: (F, C), item i's frames at rows offsets[i]:offsets[i+1]. A random channel subset (one per
  draw, main_total_correlation.py:75); the items in random order (its shuffled loader, :78) in
  batches of `batch_size`, only whole batches when `drop_last` (its loaders drop the last,
  data/get_dataloader.py:26-40); from each batch `times` random frames, the same frames for every
  item of the batch (:90-96); collection stops after the batch that brings the number of ITEMS to
  `max_items` or more (:105), so 1000 items × 5 frames give ≥ 5000 vectors. -1 means all (channels,
  frames or items).
  """
  num_channels = frames.shape[1]
  chans = (np.arange(num_channels) if channels < 0 or channels >= num_channels
           else np.sort(rng.choice(num_channels, channels, replace=False)))
  num_items = len(offsets) - 1
  num_batches = num_items // batch_size if drop_last else -(-num_items // batch_size)
  if num_batches == 0:
    raise ValueError(f'total correlation: {num_items} items, fewer than one batch of '
                     f'config.analysis.kde_batch_size={batch_size} (lower it, or set '
                     'config.analysis.drop_last=False)')
  order = rng.permutation(num_items)
  picked, items = [], 0
  for b in range(num_batches):
    batch = order[b * batch_size:(b + 1) * batch_size]
    length = int(np.min(offsets[batch + 1] - offsets[batch]))
    rows = np.arange(length) if times < 0 or times >= length else rng.choice(length, times, replace=False)
    picked += [np.asarray(frames[int(offsets[i]) + rows])[:, chans] for i in batch]  # (times, channels)
    items += len(batch)
    if 0 <= max_items <= items:
      break
  return np.concatenate(picked), items


def gaussian_tc_summary(frames: np.ndarray, seed: int = 0) -> dict:
  """Gaussian TC of all frames (F, D) with its permuted-null baseline and the excess over it."""
  result = gaussian_total_correlation(frames)
  null = gaussian_total_correlation(permuted_null(frames, seed))['tc']
  result.update(null_tc=null, excess_tc=result['tc'] - null,
                excess_tc_per_dim=(result['tc'] - null) / max(result['dims'], 1))
  return result


def setting_label(channels: int, times: int, max_items: int) -> str:
  """'512 ch × 5 frames, 1000 items' for a KDE setting (-1 shown as ∞)."""
  show = lambda v: '∞' if v < 0 else str(v)  # noqa: E731
  return f'{show(channels)} ch × {show(times)} frames, {show(max_items)} items'


def kde_tc_table(frames: np.ndarray, offsets: np.ndarray, settings, repeats: int, bandwidth: float,
                 batch_size: int, drop_last: bool, max_vectors: int, seed: int,
                 redraw: Callable[[int], np.ndarray] | None = None) -> list[dict]:
  """The original's KDE TC for each (channels, times, max_items) setting, `repeats` times each
  (main_total_correlation.py:159-177: (10,5,1000), (50,5,1000), (100,5,1000), (512,5,1000),
  (512,5,∞), (512,∞,∞), 3× each); channels are capped at the width, and a setting equal to an
  earlier one after capping is computed once. `max_vectors` > 0 caps the samples of one estimate at
  a random `max_vectors` of them (quick runs; 0: no cap, as the original).

  redraw(n): the frames (F, C) (same offsets) of the n-th estimate, n = 1, 2, … over the settings and
  repeats in order — SIM samples drawn afresh, as the original re-encodes its test loader for every
  estimate (:81-87, :171-176); estimate 0 and every estimate without `redraw` read `frames`.

  Per setting, on the same samples: the KDE estimate (mean / std / runs); the same with every column
  shuffled (its null: what it reports for independent dims); the KDE estimate after scaling every
  channel to unit variance (a fixed bandwidth is not scale-invariant: for channels with std ≪
  bandwidth the raw estimate is ≈ 0 whatever the dependence); and the Gaussian estimate.
  """
  rng = np.random.default_rng(seed)
  width = frames.shape[1]
  table, done, estimates = [], set(), 0
  for channels, times, max_items in settings:
    size = min(channels, width) if channels > 0 else width
    if (size, times, max_items) in done:
      continue
    done.add((size, times, max_items))
    started = time.time()
    runs, nulls, scaled, scaled_nulls, gauss = [], [], [], [], []
    for _ in range(repeats):
      drawn = frames if redraw is None or estimates == 0 else redraw(estimates)
      estimates += 1
      x, items = sample_signals(drawn, offsets, size, times, max_items, batch_size, drop_last, rng)
      capped = 0 < max_vectors < len(x)
      if capped:
        x = x[np.sort(rng.choice(len(x), max_vectors, replace=False))]
      shuffled = permuted_null(x, int(rng.integers(1 << 31)))
      unit = np.maximum(x.std(axis=0), 1e-12)  # (size,)
      runs.append(kde_total_correlation(x, bandwidth))
      nulls.append(kde_total_correlation(shuffled, bandwidth))
      scaled.append(kde_total_correlation(x / unit, bandwidth))
      scaled_nulls.append(kde_total_correlation(shuffled / unit, bandwidth))
      gauss.append(gaussian_total_correlation(x)['tc'] if len(x) > size else float('nan'))
    table.append({'setting': setting_label(size, times, max_items), 'channels': size, 'times': times,
                  'max_items': max_items, 'items': items, 'samples': len(x), 'capped': capped,
                  'tc_mean': float(np.mean(runs)), 'tc_std': float(np.std(runs)), 'tc_runs': runs,
                  'null_tc_mean': float(np.mean(nulls)),
                  'standardized_tc_mean': float(np.mean(scaled)),
                  'standardized_tc_std': float(np.std(scaled)),
                  'standardized_null_tc_mean': float(np.mean(scaled_nulls)),
                  'gaussian_tc_mean': float(np.mean(gauss)), 'seconds': time.time() - started})
  return table


def plot_kde_table(table: list[dict], path: str, title: str) -> None:
  """KDE TC (mean ± std over repeats) for each setting, with its shuffled-data null, the
  unit-variance KDE and the Gaussian estimate on the same samples."""
  x = np.arange(len(table))
  fig, ax = plt.subplots(figsize=(max(5.2, 1.3 * len(table) + 1.5), 4.0))
  ax.errorbar(x, [r['tc_mean'] for r in table], yerr=[r['tc_std'] for r in table], marker='o',
              capsize=3, label='KDE')
  ax.plot(x, [r['null_tc_mean'] for r in table], 's--', color='grey', label='KDE, shuffled columns')
  ax.errorbar(x, [r['standardized_tc_mean'] for r in table],
              yerr=[r['standardized_tc_std'] for r in table], marker='D', capsize=3, color='tab:purple',
              label='KDE, unit-variance channels')
  ax.plot(x, [r['standardized_null_tc_mean'] for r in table], 'd--', color='plum',
          label='KDE, unit-variance, shuffled')
  ax.plot(x, [r['gaussian_tc_mean'] for r in table], '^-', color='tab:green',
          label='Gaussian, same samples')
  ax.set_xticks(x, [r['setting'].replace(', ', '\n') for r in table], fontsize=7)
  ax.set_yscale('symlog', linthresh=1.0)  # estimates can fall below 0 (KDE bias)
  lowest = min(min(r['tc_mean'] - r['tc_std'], r['null_tc_mean'], r['standardized_null_tc_mean'],
                   r['standardized_tc_mean'] - r['standardized_tc_std'], r['gaussian_tc_mean']) for r in table)
  if lowest >= 0:  # nothing negative: no axis range spent below 0
    ax.set_ylim(bottom=0)
  ax.set_xlabel('setting: channel subset × frames per item, audio items')
  ax.set_ylabel('total correlation (nats)')
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  io.save_figure(fig, path)
