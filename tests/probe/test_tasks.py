"""Tasks per corpus, phone-label alignment (keep the last frames), unlabelled and broken items."""

import numpy as np
import pytest

from sim_jax.data import DataError
from sim_jax.data.source import ArraySource
from sim_jax.probe.features import Features, FeatureSource, ProbeError
from sim_jax.probe.tasks import check_source, class_names, make_task, probe_data


def test_tasks_per_corpus():
  speakers = make_task('speakers', 'librispeech')
  assert speakers.train_variant == 'words'
  assert speakers.evaluations == (('crops', 'words'), ('utterances', 'utterances'))
  phones = make_task('phones', 'librispeech')
  assert phones.frame_wise and phones.init == 'xavier_normal'
  assert make_task('vowels', 'deboer').train_variant == 'syllables'
  assert make_task('phones', 'demo').train_variant == 'words'


@pytest.mark.parametrize('task,corpus,message', [
    ('phones', 'deboer', "cannot run on the deboer corpus (it has no per-frame phone labels); it runs "
                         "on librispeech, demo; on deboer use task syllables or vowels"),
    ('speakers', 'deboer', 'it needs several speakers'),
    ('vowels', 'librispeech', 'on librispeech use task speakers or phones'),
    ('words', 'demo', "config.probe.task='words': use one of speakers, phones, syllables, vowels"),
])
def test_impossible_tasks_are_one_line_errors(task, corpus, message):
  with pytest.raises(ProbeError) as info:
    make_task(task, corpus)
  assert message in str(info.value) and '\n' not in str(info.value)


def test_phones_need_the_label_rate():
  source = FeatureSource('module_0', 0, None, 'z', 8, 20, False)
  with pytest.raises(ProbeError, match="'module_0' has a frame every 20 samples"):
    check_source(make_task('phones', 'demo'), source)
  check_source(make_task('vowels', 'demo'), source)  # time-averaged tasks take any rate


class _Utterances(ArraySource):
  """Five items; items 1 and 3 have no alignment (as most LibriSpeech fixture utterances)."""

  corpus = 'librispeech'

  def __init__(self):
    super().__init__(np.zeros((5, 160), np.float32), split='test', variant='utterances',
                     names=[f'u{i}' for i in range(5)], labels={'speaker': [0, 1, 2, 1, 0]},
                     class_names={'speaker': ['a', 'b', 'c']})

  def frame_labels(self, i):
    if i in (1, 3):
      raise DataError(f'no phone labels for u{i}')
    return np.arange(10 + i, dtype=np.int32) % 41


def test_phone_labels_keep_the_last_frames_and_skip_unlabelled_items():
  source = _Utterances()
  frames_per_item = np.array([12, 13, 13, 15, 17])  # 2, 2, 1, 2, 3 frames more than labels
  offsets = np.concatenate([[0], np.cumsum(frames_per_item)])
  valid = np.array([True, True, True, True, False])  # item 4: a broken file
  feats = Features(np.zeros((5, 3), np.float32), valid, np.zeros((offsets[-1], 3), np.float32), offsets)
  task = make_task('phones', 'librispeech')
  data, unlabelled = probe_data(task, source, feats)
  assert unlabelled == 3
  np.testing.assert_array_equal(data.trainable_items(), [0, 2])
  item0 = data.labels[offsets[0]:offsets[1]]
  np.testing.assert_array_equal(item0[:2], [-1, -1])
  np.testing.assert_array_equal(item0[2:], np.arange(10))
  item2 = data.labels[offsets[2]:offsets[3]]
  np.testing.assert_array_equal(item2, np.concatenate([[-1], np.arange(12)]))
  assert np.all(data.labels[offsets[4]:] == -1)
  assert class_names(task, source) == [str(k) for k in range(41)]  # 41 CPC phone classes


def test_item_labels_and_broken_items():
  source = _Utterances()
  feats = Features(np.ones((5, 3), np.float32), np.array([True, False, True, True, True]))
  data, broken = probe_data(make_task('speakers', 'librispeech'), source, feats)
  assert broken == 1
  np.testing.assert_array_equal(data.labels, [0, -1, 2, 1, 0])
  assert class_names(make_task('speakers', 'librispeech'), source) == ['a', 'b', 'c']
