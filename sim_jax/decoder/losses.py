"""Reconstruction losses of the decoder (reference-semantics §6.2), pure functions of (pred, target).

  mse       mean squared error of the waveforms
  stft      MSE of power spectrograms (n_fft 1024, hop 256, periodic Hann, centred, reflect padding)
  mel       MSE of log-mel spectrograms (n_fft 4096, hop 2048, 128 mels, slaney-normalised HTK
            filterbank from librosa, 10·log10(max(S, 1e-10)))
  fft       mean |Δ magnitude| + mean |Δ phase| of the whole signal's rfft, Hann-windowed (periodic,
            the signal's length); the original's FFTLoss (decoder/decoder_losses.py:59-83) fixes the
            window at 10240 samples, so it runs only on de Boer words — here any length works
  mse+stft, mse+mel, mse+fft   the sums (weight 1), as the original's MSE_SPECTRAL / MSE_MEL / MSE_FFT
"""

import functools
from typing import Callable

import jax.numpy as jnp
import numpy as np

SAMPLE_RATE = 16000
STFT_FFT, STFT_HOP = 1024, 256
MEL_FFT, MEL_HOP, MEL_BANDS = 4096, 2048, 128
POWER_FLOOR = 1e-10


def hann(n: int) -> np.ndarray:
  """Periodic Hann window of length n (PyTorch's `hann_window(n, periodic=True)`)."""
  return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)


def power_spectrogram(audio, n_fft: int = STFT_FFT, hop: int = STFT_HOP):
  """|STFT|² of (B, T) waveforms, centred with reflect padding: (B, 1 + T // hop, n_fft // 2 + 1)."""
  padded = jnp.pad(audio, ((0, 0), (n_fft // 2, n_fft // 2)), mode='reflect')
  num_frames = 1 + audio.shape[1] // hop
  index = hop * np.arange(num_frames)[:, None] + np.arange(n_fft)[None, :]  # (F, n_fft)
  frames = padded[:, index] * hann(n_fft)  # (B, F, n_fft)
  spectrum = jnp.fft.rfft(frames, axis=-1)
  return jnp.square(spectrum.real) + jnp.square(spectrum.imag)


@functools.lru_cache(maxsize=None)
def mel_filterbank(n_fft: int = MEL_FFT, bands: int = MEL_BANDS,
                   sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """librosa's mel filterbank (HTK scale, slaney area normalisation), (n_fft // 2 + 1, bands)."""
  import librosa
  fb = librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=bands, htk=True, norm='slaney')
  return np.ascontiguousarray(fb.T, dtype=np.float32)


def log_mel_spectrogram(audio):
  """10·log10(max(mel power, 1e-10)) of (B, T) waveforms: (B, 1 + T // 2048, 128)."""
  power = power_spectrogram(audio, MEL_FFT, MEL_HOP)  # (B, F, 2049)
  mel = power @ mel_filterbank()
  return 10.0 * jnp.log10(jnp.maximum(mel, POWER_FLOOR))


def mse_loss(pred, target):
  """Mean squared error of (B, T) waveforms."""
  return jnp.mean(jnp.square(pred - target))


def stft_loss(pred, target):
  """MSE between the power spectrograms of (B, T) waveforms."""
  return mse_loss(power_spectrogram(pred), power_spectrogram(target))


def mel_loss(pred, target):
  """MSE between the log-mel spectrograms of (B, T) waveforms."""
  return mse_loss(log_mel_spectrogram(pred), log_mel_spectrogram(target))


def fft_loss(pred, target):
  """Mean |Δ magnitude| + mean |Δ phase| (radians, not wrapped) of the Hann-windowed rfft of (B, T)
  waveforms, the window as long as the signal."""
  window = hann(pred.shape[-1])
  pred_fft, target_fft = jnp.fft.rfft(pred * window, axis=-1), jnp.fft.rfft(target * window, axis=-1)
  return (jnp.mean(jnp.abs(jnp.abs(pred_fft) - jnp.abs(target_fft)))
          + jnp.mean(jnp.abs(jnp.angle(pred_fft) - jnp.angle(target_fft))))


LOSSES = {'mse': mse_loss, 'stft': stft_loss, 'mel': mel_loss, 'fft': fft_loss}
NAMES = ('mse', 'stft', 'mel', 'fft', 'mse+stft', 'mse+mel', 'mse+fft')  # the original's seven (§6.2)


def reconstruction_loss(name: str) -> Callable:
  """The loss `name`: one of LOSSES or a '+'-joined sum of them, e.g. 'mse+mel'."""
  parts = name.split('+')
  unknown = [p for p in parts if p not in LOSSES]
  if unknown or not name:
    raise ValueError(f'config.decoder.loss={name!r}: use one of {", ".join(NAMES)}')
  fns = [LOSSES[p] for p in parts]
  return lambda pred, target: sum(fn(pred, target) for fn in fns)
