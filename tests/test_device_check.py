"""bench/device_check.sh --smoke: the accelerator check runs end to end on the CPU, so it cannot rot
before a GPU session needs it."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow(minutes=3)
def test_device_check_smoke_writes_every_section(tmp_path):
  out = tmp_path / 'device_check.json'
  run = subprocess.run([os.path.join(REPO, 'bench', 'device_check.sh'), '--smoke', '--out', str(out)],
                       cwd=REPO, env=dict(os.environ, PYTHON=sys.executable), capture_output=True,
                       text=True, timeout=900)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  report = json.loads(out.read_text())
  assert report['backend'] == 'cpu' and report['smoke']
  assert report['reference_check']['passed'], report['reference_check']
  cases = report['train_step']['cases']
  assert {(c['kind'], c['dtype']) for c in cases} == {(k, d) for k in ('sim', 'gim')
                                                      for d in ('float32', 'bfloat16')}
  for case in cases:
    assert 'error' not in case, case
    assert case['samples_per_s'] > 0 and case['gflop_per_item'] > 0 and case['matmul_gflops'] > 0
  assert set(report['data']['librispeech_crops_per_s']) == {'1', '2'}
  training = report['deboer_training']
  assert training['steps'] >= 2 and training['deboer_1000_epochs_minutes'] > 0, training
  assert training['returncode'] in (0, 130)  # 130: stopped by SIGTERM after saving, as asked
  rows = {row['stage'].split(' module')[0]: row for row in report['stages']['rows']}
  assert set(rows) == {'decoder step', 'score'}, rows
  assert all(row['rate'] > 0 and row['gflop_per_item'] > 0 for row in rows.values()), rows
  assert set(report['targets']) == {'reference_check_passes', 'deboer_1000_epochs_minutes',
                                    'librispeech_100_epochs_hours', 'bf16_of_matmul_at_batch_256'}
  assert all(t['met'] is None for name, t in report['targets'].items() if name != 'reference_check_passes')
