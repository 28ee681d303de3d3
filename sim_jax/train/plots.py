"""Training figures: per-module loss curves from metrics.jsonl."""

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from sim_jax import io  # noqa: E402


def _points(records: list[dict], key: str, module: int) -> list[tuple[int, float]]:
  return [(r['step'], r[key][module]) for r in records if key in r and len(r[key]) > module]


def plot_loss_curves(records: list[dict], path: str) -> None:
  """One panel per module: train InfoNCE and total loss per logged step, validation per epoch."""
  sizes = [len(r[k]) for r in records for k in ('train/nce', 'val/nce') if k in r]
  if not sizes:
    return
  num_modules = max(sizes)
  fig, axes = plt.subplots(1, num_modules, figsize=(3.6 * num_modules, 3.0), squeeze=False)
  for i, ax in enumerate(axes[0]):
    for key, style, color, label in (('train/nce', '-', 'tab:blue', 'train InfoNCE'),
                                     ('train/total', ':', 'tab:blue', 'train total'),
                                     ('val/nce', 'o-', 'tab:red', 'validation InfoNCE')):
      pts = _points(records, key, i)
      if pts and (key != 'train/total' or any(abs(t - n) > 1e-6 for (_, t), (_, n) in
                                               zip(pts, _points(records, 'train/nce', i)))):
        ax.plot(*zip(*pts), style, color=color, label=label, markersize=3)
    ax.set_title(f'module {i}')
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel('loss (nats; chance InfoNCE = ln 11 ≈ 2.40)')
  legend = {}  # every line style that any panel drew (the GRU module has no KL, so no 'train total')
  for ax in axes[0]:
    for handle, label in zip(*ax.get_legend_handles_labels()):
      legend.setdefault(label, handle)
  axes[0][-1].legend(list(legend.values()), list(legend), fontsize=7)
  fig.tight_layout()
  io.save_figure(fig, path)
