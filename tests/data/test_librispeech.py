"""LibriSpeech on the real 9-utterance fixture in ../shared/data/librispeech_mini (full CPC splits)."""

import logging
import os

import numpy as np
import pytest
import soundfile as sf

from sim_jax.config import model_config
from sim_jax.data import FRAME_HOP, IGNORE_LABEL, DataError, align_frame_labels, batches, make_source
from sim_jax.data.librispeech import PhoneLabels, read_split, speaker_order
from sim_jax.models import layers_frames, module_specs, stack_layers
from tests.data.helpers import LIBRI, config, one_utterance_root

SPLIT_DIR = os.path.join(LIBRI, 'LibriSpeech100_labels_split')
FULL_STACK = stack_layers(module_specs(model_config('sim')))  # the encoder's every conv layer
TRAIN_ON_DISK = ['2911-12359-0007', '4051-11218-0044', '5678-43301-0021', '4397-15668-0003']


@pytest.fixture(scope='module')
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp('cache')


@pytest.fixture(scope='module')
def train(shared_data, cache):
  return make_source(config('librispeech', LIBRI, cache), 'train', 'words')


def test_split_files_and_speaker_order():
  train_ids = read_split(os.path.join(SPLIT_DIR, 'train_split.txt'))
  test_ids = read_split(os.path.join(SPLIT_DIR, 'test_split.txt'))
  assert (len(train_ids), len(test_ids)) == (22830, 5708)
  assert not set(train_ids) & set(test_ids)
  order = speaker_order(SPLIT_DIR)
  assert len(order) == 251 == len(set(order))
  first_seen = list(dict.fromkeys(u.split('-')[0] for u in train_ids))
  assert order[:len(first_seen)] == first_seen  # the original's order: first appearance in train


def test_manifest_labels_and_missing_ids(shared_data, cache, caplog):
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    test = make_source(config('librispeech', LIBRI, cache), 'test', 'words')
  assert len(test) == 5 and test.item_length == 20480 and test.sample_rate == 16000
  warnings = [r.getMessage() for r in caplog.records if 'no audio' in r.getMessage()]
  assert len(warnings) <= 1  # reported once per split file (it may have been reported already)
  order = speaker_order(SPLIT_DIR)
  assert test.class_names['speaker'] == order
  for name, label in zip(test.names, test.labels['speaker']):
    assert order[label] == name.split('-')[0]
  assert test.labels['speaker'].dtype == np.int32


def test_missing_ids_reported_with_count(shared_data, tmp_path, caplog):
  root = tmp_path / 'libri'
  (root / 'LibriSpeech100_labels_split').mkdir(parents=True)
  for split in ('train', 'test'):
    (root / 'LibriSpeech100_labels_split' / f'{split}_split.txt').write_text(
        open(os.path.join(SPLIT_DIR, f'{split}_split.txt')).read())
  utt = '2911-12359-0007'
  target = root / 'LibriSpeech' / 'train-clean-100' / '2911' / '12359'
  target.mkdir(parents=True)
  os.symlink(os.path.join(LIBRI, 'LibriSpeech', 'train-clean-100', '2911', '12359', utt + '.flac'),
             target / (utt + '.flac'))
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    source = make_source(config('librispeech', str(root), tmp_path / 'cache'), 'train')
  assert source.names == [utt]
  (message,) = [r.getMessage() for r in caplog.records if 'no audio' in r.getMessage()]
  assert '22829 of the 22830 ids' in message


