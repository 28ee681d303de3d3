"""Latent-space figures and per-dimension statistics (reference-semantics §7,
post_hoc_analysis/interpretability/main_lat_space.py).

- t-SNE of the time-averaged GRU context. The original fits it on EVERY item its syllable TRAIN
  loader yields (batch 128, shuffled, last partial batch dropped: ~2,176 items; main_lat_space.py:
  88-107, data/get_dataloader.py:26-40), init 'random', learning rate 'auto', perplexity int(√N)
  (:105), and only PLOTS at most 100 random points per class (utils/helper_functions.py:234-256,
  `scatter_syllable(n=100)`). `max_iter` here, as `n_iter` no longer exists in sklearn.
- 3-D scatter of the three most informative channels of a module's time-averaged output (the same
  syllable train items, vowel labels). The original meant "the first three dimensions" but, after
  moving axes, plotted three time frames (main_lat_space.py:111-117, §9); here the channels are
  chosen by their one-way ANOVA F statistic against the label.
- Per-dimension histograms of every frame of the last conv module on the WORD train split
  (`reshuffledv2` train, :119-127), unclipped over the data's range, 100 bins, density, y up to 5,
  N(0, 1) in red (utils/helper_functions.py:290-314), and per-dimension mean, variance and
  KL(N(mean, var) ‖ N(0, 1)) of the aggregate.
SIM features are samples in the original (`get_latents`, models/independent_module.py:52-61).
"""

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim_jax import io  # noqa: E402


