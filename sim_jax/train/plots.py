"""Training figures: per-module loss curves from metrics.jsonl."""

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

from sim_jax import io  # noqa: E402


def plot_loss_curves(records: list[dict], path: str) -> None:
  """One panel per module: train total loss per logged step and validation loss per epoch."""
  train = [r for r in records if 'train/total' in r]
  val = [r for r in records if 'val/total' in r]
  if not train:
    return
  num_modules = max(len(r['train/total']) for r in train + val)
  fig, axes = plt.subplots(1, num_modules, figsize=(3.6 * num_modules, 3.0), squeeze=False)
  for i, ax in enumerate(axes[0]):
    pts = [(r['step'], r['train/total'][i]) for r in train if len(r['train/total']) > i]
    if pts:
      ax.plot(*zip(*pts), color='tab:blue', label='train')
    vpts = [(r['step'], r['val/total'][i]) for r in val]
    if vpts:
      ax.plot(*zip(*vpts), 'o-', color='tab:red', label='validation')
    ax.set_title(f'module {i}')
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
  axes[0][0].set_ylabel('loss (InfoNCE + KL weight · KL)')
  axes[0][-1].legend()
  fig.tight_layout()
  io.save_figure(fig, path)
