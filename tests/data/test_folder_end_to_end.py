"""Your own audio through the command line: a folder built from real recordings (LibriSpeech FLACs, de
Boer words and syllables re-encoded as WAV / FLAC / OGG / MP3 at 8–48 kHz, mono and stereo, with a
labels.csv of speaker / word / vowel columns), then manifest → train → probe (a label column, beating
chance) → decode → analyze, each a subprocess as a user runs it."""

import os
import subprocess
import sys

import pytest

from sim_jax import io
from tests.conftest import REPO
from tests.data.helpers import build_folder

NARROW = ['--config.model.channels=16', '--config.model.gru_hidden=8', '--config.data.item_length=10240']


def _run(*args: str, cache: str) -> subprocess.CompletedProcess:
  done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=1200,
                        env=dict(os.environ, SIM_JAX_CACHE=cache))
  return done


@pytest.mark.slow(minutes=5)
def test_folder_train_probe_decode_analyze(shared_data, tmp_path):
  root = str(tmp_path / 'my_audio')
  made = build_folder(root, syllables_per_vowel=30, words=8)
  cache, workdir = str(tmp_path / 'cache'), str(tmp_path / 'w')
  base = ['--config=configs/sim_folder.py', f'--workdir={workdir}']

  done = _run('-m', 'sim_jax.data.manifest', root, '--split-by', 'word', cache=cache)
  assert done.returncode in (0, 1), done.stderr
  report = done.stdout
  counts = {f: sum(v[0] == f for v in made.values()) for f in ('WAV', 'FLAC', 'MP3', 'OGG')}
  assert all(f'{f} {n}' in report for f, n in counts.items()), report
  assert f'files: {len(made)} ({len(made)} readable)' in report and 'column vowel: 3 classes' in report
  assert 'channels: mono' in report and '2 channels' in report and '8000 Hz' in report

  done = _run('train.py', *base, f'--config.data.root={root}', '--config.data.split_by=word', *NARROW,
              '--config.train.num_epochs=2', '--config.train.steps_per_epoch=4', '--config.train.batch_size=8',
              '--config.train.eval_steps=1', '--config.train.learning_rate=3e-3', cache=cache)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'mixed down to mono' in done.stderr and 'resampled to 16 kHz' in done.stderr
  split = io.read_json(os.path.join(workdir, 'data_split.json'))
  assert sorted(split['train'] + split['test']) == sorted(made) and split['split_by'] == 'word'
  words = lambda names: {made[n][3].split('/')[-1].split('_')[0] for n in names if 'deboer' in n}  # noqa: E731
  assert not words(split['train']) & words(split['test'])  # data.split_by=word: no word in both

  # the data settings come from the training run (root, split_by, item_length): not given again
  probe = ['--config.probe.task=vowel', '--config.probe.source=module_1', '--config.probe.bias=False',
           '--config.probe.features=mean', '--config.probe.standardize=True', '--config.probe.learning_rate=1e-2',
           '--config.probe.num_epochs=30', '--config.probe.train_crops=1', '--config.probe.extract_batch_size=32']
  done = _run('probe.py', *base, *probe, cache=cache)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'data: root=' in done.stderr and 'split_by=word' in done.stderr
  result = io.read_json(os.path.join(workdir, 'probes', 'vowel_module_1_nobias_std', 'results.json'))
  assert result['label'] == 'vowel' and result['class_names'] == ['a', 'i', 'u']
  assert result['label_origin'] == f'{root}/labels.csv column vowel'
  test_vowels = sum(n in split['test'] for n in made if 'syllables' in n)
  assert sum(result['class_counts']['crops']) == test_vowels == result['num_test_items'] - (
      len(split['test']) - test_vowels)  # the clips without a vowel are scored on nothing
  assert sum(result['class_counts']['train']) == sum(n in split['train'] for n in made if 'syllables' in n)
  assert result['chance'] == pytest.approx(1 / 3)
  for name in ('crops', 'utterances'):  # every test syllable is shorter than a crop: the same features
    assert result['evaluations'][name]['accuracy'] > max(result['chance'], result['majority']) + 0.1

  first, second = sorted(n for n in split['test'] if 'syllables' in n)[:2]
  done = _run('decode.py', *base, '--config.decoder.num_epochs=1', '--config.decoder.steps_per_epoch=2',
              '--config.decoder.eval_steps=1', '--config.decoder.batch_size=8', '--config.decoder.score_items=4',
              '--config.decoder.num_reconstructions=1', '--config.decoder.num_samples=1',
              '--config.decoder.interpolation_steps=3', '--config.decoder.partial_dims=4',
              '--config.decoder.sweep_steps=3', '--config.decoder.num_sweeps=1', '--config.probe.task=vowel',
              f'--config.decoder.interpolate_from={first}', f'--config.decoder.interpolate_to={second}', cache=cache)
  assert done.returncode == 0, done.stderr[-3000:]
  manifest = io.read_json(os.path.join(workdir, 'decoder', 'module_0', 'outputs.json'))
  files = [f['path'] for s in manifest['sections'] for f in s['files']]
  plain = [n.replace('/', '_') for n in (first, second)]
  assert f'traversals/interp_{plain[0]}_to_{plain[1]}_00.wav' in files
  assert sum(f.startswith(f'traversals/sweep_{plain[0]}_dim') and f.endswith('.wav') for f in files) == 3

  done = _run('analyze.py', *base, '--config.analysis.label=vowel', '--config.analysis.max_items=60',
              '--config.analysis.batch_size=16', '--config.analysis.kde_batch_size=8',
              '--config.analysis.tsne_max_iter=250', '--config.analysis.kde_repeats=1',
              '--config.analysis.kde_max_vectors=200', '--config.analysis.histogram_dims=4',
              '--config.analysis.kde_settings=((10, 5, 10), (512, -1, -1))', cache=cache)
  assert done.returncode == 0, done.stderr[-3000:]
  results = io.read_json(os.path.join(workdir, 'report', 'results.json'))
  for key in ('training', 'probes', 'weights', 'latents', 'entanglement', 'decoder'):
    assert 'missing' not in results[key], (key, results[key].get('missing'))
  run = results['run']['items']['']['values']
  assert run['dataset'] == 'folder' and run['labels'].split(', ')[0] == 'vowel'
  assert results['latents']['items']['']['details']['scatter_label'] == 'vowel'
  assert results['weights']['items']['vowel_module_1_nobias_std']['values']['classes'] == 3
  assert os.path.isfile(os.path.join(workdir, 'report', 'index.html'))