def test_crops_start_at_multiples_of_160_in_range(train):
  indices = np.arange(len(train))
  for key in range(200):
    starts = train.crop_starts(indices, key)
    assert np.all(starts % FRAME_HOP == 0)
    assert np.all(starts >= 0) and np.all(starts + 20480 <= train.lengths)
  starts = np.stack([train.crop_starts(indices, k) for k in range(2000)])  # (keys, N)
  longest = int(np.argmax(train.lengths))
  usable = train.lengths[longest] - train.lengths[longest] % 160
  assert starts[:, longest].min() == 0 and starts[:, longest].max() == usable - 20480  # whole range
  assert len(np.unique(starts[:, longest])) > 0.6 * ((usable - 20480) // 160 + 1)


def test_crop_equals_slice_of_full_decode_and_is_reproducible(train):
  batch = train.load(np.array([2, 0, 3]), crop_key=1234)
  assert batch['audio'].shape == (3, 20480) and batch['audio'].dtype == np.float32
  starts = train.crop_starts(np.array([2, 0, 3]), 1234)
  for row, i, start in zip(batch['audio'], [2, 0, 3], starts):
    full, rate = sf.read(train.paths[i], dtype='float32')
    assert rate == 16000
    np.testing.assert_array_equal(row, full[start:start + 20480])
  np.testing.assert_array_equal(train.load(np.array([2, 0, 3]), 1234)['audio'], batch['audio'])
  assert not np.array_equal(train.load(np.array([2, 0, 3]), 1235)['audio'], batch['audio'])
  np.testing.assert_array_equal(batch['speaker'], train.labels['speaker'][[2, 0, 3]])
  np.testing.assert_array_equal(batch['valid'], [1, 1, 1])


def test_short_utterance_is_zero_padded(shared_data, tmp_path):
  """The original crashes on utterances shorter than 20800 samples; we read them whole and pad."""
  short = np.random.default_rng(0).uniform(-0.5, 0.5, 12345).astype(np.float32)
  root, path = one_utterance_root(tmp_path, short)
  source = make_source(config('librispeech', root, tmp_path / 'cache'), 'train')
  audio = source.load(np.array([0]), 99)['audio'][0]
  expected, _ = sf.read(path, dtype='float32')
  np.testing.assert_array_equal(audio[:12345], expected)
  assert np.all(audio[12345:] == 0) and audio.shape == (20480,)


def test_encoder_frame_arithmetic():
  """Reference-semantics §1.1 table."""
  assert [layers_frames(FULL_STACK, t) for t in (20480, 10240, 8821)] == [128, 64, 55]
  layers_01 = ((10, 5, 2), (8, 4, 2))
  assert layers_frames(layers_01, 20480) == 1023


@pytest.mark.parametrize('utt, samples, frames, num_labels',
                         [('2911-12359-0007', 81520, 510, 508), ('4051-11218-0044', 179360, 1121, 1119)])
def test_alignment_on_fixture_utterances(shared_data, cache, utt, samples, frames, num_labels):
  """Real sizes: the alignment has 2 labels fewer than the encoder's frames; the LAST frames get them."""
  source = make_source(config('librispeech', LIBRI, cache), 'train', 'utterances')
  i = source.names.index(utt)
  audio = source.load_utterance(i)
  assert audio.shape == (samples,)
  labels = source.frame_labels(i)
  assert labels.shape == (num_labels,) and labels.dtype == np.int32
  assert labels.min() >= 0 and labels.max() <= 40
  raw = open(os.path.join(SPLIT_DIR, 'converted_aligned_phones.txt')).read().splitlines()
  (line,) = [x for x in raw if x.split()[0] == utt]
  np.testing.assert_array_equal(labels, [int(v) for v in line.split()[1:]])
  assert layers_frames(FULL_STACK, samples) == frames
  aligned = align_frame_labels(frames, labels)
  assert aligned.shape == (frames,)
  np.testing.assert_array_equal(aligned[:frames - num_labels], IGNORE_LABEL)
  np.testing.assert_array_equal(aligned[frames - num_labels:], labels)  # kept: the last frames


def test_align_rejects_more_labels_than_frames():
  with pytest.raises(ValueError, match='outnumber'):
    align_frame_labels(3, np.zeros(4))


def test_utterances_variant_and_padded_batches(shared_data, cache):
  source = make_source(config('librispeech', LIBRI, cache), 'train', 'utterances')
  assert source.item_length is None and sorted(source.names) == sorted(TRAIN_ON_DISK)
  with pytest.raises(DataError, match='no phone labels for utterance 5678-43301-0021'):
    source.frame_labels(source.names.index('5678-43301-0021'))
  i, j = source.names.index('2911-12359-0007'), source.names.index('4051-11218-0044')
  loaded = source.load(np.array([i, j]), 0)
  assert loaded['audio'].shape == (2, 179360) and list(loaded['length']) == [81520, 179360]
  padded = list(batches(source, 3, seed=0, epoch=0, shuffle=False, drop_last=False))
  assert [b['audio'].shape[1] % 160 for b in padded] == [0, 0]
  assert [list(b['mask']) for b in padded] == [[1, 1, 1], [1, 0, 0]]
  for b in padded:
    assert b['audio'].shape[1] >= b['length'].max() and np.all(b['length'] == source.lengths[b['index']])


def test_phone_labels_cached(shared_data, cache):
  path = os.path.join(SPLIT_DIR, 'converted_aligned_phones.txt')
  first = PhoneLabels(path, str(cache))
  cached = [f for f in os.listdir(cache / 'librispeech') if f.startswith('phones-')]
  assert len(cached) == 1 and not [f for f in os.listdir(cache / 'librispeech') if f.endswith('.tmp')]
  second = PhoneLabels(path, str(cache))
  assert '696-92939-0032' in second
  np.testing.assert_array_equal(first['696-92939-0032'], second['696-92939-0032'])
  assert len(second['696-92939-0032']) == 1645
