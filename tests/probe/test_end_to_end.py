"""Probe runs end to end on the real data: LibriSpeech fixture plumbing, de Boer after a short training."""

import os

import numpy as np
import pytest

from sim_jax.data.librispeech import audio_path
from sim_jax.io import read_json
from sim_jax.probe import run_probe
from sim_jax.train.loop import train_and_evaluate
from tests.probe.helpers import fabricate_workdir
from tests.train.helpers import small_config

LABELLED = {'2911-12359-0007': 508, '4051-11218-0044': 1119}  # phone labels in the fixture excerpt
SPLIT_DIR = 'LibriSpeech100_labels_split'


def _outputs(workdir: str, name: str) -> dict:
  folder = os.path.join(workdir, 'probes', name)
  assert {'results.json', 'confusion.png', 'learning_curve.png', 'weights.npz', 'metrics.jsonl'} <= set(
      os.listdir(folder))
  with np.load(os.path.join(folder, 'weights.npz')) as w:
    return dict(w)


def _cache_entries(workdir: str) -> int:
  return len([d for d in os.listdir(os.path.join(workdir, 'probes', 'cache')) if not d.startswith('.')])


@pytest.mark.slow
def test_librispeech_speakers_and_phones(tmp_path, shared_data):
  """The fixture's test split lists two utterances with phone labels and two without."""
  fixture = os.path.join(shared_data, 'librispeech_mini')
  root = tmp_path / 'librispeech'
  (root / SPLIT_DIR).mkdir(parents=True)
  os.symlink(os.path.join(fixture, 'LibriSpeech'), root / 'LibriSpeech')
  for name in ('train_split.txt', 'converted_aligned_phones.txt'):
    os.symlink(os.path.join(fixture, SPLIT_DIR, name), root / SPLIT_DIR / name)
  (root / SPLIT_DIR / 'test_split.txt').write_text(
      '\n'.join([*LABELLED, '4397-15668-0007', '6476-57446-0019']) + '\n')
  config = small_config('sim_librispeech', channels=8)
  config.data.root = str(root)
  config.data.cache_dir = str(tmp_path / 'data_cache')
  workdir = fabricate_workdir(config, str(tmp_path / 'workdir'))
  config.probe.update(num_epochs=2, batch_size=2, extract_batch_size=2)

  config.probe.task = 'speakers'
  speakers = run_probe(config, workdir)
  assert speakers['num_classes'] == 251 and speakers['evaluation'] == 'crops'
  for name in ('crops', 'utterances'):
    assert speakers['evaluations'][name]['num_test_items'] == 4
    assert speakers['evaluations'][name]['num_test_targets'] == 4
  assert speakers['data']['train_items'] == 4 and speakers['data']['train_crop_sets'] == 2
  # test speakers none of whose listed training utterances is on disk: the probe names them
  with open(os.path.join(fixture, SPLIT_DIR, 'train_split.txt')) as f:
    on_disk = {u.split('-')[0] for u in f.read().split() if os.path.exists(audio_path(fixture, u))}
  test_speakers = {u.split('-')[0] for u in [*LABELLED, '4397-15668-0007', '6476-57446-0019']}
  missing = speakers['data']['test_classes_without_training_items']
  assert missing and sorted(missing) == sorted(test_speakers - on_disk)
  assert _outputs(workdir, 'speakers_context')['kernel'].shape == (4, 251)
  assert _cache_entries(workdir) == 4  # 2 training crop sets, test crops, test utterances

  config.probe.task = 'phones'
  phones = run_probe(config, workdir)
  assert phones['num_classes'] == 41 and phones['evaluation'] == 'frames'
  assert phones['num_test_items'] == 4
  assert phones['num_test_targets'] == sum(LABELLED.values())  # every labelled frame, once
  assert phones['data']['train_items_unlabelled'] == 2
  weights = _outputs(workdir, 'phones_context')
  assert weights['kernel'].shape == (4, 41) and weights['bias'].shape == (41,)
  assert _cache_entries(workdir) == 5  # + training utterances (frames); test utterances rebuilt in place

  config.probe.task = 'speakers'
  again = run_probe(config, workdir)  # every feature comes from the cache
  assert _cache_entries(workdir) == 5
  assert again['accuracy'] == speakers['accuracy']
  assert again['timing']['features_seconds'] < speakers['timing']['features_seconds']


@pytest.mark.slow
def test_de_boer_syllables_and_vowels_after_a_short_training(tmp_path, shared_data):
  config = small_config('sim_deboer', channels=16, batch_size=8, steps=3)
  workdir = str(tmp_path)
  train_and_evaluate(config, workdir)
  rerun = config.copy_and_resolve_references()
  rerun.data.root = ''  # a rerun (here: nothing left to train) reads the root from the workdir
  train_and_evaluate(rerun, workdir)
  config.probe.update(num_epochs=3, seeds=2)

  config.probe.task = 'syllables'
  syllables = run_probe(config, workdir)
  assert syllables['num_classes'] == 9 and syllables['num_test_items'] == 360
  # reference-semantics §4.2: 100 of the 120 test words (3 syllables each) are in the word train split
  assert syllables['data']['test_items_from_encoder_training_words'] == 300
  assert len(syllables['evaluations']['items']['per_seed_accuracy']) == 2
  assert 0.0 <= syllables['accuracy'] <= 1.0 and syllables['chance'] == pytest.approx(1 / 9)
  assert _outputs(workdir, 'syllables_context')['kernel'].shape == (8, 9)

  # the original's interpretability probe: only the bias is set; source and features follow it
  config.probe.update(task='vowels', bias=False, seeds=1)
  config.data.root = ''  # not given again: the probe reads the training run's data.root
  vowels = run_probe(config, workdir)
  assert vowels['num_classes'] == 3 and vowels['num_test_items'] == 360
  weights = _outputs(workdir, 'vowels_module_2_nobias_sample')
  assert weights['kernel'].shape == (16, 3) and 'bias' not in weights and not weights['standardized']
  np.testing.assert_array_equal(weights['weights'], weights['kernel'])  # raw features: the same
  assert [str(c) for c in weights['class_names']] == ['a', 'i', 'u']
  recorded = read_json(os.path.join(workdir, 'probes', 'vowels_module_2_nobias_sample', 'results.json'))
  assert (recorded['source'], recorded['features'], recorded['standardized']) == ('module_2', 'sample', False)
  assert recorded['settings']['learning_rate'] == 1e-3 and recorded['settings']['batch_size'] == 64
  assert recorded['differs_from_original'] == ['num_epochs=3 (original: 50)']
  # the last checkpoint of the run, as the original's downstream scripts load model_{num_epochs-1}
  assert recorded['checkpoint']['step'] == 3
