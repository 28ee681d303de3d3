"""config.data.decoded_cache: LibriSpeech read from a memory-mapped int16 copy, on the real fixture."""

import logging
import os

import numpy as np
import pytest

from sim_jax.data import DataError, batches, make_source
from tests.data.helpers import LIBRI, config, one_utterance_root


def _decoded_files(cache) -> list[str]:
  folder = os.path.join(cache, 'librispeech')
  return sorted(f for f in os.listdir(folder) if f.startswith('decoded-') and f.endswith('.int16'))


def _damage_warnings(caplog) -> list[str]:
  return [r.getMessage() for r in caplog.records if 'damaged cache' in r.getMessage()]


@pytest.mark.parametrize('split', ['train', 'test'])
def test_batches_bit_identical_with_and_without_cache(shared_data, tmp_path, split):
  flac = make_source(config('librispeech', LIBRI, tmp_path), split, 'words')
  cached = make_source(config('librispeech', LIBRI, tmp_path, decoded_cache=True), split, 'words')
  assert len(_decoded_files(tmp_path)) == 1 and cached.names == flac.names
  for epoch in range(3):  # fresh crop keys each step and epoch
    pairs = zip(batches(flac, 2, seed=7, epoch=epoch, shuffle=True, drop_last=False),
                batches(cached, 2, seed=7, epoch=epoch, shuffle=True, drop_last=False))
    for a, b in pairs:
      assert a.keys() == b.keys()
      for k in a:
        assert a[k].dtype == b[k].dtype
        np.testing.assert_array_equal(a[k], b[k])
  utterances = make_source(config('librispeech', LIBRI, tmp_path, decoded_cache=True), split,
                           'utterances')
  for i in range(len(flac)):
    whole = utterances.load_utterance(i)
    assert whole.shape == (flac.lengths[i],)
    np.testing.assert_array_equal(whole, flac.load_utterance(i))  # the FLAC reader's, bit for bit
  assert len(_decoded_files(tmp_path)) == 1  # the variants share one cache of the split


def test_truncated_cache_is_rebuilt_with_one_warning(shared_data, tmp_path, caplog):
  c = config('librispeech', LIBRI, tmp_path, decoded_cache=True)
  first = make_source(c, 'test', 'words')
  expected = first.load(np.arange(len(first)), 5)['audio']
  (name,) = _decoded_files(tmp_path)
  path = os.path.join(tmp_path, 'librispeech', name)
  size = os.path.getsize(path)
  assert size == 2 * first.lengths.sum()
  with open(path, 'r+b') as f:
    f.truncate(size // 3)
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    rebuilt = make_source(c, 'test', 'words')
  (warning,) = _damage_warnings(caplog)
  assert path in warning and 'rebuilding it' in warning
  assert os.path.getsize(path) == size and _decoded_files(tmp_path) == [name]
  np.testing.assert_array_equal(rebuilt.load(np.arange(len(first)), 5)['audio'], expected)
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    make_source(c, 'test', 'words')
  assert not _damage_warnings(caplog)
  assert not [f for f in os.listdir(os.path.join(tmp_path, 'librispeech')) if f.endswith('.tmp')]


def test_key_changes_with_root_and_split(shared_data, tmp_path):
  root = tmp_path / 'libri'  # another root: the same split files and links to the same FLACs
  root.mkdir()
  os.symlink(os.path.join(LIBRI, 'LibriSpeech100_labels_split'), root / 'LibriSpeech100_labels_split')
  for folder, _, files in os.walk(os.path.join(LIBRI, 'LibriSpeech')):
    target = root / os.path.relpath(folder, LIBRI)
    target.mkdir(parents=True, exist_ok=True)
    for f in files:
      os.symlink(os.path.join(folder, f), target / f)
  cache = tmp_path / 'cache'
  make_source(config('librispeech', LIBRI, cache, decoded_cache=True), 'train')
  make_source(config('librispeech', LIBRI, cache, decoded_cache=True), 'test')
  make_source(config('librispeech', str(root), cache, decoded_cache=True), 'train')
  names = _decoded_files(cache)
  assert len(names) == 3
  assert sorted(n.split('-')[1] for n in names) == ['test', 'train', 'train']
  make_source(config('librispeech', os.path.relpath(LIBRI), cache, decoded_cache=True), 'train')
  assert _decoded_files(cache) == names  # the root is resolved: a relative path shares the cache


def test_non_16_bit_audio_is_refused(shared_data, tmp_path):
  """The cache holds 16-bit samples: a 24-bit file would lose bits, so it stops with the fix."""
  noise = np.random.default_rng(0).uniform(-0.5, 0.5, 30000).astype(np.float32)
  root, _ = one_utterance_root(tmp_path, noise, subtype='PCM_24')
  make_source(config('librispeech', root, tmp_path / 'cache'), 'train')  # the FLAC reader: fine
  with pytest.raises(DataError, match='19-198-0001.flac: PCM_24 audio.*decoded_cache=False'):
    make_source(config('librispeech', root, tmp_path / 'cache', decoded_cache=True), 'train')
  assert not _decoded_files(tmp_path / 'cache')  # nothing half-written
