"""What a probe run leaves in `<workdir>/probes/<name>/`: numbers, figures and the probe weights.

  results.json          accuracy (mean ± std over seeds), loss, chance level, majority-class rate,
                        number of test items, per-class accuracy, per evaluation; the settings used
  confusion.png         row-normalised confusion matrix of the headline evaluation (first seed)
  learning_curve.png    train loss, train and test accuracy per epoch, every seed
  weights.npz           the first seed's probe, read by the interpretability analysis and the
                        decoder: 'weights' (D, C) and, where there is one, 'raw_bias' (C,) on RAW
                        features (logits = x @ weights + raw_bias); the probe's own parameters
                        'kernel' (D, C) and 'bias' (C,) if it has one, which act on standardised
                        features ((x − feature_mean) / feature_std) when 'standardized' is true (else
                        identity statistics: then weights = kernel); 'class_names' (C,)
  metrics.jsonl         the per-epoch numbers (and wandb, when enabled)
"""

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sim_jax import io  # noqa: E402
from sim_jax.probe.linear import raw_scale  # noqa: E402


def score(targets: np.ndarray, preds: np.ndarray, loss: float, num_classes: int) -> dict:
  """Accuracy, loss, confusion matrix (C, C) [target, prediction] and per-class accuracy."""
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (targets, preds), 1)
  support = confusion.sum(1)
  per_class = np.where(support > 0, np.diag(confusion) / np.maximum(support, 1), np.nan)
  return {'accuracy': float(np.mean(targets == preds)) if len(targets) else float('nan'),
          'loss': loss, 'confusion': confusion, 'per_class_accuracy': per_class}


def summarize(per_seed: list[dict], num_classes: int, num_items: int) -> dict:
  """One evaluation over all seeds: mean ± std of accuracy and loss, per-class accuracy (mean),
  chance (1 / classes) and the majority-class rate of the test targets."""
  acc = np.array([s['accuracy'] for s in per_seed])
  loss = np.array([s['loss'] for s in per_seed])
  support = per_seed[0]['confusion'].sum(1)  # the same test targets for every seed
  per_class = np.mean(np.stack([s['per_class_accuracy'] for s in per_seed]), 0)  # NaN: no support
  return {'accuracy': float(acc.mean()), 'accuracy_std': float(acc.std()),
          'loss': float(loss.mean()), 'loss_std': float(loss.std()),
          'chance': 1.0 / num_classes, 'majority': float(support.max() / max(support.sum(), 1)),
          'num_test_items': num_items, 'num_test_targets': int(support.sum()),
          'per_seed_accuracy': acc.tolist(),
          'per_class_accuracy': [None if np.isnan(v) else float(v) for v in per_class],
          'support': support.tolist()}


def plot_confusion(confusion: np.ndarray, class_names: list[str], title: str, path: str) -> None:
  """Row-normalised confusion matrix of the classes that occur (as true or predicted class; a
  251-speaker matrix of a small test set would be nearly blank); names on the axes when few."""
  occur = np.flatnonzero((confusion.sum(0) + confusion.sum(1)) > 0)
  if len(occur) < len(class_names):
    title += f' — the {len(occur)} of {len(class_names)} classes that occur'
    confusion, class_names = confusion[np.ix_(occur, occur)], [class_names[i] for i in occur]
  rows = confusion / np.maximum(confusion.sum(1, keepdims=True), 1)
  n = len(class_names)
  size = min(3.0 + 0.35 * n, 12.0)
  fig, ax = plt.subplots(figsize=(size, size * 0.9))
  image = ax.imshow(rows, cmap='Blues', vmin=0, vmax=1, interpolation='nearest')
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label='fraction of the true class')
  if n <= 45:
    ax.set_xticks(range(n), class_names, rotation=90, fontsize=7 if n > 12 else 9)
    ax.set_yticks(range(n), class_names, fontsize=7 if n > 12 else 9)
  if n <= 12:
    for t in range(n):
      for p in range(n):
        if confusion[t, p]:
          ax.text(p, t, str(confusion[t, p]), ha='center', va='center', fontsize=8,
                  color='white' if rows[t, p] > 0.5 else 'black')
  ax.set_xlabel('predicted')
  ax.set_ylabel('true')
  ax.set_title(title, fontsize=10)
  io.save_figure(fig, path)


def plot_learning_curves(histories: list[list[dict]], chance: float, title: str, path: str) -> None:
  """Per seed: train loss (left), train and test accuracy per epoch (right), chance as a line."""
  fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
  for s, history in enumerate(histories):
    epochs = [h['epoch'] for h in history]
    alpha = 1.0 if s == 0 else 0.35
    ax_loss.plot(epochs, [h['train/loss'] for h in history], color='tab:blue', alpha=alpha,
                 label='train' if s == 0 else None)
    tested = [h for h in history if 'test/loss' in h]
    ax_loss.plot([h['epoch'] for h in tested], [h['test/loss'] for h in tested], 'o-', ms=3,
                 color='tab:red', alpha=alpha, label='test' if s == 0 else None)
    ax_acc.plot(epochs, [h['train/accuracy'] for h in history], color='tab:blue', alpha=alpha,
                label='train' if s == 0 else None)
    ax_acc.plot([h['epoch'] for h in tested], [h['test/accuracy'] for h in tested], 'o-', ms=3,
                color='tab:red', alpha=alpha, label='test' if s == 0 else None)
  ax_acc.axhline(chance, color='gray', ls='--', lw=1, label='chance')
  ax_loss.set_ylabel('cross-entropy')
  ax_acc.set_ylabel('accuracy')
  ax_acc.set_ylim(0, 1)
  for ax in (ax_loss, ax_acc):
    ax.set_xlabel('epoch')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  fig.suptitle(title, fontsize=10)
  fig.tight_layout()
  io.save_figure(fig, path)


def save_weights(path: str, params: dict, norm, class_names: list[str], standardized: bool) -> None:
  """weights.npz of a probe (see the module docstring)."""
  raw = raw_scale(params, norm)
  arrays = {k: np.asarray(v, np.float32) for k, v in params.items()}
  arrays['weights'] = raw['kernel']
  if 'bias' in raw:
    arrays['raw_bias'] = raw['bias']
  io.save_npz(path, **arrays, feature_mean=np.asarray(norm.mean, np.float32),
              feature_std=np.asarray(norm.std, np.float32), standardized=np.array(standardized),
              class_names=np.array(class_names, dtype=str))
