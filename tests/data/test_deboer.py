"""The de Boer corpus on the real files in ../shared/data/de_boer, and the resampler vs the reference."""

import json
import os
import time

import numpy as np
import pytest
import soundfile as sf

from sim_jax.data import make_source
from sim_jax.data.deboer import SYLLABLES
from sim_jax.data.resample import resample, sinc_resample
from tests.data.helpers import DEBOER, REFERENCE, config


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp('cache')


def _reference_words():
  """(names, (4, 10240) inputs) of the reference files: the original's torchaudio-resampled words."""
  with np.load(os.path.join(REFERENCE, 'sim_deboer_nobn.npz')) as z:
    return json.loads(str(z['meta']))['inputs'], z['input'][:, 0]


def _agreement(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float, float]:
  """(max abs error, max abs error / max |ref|, SNR in dB) of ours against ref."""
  err = ours - ref
  return (float(np.abs(err).max()), float(np.abs(err).max() / np.abs(ref).max()),
          float(10 * np.log10(np.sum(ref ** 2) / np.sum(err ** 2))))


def test_sinc_resampler_matches_the_reference_inputs(shared_data):
  """Our numpy port of torchaudio's sinc resampler reproduces the reference inputs to float32 round-off.

  Measured on the 4 reference words: max abs error 1.2e-7 (relative to the peak 2.5e-7), SNR >= 138 dB.
  soxr 'HQ' (librosa's default) agrees only to 51–61 dB SNR (max abs error 7.0e-3, relative 1.4e-2):
  a different anti-alias filter — that is why 'sinc' is the default.
  """
  names, ref = _reference_words()
  for name, r in zip(names, ref):
    x, rate = sf.read(os.path.join(DEBOER, 'reshuffledv2', 'train', name + '.wav'), dtype='float32')
    assert rate == 44100
    max_abs, rel, snr = _agreement(sinc_resample(x, 44100, 16000)[:10240], r)
    assert max_abs < 1e-6 and rel < 2e-6 and snr > 120, (name, max_abs, rel, snr)
    max_abs, rel, snr = _agreement(resample(x, 44100, 16000, 'soxr_hq')[:10240], r)
    assert max_abs < 2e-2 and snr > 45, (name, max_abs, rel, snr)


def test_source_words_equal_the_reference_inputs(shared_data, cache):
  source = make_source(config('deboer', DEBOER, cache), 'train', 'words')
  names, ref = _reference_words()
  ours = source.load(np.array([source.names.index(n) for n in names]), 0)['audio']
  assert ours.shape == (4, 10240) and ours.dtype == np.float32
  np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)


def test_resample_length_is_torchaudios():
  assert len(sinc_resample(np.zeros(12156, np.float32), 22050, 16000)) == 8821  # ceil(12156·320/441)
  assert len(sinc_resample(np.zeros(29988, np.float32), 44100, 16000)) == 10880


def test_words_labels_and_cache(shared_data, cache):
  c = config('deboer', DEBOER, cache)
  tick = time.perf_counter()
  test = make_source(c, 'test', 'words')
  first = time.perf_counter() - tick
  assert len(test) == 171 and test.item_length == 10240 and test.sample_rate == 16000
  assert sorted(test.labels) == ['syllable_1', 'syllable_2', 'syllable_3']
  for name, k in zip(test.names, range(len(test))):
    word = name.split('_')[0]
    assert [SYLLABLES[test.labels[f'syllable_{j + 1}'][k]] for j in range(3)] == \
        [word[0:2], word[2:4], word[4:6]]
  tick = time.perf_counter()
  again = make_source(c, 'test', 'words')
  assert time.perf_counter() - tick < first  # from the cache
  np.testing.assert_array_equal(again.load(np.arange(171), 0)['audio'], test.load(np.arange(171), 0)['audio'])
  files = os.listdir(os.path.join(cache, 'deboer'))
  assert len([f for f in files if f.startswith('words-test-')]) == 1
  assert not [f for f in files if f.endswith('.tmp')]
  make_source(config('deboer', DEBOER, cache, resampler='soxr_hq'), 'test', 'words')
  files = os.listdir(os.path.join(cache, 'deboer'))
  assert len([f for f in files if f.startswith('words-test-')]) == 2  # a changed setting rebuilds


def test_syllables_labels(shared_data, cache):
  test = make_source(config('deboer', DEBOER, cache), 'test', 'syllables')
  assert len(test) == 360 and test.item_length == 8821
  assert test.load(np.arange(3), 0)['audio'].shape == (3, 8821)
  counts = np.bincount(test.labels['syllable'], minlength=9)
  assert list(counts) == [36, 44, 29, 39, 41, 32, 59, 40, 40]  # reference-semantics §4.2
  for i, (name, s, v) in enumerate(zip(test.names, test.labels['syllable'], test.labels['vowel'])):
    assert SYLLABLES[s] == name[-2:] and 'aiu'[v] == name[-1]
    # the factors: consonant, vowel and the syllable's place in its word ({word}_{take}_{position}_{syllable})
    word, _, position, syllable = name.split('_')
    assert 'bdg'[test.labels['consonant'][i]] == syllable[0]
    assert test.labels['position'][i] == int(position) - 1 and word[2 * int(position) - 2:2 * int(position)] == syllable
  assert test.class_names['vowel'] == ['a', 'i', 'u'] and test.class_names['syllable'] == list(SYLLABLES)
  assert test.class_names['consonant'] == ['b', 'd', 'g'] and test.class_names['position'] == ['1', '2', '3']
  assert list(np.bincount(test.labels['position'])) == [120, 120, 120]


@pytest.mark.slow
def test_train_splits(shared_data, cache):
  words = make_source(config('deboer', DEBOER, cache), 'train', 'words')
  syllables = make_source(config('deboer', DEBOER, cache), 'train', 'syllables')
  assert (len(words), len(syllables)) == (680, 2181)
  assert all(240 <= c <= 244 for c in np.bincount(syllables.labels['syllable']))
  assert np.all(np.isfinite(syllables.audio)) and np.abs(syllables.audio).max() <= 1.0


@pytest.mark.parametrize('split, variant', [('train', 'utterances'), ('valid', 'words')])
def test_unknown_options(split, variant):
  with pytest.raises(ValueError, match='is not'):
    make_source(config('deboer', DEBOER, '/tmp'), split, variant)
