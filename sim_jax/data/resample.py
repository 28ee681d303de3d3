"""Resampling to 16 kHz: a numpy port of torchaudio's sinc resampler (the original's) and soxr.

`sinc` (default) follows `torchaudio.functional.resample` with its defaults (Hann-windowed sinc,
lowpass width 6, rolloff 0.99, output length ceil(T·new/orig)) and reproduces the inputs of
`../shared/reference/*.npz` to float32 round-off (max abs error 1.8e-7, SNR 141 dB; see
tests/data/test_deboer.py). `soxr_hq` (libsoxr, what librosa uses) differs from it by ~51 dB SNR.
"""

import functools
import math

import numpy as np

RESAMPLERS = ('sinc', 'soxr_hq')


@functools.lru_cache(maxsize=8)
def _sinc_kernels(orig: int, new: int, lowpass_filter_width: int, rolloff: float
                  ) -> tuple[np.ndarray, int]:
  """The `new` polyphase filters (new, 2·width + orig) of the reduced ratio orig:new, and width."""
  base = min(orig, new) * rolloff
  width = math.ceil(lowpass_filter_width * orig / base)
  taps = np.arange(-width, width + orig, dtype=np.float32) / orig  # (K,)
  phases = -np.arange(new, dtype=np.float32)[:, None] / new        # (new, 1)
  t = np.clip((phases + taps[None]) * base, -lowpass_filter_width, lowpass_filter_width)  # (new, K)
  window = np.cos(t * np.pi / lowpass_filter_width / 2) ** 2
  t = t * np.pi
  safe = np.where(t == 0, 1.0, t).astype(np.float32)
  kernels = np.where(t == 0, 1.0, np.sin(safe) / safe) * window * (base / orig)
  return kernels.astype(np.float32), width


def sinc_resample(x: np.ndarray, orig_rate: int, new_rate: int, lowpass_filter_width: int = 6,
                  rolloff: float = 0.99) -> np.ndarray:
  """Resamples a (T,) float32 signal like torchaudio's default sinc_interp_hann resampler.

  Returns (ceil(T·new/orig),) float32. Output sample j·new + i is the dot product of the input window
  starting at j·orig (zero-padded by `width` in front) with polyphase filter i.
  """
  if orig_rate == new_rate:
    return np.asarray(x, np.float32)
  g = math.gcd(orig_rate, new_rate)
  orig, new = orig_rate // g, new_rate // g
  kernels, width = _sinc_kernels(orig, new, lowpass_filter_width, rolloff)  # (new, K)
  padded = np.pad(np.asarray(x, np.float32), (width, width + orig))
  windows = np.lib.stride_tricks.sliding_window_view(padded, kernels.shape[1])[::orig]  # (L, K)
  # einsum, not BLAS: these small products are slower under OpenBLAS threading on a busy machine
  out = np.einsum('lk,nk->ln', windows, kernels).reshape(-1)  # (L·new,)
  return out[:math.ceil(new * len(x) / orig)]


def resample(x: np.ndarray, orig_rate: int, new_rate: int, method: str = 'sinc') -> np.ndarray:
  """(T,) float32 at orig_rate -> float32 at new_rate with `method` ('sinc' | 'soxr_hq')."""
  if method == 'sinc':
    return sinc_resample(x, orig_rate, new_rate)
  if method == 'soxr_hq':
    import soxr
    return soxr.resample(np.asarray(x, np.float32), orig_rate, new_rate, quality='HQ').astype(np.float32)
  raise ValueError(f"config.data.resampler={method!r} is not one of {', '.join(RESAMPLERS)}")
