"""Deterministic 64-bit keys (splitmix64): crop positions and orders as functions of integers."""

import numpy as np

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
  """One round of the splitmix64 finaliser on a Python int (64-bit wrap-around)."""
  x = (x + 0x9E3779B97F4A7C15) & _MASK64
  x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
  x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
  return x ^ (x >> 31)


def mix_key(*values: int) -> int:
  """A 64-bit key that is a deterministic, well-mixed function of the integers `values`."""
  key = 0x243F6A8885A308D3
  for v in values:
    key = _splitmix64(key ^ (int(v) & _MASK64))
  return key


def mix_key_array(key: int, values: np.ndarray) -> np.ndarray:
  """Folds each v of an integer array into `key`, vectorised (uint64).

  mix_key_array(mix_key(*vs), [v])[0] == mix_key(*vs, v).
  """
  x = np.uint64(key & _MASK64) ^ np.asarray(values).astype(np.uint64)
  with np.errstate(over='ignore'):
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return x ^ (x >> np.uint64(31))
