"""What the decoder stage gives a listener and a reader: 16 kHz WAVs and figures.

File names are kept plain (letters, digits, _ - .) so the HTML report can embed them as they are.
"""

import re

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from sim_jax import io  # noqa: E402
from sim_jax.decoder.losses import SAMPLE_RATE, power_spectrogram  # noqa: E402


def plain_name(text: str) -> str:
  """`text` with every character outside letters, digits, '_', '-', '.' replaced by '_'."""
  return re.sub(r'[^A-Za-z0-9_.-]', '_', text)


def write_wav(path: str, audio: np.ndarray) -> None:
  """Write a mono waveform as 16-bit PCM at 16 kHz, atomically; samples are clipped to [-1, 1]."""
  io.atomic_write(path, lambda tmp: sf.write(tmp, np.clip(np.asarray(audio, np.float32), -1.0, 1.0),
                                             SAMPLE_RATE, subtype='PCM_16', format='WAV'))


def log_spectrogram(audio: np.ndarray) -> np.ndarray:
  """Power spectrogram in dB (floor -100 dB) of one waveform (T,): (frequency bins, frames)."""
  power = np.asarray(power_spectrogram(np.asarray(audio, np.float32)[None]))[0]
  return (10.0 * np.log10(np.maximum(power, 1e-10))).T


def _spectrogram(ax, audio, title: str, vmax: float) -> None:
  ax.imshow(log_spectrogram(audio), origin='lower', aspect='auto', cmap='magma', vmin=vmax - 80,
            vmax=vmax, extent=(0, len(audio) / SAMPLE_RATE, 0, SAMPLE_RATE / 2000))
  ax.set_title(title, fontsize=8)
  ax.tick_params(labelsize=7)


def _top_db(waves) -> float:
  return max(float(log_spectrogram(w).max()) for w in waves)


def plot_comparison(original: np.ndarray, reconstruction: np.ndarray, title: str, path: str) -> None:
  """Waveforms (top) and spectrograms (bottom) of an original beside its reconstruction."""
  fig, axes = plt.subplots(2, 2, figsize=(9, 4.5), sharex=True)
  t = np.arange(len(original)) / SAMPLE_RATE
  vmax = _top_db([original, reconstruction])
  limit = 1.05 * max(np.abs(original).max(), np.abs(reconstruction).max(), 1e-3)
  for col, (wave, name) in enumerate([(original, 'original'), (reconstruction, 'reconstruction')]):
    axes[0, col].plot(t, wave, lw=0.4, color='tab:blue' if col == 0 else 'tab:red')
    axes[0, col].set_ylim(-limit, limit)
    axes[0, col].set_title(f'{title}: {name}', fontsize=9)
    _spectrogram(axes[1, col], wave, '', vmax)
    axes[1, col].set_xlabel('time (s)', fontsize=8)
  axes[1, 0].set_ylabel('kHz', fontsize=8)
  fig.tight_layout()
  io.save_figure(fig, path)


def plot_spectrogram_row(waves: list, titles: list, suptitle: str, path: str) -> None:
  """Spectrograms of several waveforms side by side (a traversal, read left to right)."""
  fig, axes = plt.subplots(1, len(waves), figsize=(1.7 * len(waves) + 0.6, 2.6), sharey=True,
                           squeeze=False)
  vmax = _top_db(waves)
  for ax, wave, title in zip(axes[0], waves, titles):
    _spectrogram(ax, wave, title, vmax)
  axes[0, 0].set_ylabel('kHz', fontsize=8)
  fig.suptitle(suptitle, fontsize=9)
  fig.tight_layout()
  io.save_figure(fig, path)


def plot_decoder_loss(records: list[dict], path: str, loss_name: str) -> None:
  """Train loss per logged step and test loss per epoch."""
  train = [(r['step'], r['train/loss']) for r in records if 'train/loss' in r]
  test = [(r['step'], r['test/loss']) for r in records if 'test/loss' in r]
  if not train:
    return
  fig, ax = plt.subplots(figsize=(4.5, 3.0))
  ax.plot(*zip(*train), color='tab:blue', label='train')
  if test:
    ax.plot(*zip(*test), 'o-', color='tab:red', label='test')
  ax.set_yscale('log')
  ax.set_xlabel('step')
  ax.set_ylabel(f'{loss_name} loss')
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  io.save_figure(fig, path)


def plot_score_curve(ks, relative, title: str, path: str) -> None:
  """Relative error after swapping the top-k differing dimensions, against k (log2 axis)."""
  fig, ax = plt.subplots(figsize=(4.5, 3.2))
  ax.plot(ks, relative, 'o-', color='tab:purple')
  ax.set_xscale('log', base=2)
  ax.set_xticks(ks, [str(k) for k in ks])
  ax.minorticks_off()
  ax.set_xlabel('k: dimensions swapped (largest time-averaged difference first)')
  ax.set_ylabel('relative error')
  ax.set_ylim(bottom=0)
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  fig.tight_layout()
  io.save_figure(fig, path)
