"""Probe-weight analysis: how many latent dimensions a bias-free linear probe relies on per class.

The original (reference-semantics §7) rescales each class's weight vector to [−1, 1] (min-max,
utils/utils.py:120-129 `rescale_between_neg1_and_1` on axis 1), transposes it to (dimensions,
classes) and saves `vowel_classifier_weights.npy/.csv` / `speaker_classifier_weights.npy/.csv`
(post_hoc_analysis/interpretability/main_vowel_classifier_analysis.py:198-211,
main_speakers_analysis.py:65-79); the paper's heatmaps were drawn from those tables offline.
`write_weight_table` writes the same tables. The weights are those of a bias-free probe on raw
features, as the original's; a probe trained on standardised features (probe.standardize=True)
is read mapped back to raw-feature scale (`load_probe_weights`), and the analysis says so.
Here the heatmaps are drawn too (classes × dimensions, dimensions sorted by importance) and
concentration is summarised by numbers computed on the raw weights |w| (per-class min-max rescaling
shifts zero, so it cannot measure concentration): the number of dimensions that hold 50 % / 90 % of
a class's absolute weight and the entropy of p_d = |w_d| / Σ|w| (exp(entropy) = effective number of
dimensions).
"""

import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim_jax import io  # noqa: E402

FRACTIONS = (0.5, 0.9)


class ProbeWeightsError(ValueError):
  """A probe folder whose weights.npz is missing or malformed."""


def rescale_per_class(weights: np.ndarray) -> np.ndarray:
  """The original's `rescale_between_neg1_and_1` on rows: each class (K, D) min-max mapped to [−1, 1]."""
  lo = weights.min(axis=1, keepdims=True)
  hi = weights.max(axis=1, keepdims=True)
  return 2.0 * (weights - lo) / np.maximum(hi - lo, 1e-12) - 1.0


def weight_shares(weights: np.ndarray) -> np.ndarray:
  """p_{k,d} = |w_{k,d}| / Σ_d |w_{k,d}|: each class's distribution of absolute weight (K, D)."""
  a = np.abs(weights)
  return a / np.maximum(a.sum(axis=1, keepdims=True), 1e-30)


def importance_order(weights: np.ndarray) -> np.ndarray:
  """Dimensions sorted by their mean share of the classes' absolute weight, most important first (D,)."""
  return np.argsort(-weight_shares(weights).mean(axis=0), kind='stable')


def dims_for_fraction(weights: np.ndarray, fraction: float) -> np.ndarray:
  """Per class, the fewest dimensions whose |w| sum to at least `fraction` of the class's total (K,)."""
  cumulative = np.cumsum(np.sort(weight_shares(weights), axis=1)[:, ::-1], axis=1)  # (K, D)
  return (cumulative < fraction - 1e-12).sum(axis=1) + 1


def weight_entropy(weights: np.ndarray) -> np.ndarray:
  """Entropy (nats) of each class's absolute-weight distribution p_{k,·} (K,)."""
  p = weight_shares(weights)
  return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)


def concentration(weights: np.ndarray) -> dict:
  """Concentration numbers of a (K, D) weight matrix: per class and averaged over classes."""
  num_dims = weights.shape[1]
  entropy = weight_entropy(weights)
  out = {'num_dims': num_dims, 'num_classes': weights.shape[0]}
  for fraction in FRACTIONS:
    n = dims_for_fraction(weights, fraction)
    pct = int(round(fraction * 100))
    out[f'dims_for_{pct}pct'] = n.tolist()
    out[f'mean_dims_for_{pct}pct'] = float(n.mean())
    out[f'mean_frac_dims_for_{pct}pct'] = float(n.mean() / num_dims)
  out['entropy'] = entropy.tolist()
  out['mean_entropy'] = float(entropy.mean())
  out['mean_normalized_entropy'] = float(entropy.mean() / np.log(num_dims)) if num_dims > 1 else 0.0
  out['mean_effective_dims'] = float(np.exp(entropy).mean())
  return out


def load_probe_weights(path: str) -> tuple[np.ndarray, list[str], bool]:
  """Raw-feature-scale weights (classes, D), class names and whether the probe was trained on
  standardised features, from a probe's weights.npz.

  'weights' (D, classes), when the file has it, is already on the raw-feature scale. Otherwise the
  'kernel' acts on standardised features, logits = ((x − mean) / std)·kernel + bias, so the
  raw-scale weights are kernel / std per dimension (the constant −mean/std·kernel joins the bias).
  """
  if not os.path.exists(path):
    raise ProbeWeightsError(f'{path} does not exist; rerun the probe for that folder')
  with np.load(path, allow_pickle=False) as f:
    key = 'weights' if 'weights' in f else 'kernel'
    if key not in f or f[key].ndim != 2:
      raise ProbeWeightsError(f"{path}: no 2-D 'weights' or 'kernel' (D, classes) array")
    weights = np.asarray(f[key], np.float64)  # (D, K)
    std = np.asarray(f['feature_std'], np.float64) if 'feature_std' in f else np.ones(len(weights))
    if key == 'kernel':
      weights = weights / std[:, None]
    standardized = bool(f['standardized']) if 'standardized' in f else bool(np.any(std != 1.0))
    names = [str(n) for n in f['class_names']] if 'class_names' in f else []
  if len(names) != weights.shape[1]:
    names = [str(i) for i in range(weights.shape[1])]
  return weights.T, names, standardized


