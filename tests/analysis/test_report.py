"""analyze on a fabricated demo workdir: results.json, missing-section hints, the HTML report in
headless Chromium (no broken images or audio), compare mode and bad input at the CLI."""

import copy
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sim_jax import io
from sim_jax.analysis.run import AnalysisError, analyze
from tests.analysis import helpers
from tests.probe.helpers import fabricate_workdir

SECTIONS = ('run', 'training', 'probes', 'weights', 'latents', 'entanglement', 'disentanglement', 'decoder')


@pytest.fixture(scope='module')
def demo_workdir(tmp_path_factory):
  """An untrained narrow SIM on a small demo corpus, analysed once without probes or decoder."""
  workdir = str(tmp_path_factory.mktemp('analysis') / 'demo')
  config = helpers.narrow_config('demo', **{'data.demo_num_train': 72, 'data.demo_num_test': 40,
                                            'analysis.batch_size': 16, 'analysis.kde_batch_size': 16})
  fabricate_workdir(config, workdir)
  analyze(config, workdir, config_file='configs/demo.py')
  return workdir, config


def test_missing_sections_name_the_commands(demo_workdir):
  workdir, _ = demo_workdir
  results = io.read_json(os.path.join(workdir, 'report', 'results.json'))
  assert set(SECTIONS) <= set(results)
  for key, command in (('training', 'python train.py'), ('probes', 'python probe.py'),
                       ('weights', '--config.probe.bias=False'), ('decoder', 'python decode.py')):
    missing = results[key]['missing']
    assert any(command in c and f'--workdir={workdir}' in c for c in missing['commands']), key
  page = open(os.path.join(workdir, 'report', 'index.html'), encoding='utf-8').read()
  assert 'python decode.py --config=configs/demo.py' in page


def test_latent_and_entanglement_numbers(demo_workdir):
  """The original's data sets: t-SNE fitted on every train syllable of whole loader batches (72 → 64
  with batch 16, main_lat_space.py:88-105), at most tsne_per_class of them plotted; histograms on
  every frame of the train words of whole batches; KDE items from the test words in whole batches,
  counted in items (main_total_correlation.py:105)."""
  workdir, _ = demo_workdir
  results = io.read_json(os.path.join(workdir, 'report', 'results.json'))
  lat = results['latents']['items']['']
  numbers = lat['numbers']
  assert numbers['t-SNE items (fitted)'] == 64 and numbers['t-SNE perplexity'] == 8  # int(√64)
  assert numbers['t-SNE points shown'] == 64  # ≤ 100 per class: all of them
  assert numbers['histogram items'] == 64 and numbers['frames'] == 64 * 64  # 64 frames per word
  assert numbers['dimensions'] == 32
  assert len(lat['details']['kl']) == 32 and len(lat['details']['scatter_channels']) == 3
  ent = results['entanglement']['items']['']
  assert ent['details']['gaussian']['dims'] + ent['details']['gaussian']['constant_dims'] == 32
  rows = [(r['channels'], r['times'], r['max_items'], r['items'], r['samples'], r['capped'])
          for r in ent['details']['kde']]
  assert rows == [(10, 5, 10, 16, 80, False),    # 10 items: one batch of 16 crosses 10
                  (32, 5, -1, 32, 160, False),   # every whole batch of the 40 test words
                  (32, -1, -1, 32, 300, True)]   # every frame: 32 · 64, capped at 300 vectors
  run = results['run']['items']['']['numbers']
  assert run['features'] == 'sample'
  assert results['settings']['effective']['items'] == {'t-SNE': 64, 'histograms': 64,
                                                        'total correlation': 40}
  for group in lat['groups'] + ent['groups']:
    for f in group['files']:
      assert os.path.isfile(os.path.join(workdir, f['path'])), f['path']


def test_disentanglement_section_per_module_and_codes(demo_workdir):
  """Every conv module's means and samples against the demo syllables' factors, each item's figures
  and matrices written; a report made before the section existed gets it, the same numbers again."""
  workdir, config = demo_workdir
  path = os.path.join(workdir, 'report', 'results.json')
  results = io.read_json(path)
  items = results['disentanglement']['items']
  assert set(items) == {f'module_{m} {kind}' for m in range(3) for kind in ('mean', 'sample')}
  for name, item in items.items():
    v = item['values']
    assert v['factors'] == 'speaker, vowel, consonant' and v['items'] == '72 / 40'
    assert item['details']['left_out'] == {'syllable': 'the product of vowel × consonant'}
    assert item['details']['per_seed']['dci_disentanglement'] == [v['dci_disentanglement']]  # probe.seeds = 1
    for group in item['groups']:
      for f in group['files']:
        assert os.path.isfile(os.path.join(workdir, f['path'])), f['path']
    with np.load(os.path.join(workdir, 'report', 'disentanglement',
                              f'disentanglement_{name.replace(" ", "_")}.npz')) as m:
      assert m['mi'].shape == m['importance'].shape == m['sap_matrix'].shape == (32, 3)
      np.testing.assert_allclose(m['importance'].sum(0), 1.0, rtol=1e-6)
      np.testing.assert_allclose(m['normalized_mi'] * m['factor_entropy'], m['mi'])
  assert 0 <= items['module_2 mean']['values']['active_units'] <= 32
  summary = results['summary']['items']['']['values']
  assert summary['disentanglement/mig'] == items['module_2 sample']['values']['mig']  # the analysed codes
  del results['disentanglement']
  io.write_json(path, results)
  again = analyze(config, workdir, reuse=True)['disentanglement']['items']
  for name, item in items.items():
    assert {k: v for k, v in again[name]['values'].items() if k != 'seconds'} == {
        k: v for k, v in item['values'].items() if k != 'seconds'}, name


