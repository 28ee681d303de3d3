"""The synthetic demo corpus: deterministic, fast, labels consistent, information findable."""

import time

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from sim_jax.config import model_config
from sim_jax.data import make_source
from sim_jax.models import frame_counts, module_specs
from sim_jax.data.demo import PHONES
from tests.data.helpers import config


def _demo(cache, **overrides):
  return config('demo', '', cache, **overrides)


def test_deterministic_and_split_dependent(tmp_path):
  c = _demo(tmp_path, demo_num_train=24, demo_num_test=16)
  a = make_source(c, 'train', 'words')
  b = make_source(c, 'train', 'words')
  np.testing.assert_array_equal(a.audio, b.audio)
  assert a.names == b.names
  np.testing.assert_array_equal(a.frame_labels(3), b.frame_labels(3))
  test = make_source(c, 'test', 'words')
  assert not np.allclose(test.audio[:16], a.audio[:16])
  other = make_source(_demo(tmp_path, demo_num_train=24, demo_seed=1), 'train', 'words')
  assert not np.allclose(other.audio, a.audio)
  # item i depends on (seed, split, variant, i) only, not on how many items there are
  more = make_source(_demo(tmp_path, demo_num_train=32), 'train', 'words')
  np.testing.assert_array_equal(more.audio[:24], a.audio)


def test_words_shapes_and_labels(tmp_path):
  tick = time.perf_counter()
  source = make_source(_demo(tmp_path, demo_num_train=80), 'train', 'words')
  assert time.perf_counter() - tick < 10  # ~0.6 s on an idle core
  assert source.item_length == 10240 and source.audio.shape == (80, 10240)
  assert source.audio.dtype == np.float32 and 0.3 < np.abs(source.audio).max() <= 0.75
  assert np.bincount(source.labels['speaker']).tolist() == [10] * 8
  assert sorted(source.labels) == ['speaker', 'syllable_1', 'syllable_2', 'syllable_3']
  assert source.class_names['phone'] == list(PHONES)
  for i in range(10):
    frames = source.frame_labels(i)
    assert frames.shape == (frame_counts(module_specs(model_config('sim')), 10240)[-1],)
    assert frames.dtype == np.int32
    # the phone sequence (without silences and repeats) spells the word in the name
    spoken = [PHONES[p] for k, p in enumerate(frames) if p != 0 and (k == 0 or frames[k - 1] != p)]
    assert ''.join(spoken) == source.names[i].split('_')[1]


def test_syllables_shapes_and_labels(tmp_path):
  source = make_source(_demo(tmp_path, demo_num_train=72), 'train', 'syllables')
  assert source.audio.shape == (72, 8821)
  assert sorted(source.labels) == ['consonant', 'speaker', 'syllable', 'vowel']
  assert set(np.bincount(source.labels['syllable'], minlength=9)) == {8}
  for i, name in enumerate(source.names):
    syllable = source.class_names['syllable'][source.labels['syllable'][i]]
    assert name.split('_')[1] == syllable and 'aiu'[source.labels['vowel'][i]] == syllable[1]
    assert source.class_names['consonant'][source.labels['consonant'][i]] == syllable[0] == 'bdg'[
        source.labels['consonant'][i]]
    assert len(source.frame_labels(i)) == 55


def _features(audio: np.ndarray) -> np.ndarray:
  """(N, 3·24) log band energies of three time thirds: a crude stand-in for a learned encoder."""
  frames = audio[:, :audio.shape[1] // 256 * 256].reshape(len(audio), -1, 256)  # (N, F, 256)
  spec = np.abs(np.fft.rfft(frames * np.hanning(256), axis=-1)) ** 2
  bands = np.stack([b.sum(-1) for b in np.array_split(spec[..., 1:97], 24, axis=-1)], -1)  # (N, F, 24)
  loud = bands.sum(-1)
  feats = []
  for item, energy in zip(bands, loud):
    voiced = item[energy > 0.05 * energy.max()]
    feats.append(np.concatenate([np.log(p.mean(0) + 1e-8) for p in np.array_split(voiced, 3)]))
  return np.array(feats)


@pytest.fixture(scope='module')
def syllable_features(tmp_path_factory):
  c = _demo(tmp_path_factory.mktemp('cache'), demo_num_train=288, demo_num_test=144)
  train, test = make_source(c, 'train', 'syllables'), make_source(c, 'test', 'syllables')
  x_train, x_test = _features(train.audio), _features(test.audio)
  mean, std = x_train.mean(0), x_train.std(0) + 1e-6
  return (x_train - mean) / std, train.labels, (x_test - mean) / std, test.labels


@pytest.mark.parametrize('label, chance, minimum', [('speaker', 1 / 8, 0.8), ('vowel', 1 / 3, 0.8),
                                                    ('syllable', 1 / 9, 0.5)])
def test_information_is_findable(syllable_features, label, chance, minimum):
  """A linear probe on band energies finds speaker, vowel and syllable far above chance."""
  x_train, y_train, x_test, y_test = syllable_features
  probe = LogisticRegression(max_iter=2000).fit(x_train, y_train[label])
  accuracy = probe.score(x_test, y_test[label])
  assert accuracy > max(minimum, 2 * chance), accuracy