def per_class_subset(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
  """Sorted indices of at most `per_class` random items of every class of `labels` (N,)."""
  picked = []
  for cls in np.unique(labels):
    members = np.flatnonzero(labels == cls)
    picked.append(rng.choice(members, min(per_class, len(members)), replace=False))
  return np.sort(np.concatenate(picked))


def tsne_perplexity(n: int, perplexity: float) -> float:
  """The perplexity used for n points: `perplexity`, or int(√n) (the original's,
  main_lat_space.py:105) when ≤ 0; at most n − 1."""
  return float(min(perplexity if perplexity > 0 else int(np.sqrt(n)), n - 1))


def tsne(x: np.ndarray, perplexity: float, max_iter: int, seed: int) -> np.ndarray:
  """2-D t-SNE of `x` (N, D) with the original's settings; perplexity ≤ 0 means int(√N): (N, 2)."""
  from sklearn.manifold import TSNE  # imported here: slow to import, used once
  from threadpoolctl import threadpool_limits
  n = len(x)
  if n < 3:
    raise ValueError(f't-SNE needs at least 3 items, got {n} (set config.analysis.max_items higher)')
  tsne_model = TSNE(n_components=2, perplexity=tsne_perplexity(n, perplexity), init='random',
                    learning_rate='auto', max_iter=max_iter, random_state=seed)
  # One OpenMP thread: sklearn's spinning threads slow t-SNE ~10x on a busy machine; ≤ a few
  # thousand points take seconds on one core.
  with threadpool_limits(limits=1, user_api='openmp'):
    return tsne_model.fit_transform(np.asarray(x, np.float64))


def _class_colors(num_classes: int):
  cmap = plt.get_cmap('tab10' if num_classes <= 10 else 'tab20' if num_classes <= 20 else 'turbo')
  return [cmap(i if num_classes <= 20 else i / max(num_classes - 1, 1)) for i in range(num_classes)]


def _scatter_by_class(ax, points: np.ndarray, labels: np.ndarray, class_names: list[str],
                      size: float = 9) -> None:
  colors = _class_colors(len(class_names))
  for cls in np.unique(labels):
    sel = labels == cls
    ax.scatter(*points[sel].T, s=size, color=colors[int(cls)], label=class_names[int(cls)],
               alpha=0.8, linewidths=0)
  if len(class_names) <= 20:
    ax.legend(fontsize=6, markerscale=1.5, loc='best', ncol=1 if len(class_names) <= 10 else 2)


def plot_tsne(embedding: np.ndarray, labels: dict, class_names: dict, path: str, title: str) -> None:
  """The t-SNE embedding (N, 2), one panel per label kind (e.g. syllable, vowel), coloured by class."""
  fig, axes = plt.subplots(1, len(labels), figsize=(4.6 * len(labels), 4.2), squeeze=False)
  for ax, (name, y) in zip(axes[0], labels.items()):
    _scatter_by_class(ax, embedding, y, class_names[name])
    ax.set_title(f'coloured by {name}')
    ax.set_xticks([])
    ax.set_yticks([])
  fig.suptitle(title)
  fig.tight_layout()
  io.save_figure(fig, path)


def informative_channels(x: np.ndarray, labels: np.ndarray, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
  """The `k` channels of `x` (N, D) with the largest one-way ANOVA F against `labels`; (k,), (D,) F."""
  from sklearn.feature_selection import f_classif
  import warnings
  with warnings.catch_warnings():
    warnings.simplefilter('ignore')  # constant channels give F = nan; they rank last
    f, _ = f_classif(np.asarray(x, np.float64), labels)
  f = np.nan_to_num(f, nan=0.0)
  return np.argsort(-f, kind='stable')[:k], f


def plot_scatter3d(points: np.ndarray, labels: np.ndarray, class_names: list[str],
                   channels: np.ndarray, path: str, title: str) -> None:
  """3-D scatter of `points` (N, 3) — three channels' values — coloured by class."""
  fig = plt.figure(figsize=(5.6, 5.0))
  ax = fig.add_subplot(projection='3d')
  colors = _class_colors(len(class_names))
  for cls in np.unique(labels):
    sel = labels == cls
    ax.scatter(*points[sel].T, s=8, color=colors[int(cls)], label=class_names[int(cls)], alpha=0.8)
  ax.set_xlabel(f'channel {channels[0]}')
  ax.set_ylabel(f'channel {channels[1]}')
  ax.set_zlabel(f'channel {channels[2]}')
  ax.locator_params(nbins=4)
  if len(class_names) <= 20:
    ax.legend(fontsize=7)
  ax.set_title(title, fontsize=9)
  io.save_figure(fig, path)


def dimension_stats(frames: np.ndarray) -> dict:
  """Per-dimension mean, variance and KL(N(mean, var) ‖ N(0, 1)) of latents `frames` (F, D), plus
  summaries: mean KL, number of near-constant dims (variance < 1e-2), mean |mean|, mean variance."""
  x = np.asarray(frames, np.float64)
  mean = x.mean(axis=0)
  var = x.var(axis=0)
  kl = 0.5 * (var + mean ** 2 - 1.0 - np.log(np.maximum(var, 1e-12)))
  return {'mean': mean, 'var': var, 'kl': kl,
          'mean_kl': float(kl.mean()), 'median_kl': float(np.median(kl)),
          'low_variance_dims': int((var < 1e-2).sum()), 'mean_abs_mean': float(np.abs(mean).mean()),
          'mean_var': float(var.mean()), 'num_frames': int(x.shape[0]), 'num_dims': int(x.shape[1])}


def plot_histograms(frames: np.ndarray, dims: np.ndarray, path: str, title: str,
                    value_range: float = 0.0) -> None:
  """Histogram (100 bins, density, y up to 5) of every frame's value in each of `dims`, N(0, 1) pdf
  in red. value_range 0: each dimension's bins span its data, nothing clipped (the original);
  r > 0: bins over ±r with values beyond clipped into the end bins."""
  cols = min(8, len(dims))
  rows = int(np.ceil(len(dims) / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 1.6 * rows), squeeze=False,
                           sharey=True, sharex=value_range > 0)
  grid = np.linspace(-4, 4, 1000)  # the original draws the pdf over ±4
  pdf = np.exp(-0.5 * grid ** 2) / np.sqrt(2 * np.pi)
  for ax in axes.flat[len(dims):]:
    ax.axis('off')
  for ax, d in zip(axes.flat, dims):
    values = np.asarray(frames[:, d])
    if value_range > 0:
      values = np.clip(values, -value_range, value_range)
    ax.hist(values, bins=100, range=(-value_range, value_range) if value_range > 0 else None,
            density=True, histtype='stepfilled', color='tab:blue', alpha=0.8)
    ax.plot(grid, pdf, color='red', lw=1)
    ax.set_title(f'dim {d}', fontsize=7)
    ax.set_ylim(0, 5)
    ax.tick_params(labelsize=6)
  clipped = f' (values clipped to ±{value_range:g})' if value_range > 0 else ''
  fig.suptitle(title + clipped, fontsize=9)
  fig.tight_layout()
  io.save_figure(fig, path)


def plot_dimension_stats(stats: dict, path: str, title: str) -> None:
  """Per-dimension mean, variance and KL to N(0, 1), dimensions sorted by KL."""
  order = np.argsort(-stats['kl'], kind='stable')
  fig, axes = plt.subplots(1, 3, figsize=(12, 3.0))
  for ax, key, ref, label in ((axes[0], 'mean', 0.0, 'mean'), (axes[1], 'var', 1.0, 'variance'),
                              (axes[2], 'kl', 0.0, 'KL(N(m, v) ‖ N(0, 1)) [nats]')):
    values = stats[key][order] if key == 'mean' else np.maximum(stats[key][order], 1e-12)
    ax.bar(np.arange(len(order)), values, width=1.0, color='tab:blue')
    ax.axhline(ref, color='red', lw=0.8)
    ax.set_title(label, fontsize=9)
    ax.set_xlabel('dimension (sorted by KL)')
    if key != 'mean':
      ax.set_yscale('log')
      ax.set_ylim(bottom=max(min(float(stats[key].min()), ref or 1.0) / 2, 1e-12))
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  io.save_figure(fig, path)
