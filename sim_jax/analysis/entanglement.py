"""Total correlation TC(x) = Σ_i H(x_i) − H(x): how far a representation is from independent dims.

Two estimators:
- `kde_total_correlation`: the original's (reference-semantics §7, `main_total_correlation.py`):
  a Gaussian kernel density estimate (bandwidth 0.1) of every 1-D marginal and of the joint, each
  entropy the mean negative log-density on the fitting samples themselves (resubstitution). Here it is
  vectorised in JAX (pairwise distances in row chunks, float32 with an exact self term) instead of one sklearn KernelDensity per
  dimension. It is strongly biased in high dimensions (with bandwidth 0.1 a point's own kernel
  dominates the joint density), so only its trend across models and subsets is meaningful.
- `gaussian_total_correlation`: the total correlation of a Gaussian with the data's correlation
  matrix R, −½ log det R. Exact for Gaussian data, a lower bound on dependence otherwise, and cheap
  for all 512 dimensions. Its finite-sample bias ≈ d(d−1)/(4N) is measured by `permuted_null`.
"""

import functools

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
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


def sample_signals(frames: np.ndarray, offsets: np.ndarray, channels: int, times: int,
                   max_signals: int, rng: np.random.Generator) -> np.ndarray:
  """The original's TC samples: a random channel subset (fixed for the run) at random frames.

  frames: (F, C), item i's frames at rows offsets[i]:offsets[i+1]. Items are visited in random
  order; from each, `times` random frames are taken (the original draws them per batch); collection
  stops at `max_signals` vectors. -1 means all (channels, frames or signals). Returns (n, channels).
  """
  num_channels = frames.shape[1]
  chans = (np.arange(num_channels) if channels < 0 or channels >= num_channels
           else np.sort(rng.choice(num_channels, channels, replace=False)))
  limit = len(frames) if max_signals < 0 else max_signals
  picked, total = [], 0
  for item in rng.permutation(len(offsets) - 1):
    start, stop = int(offsets[item]), int(offsets[item + 1])
    rows = (np.arange(start, stop) if times < 0 or times >= stop - start
            else start + rng.choice(stop - start, times, replace=False))
    picked.append(np.asarray(frames[np.sort(rows)])[:, chans])  # (times, channels)
    total += len(rows)
    if total >= limit:
      break
  return np.concatenate(picked)[:limit]


def gaussian_tc_summary(frames: np.ndarray, seed: int = 0) -> dict:
  """Gaussian TC of all frames (F, D) with its permuted-null baseline and the excess over it."""
  result = gaussian_total_correlation(frames)
  null = gaussian_total_correlation(permuted_null(frames, seed))['tc']
  result.update(null_tc=null, excess_tc=result['tc'] - null,
                excess_tc_per_dim=(result['tc'] - null) / max(result['dims'], 1))
  return result


def kde_tc_table(frames: np.ndarray, offsets: np.ndarray, channels: tuple, times: int,
                 max_signals: int, repeats: int, bandwidth: float, seed: int) -> list[dict]:
  """The original's KDE TC for each channel-subset size, `repeats` times each (§7).

  Per setting, on the same samples: the KDE estimate (mean / std / runs); the same with every column
  shuffled (its null: what it reports for independent dims); the KDE estimate after scaling every
  channel to unit variance (a fixed bandwidth is not scale-invariant: for channels with std ≪
  bandwidth the raw estimate is ≈ 0 whatever the dependence); and the Gaussian estimate.
  """
  rng = np.random.default_rng(seed)
  sizes = sorted({min(c, frames.shape[1]) if c > 0 else frames.shape[1] for c in channels})
  table = []
  for size in sizes:
    runs, nulls, scaled, scaled_nulls, gauss = [], [], [], [], []
    for _ in range(repeats):
      x = sample_signals(frames, offsets, size, times, max_signals, rng)  # (n, size)
      shuffled = permuted_null(x, int(rng.integers(1 << 31)))
      unit = np.maximum(x.std(axis=0), 1e-12)  # (size,)
      runs.append(kde_total_correlation(x, bandwidth))
      nulls.append(kde_total_correlation(shuffled, bandwidth))
      scaled.append(kde_total_correlation(x / unit, bandwidth))
      scaled_nulls.append(kde_total_correlation(shuffled / unit, bandwidth))
      gauss.append(gaussian_total_correlation(x)['tc'] if len(x) > size else float('nan'))
    table.append({'channels': size, 'times': times, 'max_signals': max_signals, 'samples': len(x),
                  'tc_mean': float(np.mean(runs)), 'tc_std': float(np.std(runs)), 'tc_runs': runs,
                  'null_tc_mean': float(np.mean(nulls)),
                  'standardized_tc_mean': float(np.mean(scaled)),
                  'standardized_tc_std': float(np.std(scaled)),
                  'standardized_null_tc_mean': float(np.mean(scaled_nulls)),
                  'gaussian_tc_mean': float(np.mean(gauss))})
  return table


def plot_kde_table(table: list[dict], path: str, title: str) -> None:
  """KDE TC (mean ± std over repeats) against the channel-subset size, with its shuffled-data null,
  the unit-variance KDE and the Gaussian estimate on the same samples."""
  sizes = [row['channels'] for row in table]
  fig, ax = plt.subplots(figsize=(5.2, 3.6))
  ax.errorbar(sizes, [r['tc_mean'] for r in table], yerr=[r['tc_std'] for r in table], marker='o',
              capsize=3, label='KDE')
  ax.plot(sizes, [r['null_tc_mean'] for r in table], 's--', color='grey', label='KDE, shuffled columns')
  ax.errorbar(sizes, [r['standardized_tc_mean'] for r in table],
              yerr=[r['standardized_tc_std'] for r in table], marker='D', capsize=3, color='tab:purple',
              label='KDE, unit-variance channels')
  ax.plot(sizes, [r['standardized_null_tc_mean'] for r in table], 'd--', color='plum',
          label='KDE, unit-variance, shuffled')
  ax.plot(sizes, [r['gaussian_tc_mean'] for r in table], '^-', color='tab:green',
          label='Gaussian, same samples')
  ax.set_xscale('log')
  ax.set_xticks(sizes, [str(n) for n in sizes])
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.set_yscale('symlog', linthresh=1.0)  # estimates can fall below 0 (KDE bias)
  lowest = min(min(r['tc_mean'] - r['tc_std'], r['null_tc_mean'], r['standardized_null_tc_mean'],
                   r['standardized_tc_mean'] - r['standardized_tc_std'], r['gaussian_tc_mean']) for r in table)
  if lowest >= 0:  # nothing negative: no axis range spent below 0
    ax.set_ylim(bottom=0)
  ax.set_xlabel('channels in the subset')
  ax.set_ylabel('total correlation (nats)')
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  io.save_figure(fig, path)
