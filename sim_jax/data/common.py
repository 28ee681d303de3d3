"""Shared pieces of the data package: the error type, the bad-file policy, caches, keys, audio checks."""

import hashlib
import json
import logging
import os
import struct
import zipfile
import zlib

import numpy as np
import soundfile as sf

from sim_jax import io

logger = logging.getLogger('sim_jax.data')

BAD_FILE_POLICIES = ('error', 'skip')
FRAME_HOP = 160  # samples per 10-ms frame at 16 kHz: the encoder's total stride and the phone-label rate


class DataError(ValueError):
  """Bad or missing input data; the message is one line naming the file (or folder) and the problem."""


class BadFiles:
  """Applies `config.data.on_bad_file` to broken inputs: raise at once ('error') or collect ('skip').

  `what` names the collection in the summary, e.g. 'de Boer words (train)'.
  """

  def __init__(self, policy: str, what: str):
    """`policy`: 'error' | 'skip'."""
    if policy not in BAD_FILE_POLICIES:
      raise ValueError(f"config.data.on_bad_file={policy!r} is not one of "
                       f"{', '.join(BAD_FILE_POLICIES)}")
    self.policy = policy
    self.what = what
    self.skipped: list[tuple[str, str]] = []  # (file, problem)

  def report(self, path: str, problem: str) -> None:
    """A broken file: raises DataError under 'error', records it under 'skip'."""
    if self.policy == 'error':
      raise DataError(f'{path}: {problem} (set config.data.on_bad_file=skip to skip such files)')
    self.skipped.append((path, problem))

  def summary(self, total: int) -> None:
    """Logs one warning line if anything was skipped: the count and the first file and problem."""
    if self.skipped:
      path, problem = self.skipped[0]
      logger.warning('%s: skipped %d bad file(s) of %d (first: %s: %s)', self.what, len(self.skipped),
                     total, path, problem)


def resolve_cache_dir(cache_dir: str) -> str:
  """The cache folder: `cache_dir` if set, else $SIM_JAX_CACHE, else ~/.cache/sim_jax."""
  if cache_dir:
    return os.path.abspath(os.path.expanduser(cache_dir))
  return os.path.abspath(os.path.expanduser(os.environ.get('SIM_JAX_CACHE') or '~/.cache/sim_jax'))


def fingerprint(*parts) -> str:
  """A short stable hash of JSON-serialisable settings (cache keys)."""
  return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def file_stats(paths: list[str]) -> list[tuple[str, int, int]]:
  """(basename, size, mtime_ns) of each path: a cheap content key for caches."""
  out = []
  for path in paths:
    st = os.stat(path)
    out.append((os.path.basename(path), st.st_size, st.st_mtime_ns))
  return out


def load_npz_cache(path: str) -> dict | None:
  """The arrays of a cache file, or None if it is absent or damaged (then the caller rebuilds it).

  npz members carry a CRC-32 that reading checks, so a flipped bit or a cut is found here; it is
  reported in one warning line.
  """
  if not os.path.exists(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
    warn_damaged_cache(path, e)
    return None


def save_json_cache(path: str, data) -> None:
  """Write `data` (JSON) atomically with its sha256, for `load_json_cache` to verify."""
  io.write_json(path, {'sha256': fingerprint(data), 'data': data})


def load_json_cache(path: str):
  """The data `save_json_cache` wrote, or None if the file is absent or damaged (unparsable, or
  not matching its sha256: one warning line; the caller rebuilds it)."""
  if not os.path.exists(path):
    return None
  try:
    held = io.read_json(path)
    if fingerprint(held['data']) != held['sha256']:
      raise ValueError('contents do not match their sha256')
    return held['data']
  except (OSError, ValueError, KeyError, TypeError) as e:
    warn_damaged_cache(path, e)
    return None


def warn_damaged_cache(path: str, problem) -> None:
  """One warning line: the cache file `path` is damaged (`problem`) and is being rebuilt."""
  logger.warning('damaged cache %s (%s); rebuilding it', path,
                 str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem).__name__)


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


def wav_truncation(path: str) -> str | None:
  """For a RIFF/WAVE file: a problem string if its data chunk is cut short, else None.

  libsndfile silently shortens such files; the header's declared size gives the truncation away.
  """
  with open(path, 'rb') as f:
    head = f.read(12)
    if len(head) < 12 or head[:4] != b'RIFF' or head[8:12] != b'WAVE':
      return None
    size = os.fstat(f.fileno()).st_size
    while True:
      chunk = f.read(8)
      if len(chunk) < 8:
        return None
      cid, n = chunk[:4], struct.unpack('<I', chunk[4:])[0]
      if cid == b'data':
        have = size - f.tell()
        if n > have:
          return f'truncated: the header declares {n} bytes of audio, the file holds {have}'
        return None
      f.seek(n + (n & 1), os.SEEK_CUR)


def audio_header(path: str, expected_rate: int):
  """The file's `soundfile.info` if it is a non-empty mono file at `expected_rate`, else a one-line
  problem string (empty, unreadable header, not mono, wrong sample rate, no samples)."""
  if os.path.getsize(path) == 0:
    return 'empty file (0 bytes)'
  try:
    info = sf.info(path)
  except (RuntimeError, sf.LibsndfileError) as e:
    return f'not a readable audio file (corrupt or truncated header): {e}'
  if info.channels != 1:
    return f'{info.channels} channels, expected mono'
  if info.samplerate != expected_rate:
    return f'sample rate {info.samplerate} Hz, expected {expected_rate} Hz'
  if info.frames <= 0:
    return 'no audio samples'
  return info


def read_audio(path: str, expected_rate: int, dtype: str = 'float32') -> np.ndarray | str:
  """Decodes a whole mono file at `expected_rate` to float32 in [-1, 1] (torchaudio's scaling), or
  with dtype='int16' to its 16-bit integer samples (float32 is exactly these / 32768).

  Returns the (T,) array, or a one-line problem string (empty, unreadable, truncated, not mono,
  wrong sample rate) for the caller's bad-file policy.
  """
  info = audio_header(path, expected_rate)
  if isinstance(info, str):
    return info
  cut = wav_truncation(path)
  if cut:
    return cut
  try:
    audio, _ = sf.read(path, dtype=dtype, always_2d=False)  # (T,)
  except (RuntimeError, sf.LibsndfileError) as e:
    return f'corrupt or truncated audio data: {e}'
  if len(audio) < info.frames:
    return f'truncated: the header declares {info.frames} samples, only {len(audio)} could be decoded'
  return audio