# The original's file stem per probe task (main_vowel_classifier_analysis.py:211,
# main_speakers_analysis.py:77); syllables and phones follow the same pattern.
TABLE_STEMS = {'vowels': 'vowel_classifier_weights', 'speakers': 'speaker_classifier_weights',
               'syllables': 'syllable_classifier_weights', 'phones': 'phone_classifier_weights'}


def write_weight_table(weights: np.ndarray, task: str, out_dir: str) -> list[str]:
  """The original's table of a bias-free probe's weights (classes, D): each class min-max rescaled
  to [−1, 1], transposed to (D, classes), as `<stem>.npy` and `<stem>.csv` in `out_dir`."""
  table = rescale_per_class(weights).T  # (D, K)
  os.makedirs(out_dir, exist_ok=True)
  stem = os.path.join(out_dir, TABLE_STEMS.get(task, f'{task}_classifier_weights'))

  def write_npy(tmp):
    with open(tmp, 'wb') as f:  # a file object: given a name, np.save would append '.npy'
      np.save(f, table)

  io.atomic_write(stem + '.npy', write_npy)
  io.atomic_write(stem + '.csv', lambda tmp: np.savetxt(tmp, table, delimiter=','))
  return [stem + '.npy', stem + '.csv']


def plot_weight_heatmap(weights: np.ndarray, class_names: list[str], path: str, title: str,
                        top: int = 32) -> None:
  """Rescaled weights as a classes × dimensions heatmap, dimensions sorted by importance.

  Left: all dimensions; right (when there are more): the `top` most important, with their indices.
  For many classes (e.g. 251 speakers) the rows are not labelled.
  """
  rescaled = rescale_per_class(weights)
  order = importance_order(weights)
  panels = [(order, f'all {len(order)} dimensions (sorted by importance)')]
  if len(order) > top:
    panels.append((order[:top], f'top {top} dimensions'))
  num_classes = len(class_names)
  height = 1.2 + min(0.22 * num_classes, 8.0)
  fig, axes = plt.subplots(1, len(panels), figsize=(4.5 + 4 * len(panels), height), squeeze=False,
                           gridspec_kw={'width_ratios': [2.2, 1][:len(panels)]})
  for ax, (dims, label) in zip(axes[0], panels):
    image = ax.imshow(rescaled[:, dims], aspect='auto', cmap='RdBu_r', vmin=-1, vmax=1,
                      interpolation='nearest')
    ax.set_xlabel(label)
    if num_classes <= 40:
      ax.set_yticks(range(num_classes), class_names, fontsize=7)
    else:
      ax.set_ylabel(f'{num_classes} classes')
    if len(dims) <= top:
      ax.set_xticks(range(len(dims)), [str(d) for d in dims], rotation=90, fontsize=6)
  fig.colorbar(image, ax=axes[0].tolist(), fraction=0.03, label='per-class min-max → [−1, 1]')
  fig.suptitle(title, fontsize=10)
  io.save_figure(fig, path)


def plot_cumulative_weight(weights: np.ndarray, class_names: list[str], path: str,
                           title: str) -> None:
  """Per class: fraction of its absolute weight held by its n largest dimensions, against n."""
  cumulative = np.cumsum(np.sort(weight_shares(weights), axis=1)[:, ::-1], axis=1)  # (K, D)
  n = np.arange(1, cumulative.shape[1] + 1)
  fig, ax = plt.subplots(figsize=(5.5, 3.6))
  few = len(class_names) <= 12
  for k, row in enumerate(cumulative):
    ax.plot(n, row, lw=1.2 if few else 0.5, alpha=1.0 if few else 0.3,
            label=class_names[k] if few else None)
  ax.plot(n, np.median(cumulative, axis=0), color='black', lw=2, label='median class')
  for fraction in FRACTIONS:
    ax.axhline(fraction, color='grey', ls=':', lw=0.8)
  ax.set_xscale('log')
  ax.set_xlabel('number of dimensions (largest |w| first)')
  ax.set_ylabel('share of the class\'s |w|')
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=6, ncol=2)
  io.save_figure(fig, path)


def analyze_probe_weights(probe_dir: str, figure_dir: str, table_dir: str) -> dict:
  """Concentration numbers, the two figures (into `figure_dir`) and the original's weight table
  (into `table_dir`/<probe name>/) for one bias-free probe folder, on raw-feature-scale weights.

  Returns {'probe', 'class_names', 'standardized', 'concentration', 'top_dims', 'figures', 'tables'}.
  """
  weights, class_names, standardized = load_probe_weights(os.path.join(probe_dir, 'weights.npz'))
  name = os.path.basename(os.path.normpath(probe_dir))
  task = io.read_json(os.path.join(probe_dir, 'results.json')).get('task', name.split('_')[0])
  tables = write_weight_table(weights, task, os.path.join(table_dir, name))
  heatmap = os.path.join(figure_dir, f'weights_{name}.png')
  cumulative = os.path.join(figure_dir, f'weights_cumulative_{name}.png')
  stats = concentration(weights)
  plot_weight_heatmap(weights, class_names, heatmap,
                      f'{name}: probe weights, {stats["mean_dims_for_50pct"]:.1f} / '
                      f'{stats["mean_dims_for_90pct"]:.1f} dims hold 50 % / 90 % of |w| (mean class)')
  plot_cumulative_weight(weights, class_names, cumulative, f'{name}: concentration of |w|')
  return {'probe': name, 'class_names': class_names, 'standardized': standardized, 'concentration': stats,
          'top_dims': importance_order(weights)[:16].tolist(),
          'figures': [heatmap, cumulative], 'tables': tables}
