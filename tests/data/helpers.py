"""Helpers shared by the data tests: configs pointing at ../shared/data and a private cache."""

import os

import numpy as np
import soundfile as sf

from sim_jax.data import default_data_config

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(TESTS))
DATA = os.path.join(os.path.dirname(REPO), 'shared', 'data')
REFERENCE = os.path.join(os.path.dirname(REPO), 'shared', 'reference')
LIBRI = os.path.join(DATA, 'librispeech_mini')
DEBOER = os.path.join(DATA, 'de_boer')


def config(name: str, root: str, cache_dir: str, **overrides):
  """default_data_config(name) with root, cache_dir and any other fields set."""
  c = default_data_config(name)
  c.root = root
  c.cache_dir = str(cache_dir)
  for k, v in overrides.items():
    c[k] = v
  return c


def one_utterance_root(tmp_path, audio: np.ndarray, subtype: str = 'PCM_16') -> tuple[str, str]:
  """A LibriSpeech root whose train split is the one utterance 19-198-0001 (`audio` at 16 kHz,
  written as FLAC of `subtype`); returns (root, FLAC path)."""
  root = tmp_path / 'libri'
  split_dir = root / 'LibriSpeech100_labels_split'
  split_dir.mkdir(parents=True)
  (split_dir / 'train_split.txt').write_text('19-198-0001\n')
  (split_dir / 'test_split.txt').write_text('19-198-0002\n')
  folder = root / 'LibriSpeech' / 'train-clean-100' / '19' / '198'
  folder.mkdir(parents=True)
  path = str(folder / '19-198-0001.flac')
  sf.write(path, audio, 16000, subtype=subtype)
  return str(root), path
