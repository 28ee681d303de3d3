"""The cache folder and its files: keys from settings and file stats, npz / JSON entries checked on load.

Every decoded or parsed input (de Boer audio, LibriSpeech manifests, phone labels, decoded samples)
is cached under `resolve_cache_dir(config.data.cache_dir)`; a damaged entry is reported in one
warning line and rebuilt by its caller.
"""

import hashlib
import json
import os
import zipfile
import zlib

import numpy as np

from sim_jax import io
from sim_jax.data.errors import logger


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
