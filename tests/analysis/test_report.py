"""analyze on a fabricated demo workdir: results.json, missing-section hints, the HTML report in
headless Chromium (no broken images or audio), compare mode and bad input at the CLI."""

import copy
import os
import re
import shutil
import subprocess
import sys

import pytest

from sim_jax import io
from sim_jax.analysis.run import AnalysisError, analyze
from tests.analysis import helpers
from tests.probe.helpers import fabricate_workdir

SECTIONS = ('run', 'training', 'probes', 'weights', 'latents', 'entanglement', 'decoder')


@pytest.fixture(scope='module')
def demo_workdir(tmp_path_factory):
  """An untrained narrow SIM on a small demo corpus, analysed once without probes or decoder."""
  workdir = str(tmp_path_factory.mktemp('analysis') / 'demo')
  config = helpers.narrow_config('demo', **{'data.demo_num_test': 60})
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
  workdir, _ = demo_workdir
  results = io.read_json(os.path.join(workdir, 'report', 'results.json'))
  lat = results['latents']['items']['']
  assert lat['numbers']['items'] == 60 and lat['numbers']['dimensions'] == 32
  assert len(lat['details']['kl']) == 32 and len(lat['details']['scatter_channels']) == 3
  ent = results['entanglement']['items']['']
  assert ent['details']['gaussian']['dims'] + ent['details']['gaussian']['constant_dims'] == 32
  assert [row['channels'] for row in ent['details']['kde']] == [10, 32]  # 50, 100, 512 capped at 32
  for group in lat['groups'] + ent['groups']:
    for f in group['files']:
      assert os.path.isfile(os.path.join(workdir, f['path'])), f['path']


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
    ('split', 'dev', "config.analysis.split='dev'"),
])
def test_bad_settings_name_the_key(demo_workdir, key, value, expected):
  workdir, config = demo_workdir
  config = copy.deepcopy(config)
  config.analysis[key] = value
  with pytest.raises(AnalysisError, match=re.escape(expected)):
    analyze(config, workdir)