def test_report_media_open_in_chromium(demo_workdir, tmp_path):
  workdir, config = demo_workdir
  helpers.fake_probe(workdir, 'vowels_module_2_nobias', ['a', 'i', 'u'], 32)
  helpers.fake_probe(workdir, 'speakers_context', [f's{i}' for i in range(8)], 16, seed=1)
  helpers.fake_decoder(workdir, 0)
  results = analyze(config, workdir, reuse=True)
  assert 'missing' not in results['probes'] and 'missing' not in results['decoder']
  weights = results['weights']['items']['vowels_module_2_nobias']
  assert weights['numbers']['classes'] == 3 and weights['numbers']['dimensions'] == 32
  page = os.path.join(workdir, 'report', 'index.html')
  check = helpers.check_media(page, str(tmp_path))
  assert check['bad'] == [] and check['audio'] == 2
  assert check['images'] >= 10  # 5 analysis + 2 weights + 2 probe + 1 decoder figures
  shot = str(tmp_path / 'report.png')
  helpers.screenshot(page, shot, str(tmp_path))
  assert os.path.getsize(shot) > 10000


def test_weight_tables_are_written_and_linked(demo_workdir):
  """The original's per-class rescaled tables of a bias-free probe, linked from the report; a probe
  on standardised features is read on the raw scale and the report says so."""
  workdir, config = demo_workdir
  folder = helpers.fake_probe(workdir, 'vowels_module_0_nobias', ['a', 'i', 'u'], 32, seed=2)
  with np.load(os.path.join(folder, 'weights.npz')) as f:
    kernel = f['kernel']
  std = np.linspace(0.5, 2.0, 32)
  io.save_npz(os.path.join(folder, 'weights.npz'), kernel=kernel, feature_mean=np.zeros(32),
              feature_std=std, class_names=np.array(['a', 'i', 'u']))
  results = analyze(config, workdir, reuse=True)
  item = results['weights']['items']['vowels_module_0_nobias']
  assert item['numbers']['probe features'].startswith('standardised')
  table = os.path.join(workdir, 'report', 'weights', 'vowels_module_0_nobias', 'vowel_classifier_weights')
  raw = (kernel / std[:, None]).T  # (classes, dims)
  expected = (2 * (raw - raw.min(axis=1, keepdims=True)) / np.ptp(raw, axis=1, keepdims=True) - 1).T
  np.testing.assert_allclose(np.load(table + '.npy'), expected, rtol=1e-5)
  page = open(os.path.join(workdir, 'report', 'index.html'), encoding='utf-8').read()
  assert 'href="weights/vowels_module_0_nobias/vowel_classifier_weights.csv"' in page


def test_media_check_reports_broken_sources(tmp_path):
  page = tmp_path / 'index.html'
  page.write_text('<html><body><img src="nope.png"><audio src="nope.wav"></audio></body></html>')
  check = helpers.check_media(str(page), str(tmp_path))
  assert sorted(check['bad']) == ['audio nope.wav', 'img nope.png']


def _cli(*args, cwd=helpers.REPO):
  return subprocess.run([sys.executable, os.path.join(helpers.REPO, 'analyze.py'), *args], cwd=cwd,
                        capture_output=True, text=True, timeout=600)


def test_compare_mode_puts_runs_side_by_side(demo_workdir, tmp_path):
  workdir, _ = demo_workdir
  other = str(tmp_path / 'other')
  shutil.copytree(workdir, other)
  out = str(tmp_path / 'compare')
  done = _cli('--workdirs', workdir, other, '--reuse', f'--out={out}')
  assert done.returncode == 0, done.stderr[-2000:]
  page = open(os.path.join(out, 'index.html'), encoding='utf-8').read()
  assert 'sim-jax comparison: demo vs other' in page
  combined = io.read_json(os.path.join(out, 'results.json'))
  assert sorted(os.path.basename(k) for k in combined) == ['demo', 'other']
  assert 'Disentanglement (known factors)' in page and 'module_1 sample' in page
  assert helpers.check_media(os.path.join(out, 'index.html'), str(tmp_path))['bad'] == []


@pytest.mark.parametrize('args,expected', [
    (['--workdir=/nonexistent/run'], 'no config.json'),
    ([], 'give --workdir'),
    (['--workdir=x', 'y'], 'unexpected arguments'),
])
def test_bad_input_is_one_line(args, expected):
  done = _cli(*args)
  assert done.returncode == 2
  lines = done.stderr.strip().splitlines()
  assert lines[-1].startswith('error: ') and expected in lines[-1], done.stderr
  assert 'Traceback' not in done.stderr


@pytest.mark.parametrize('key,value,expected', [
    ('features', 'noisy', "config.analysis.features='noisy'"),
    ('module', 3, 'config.analysis.module=3'),
    ('tsne_split', 'dev', "config.analysis.tsne_split='dev'"),
    ('kde_settings', ((10, 5),), 'config.analysis.kde_settings: (10, 5) is not'),
    ('disentanglement_modules', (3,), 'config.analysis.disentanglement_modules: 3 is not a conv module'),
    ('disentanglement_factors', ('word',), 'config.analysis.disentanglement_factors: word not among'),
])
def test_bad_settings_name_the_key(demo_workdir, key, value, expected):
  workdir, config = demo_workdir
  config = copy.deepcopy(config)
  config.analysis[key] = value
  with pytest.raises(AnalysisError, match=re.escape(expected)):
    analyze(config, workdir)
