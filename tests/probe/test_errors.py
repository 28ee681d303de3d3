"""Bad input is one line on stderr and exit status 2: no checkpoint, impossible task, bad source."""

import os
import subprocess
import sys

import pytest

from sim_jax.cli import run_main
from sim_jax.probe import run_probe
from tests.conftest import REPO
from tests.probe.helpers import fabricate_workdir
from tests.train.helpers import small_config


def _error_line(capsys, config, workdir, **probe) -> str:
  """The last stderr line of a probe run with config.probe overrides `probe`; exit status 2."""
  config = config.copy_and_resolve_references()
  config.probe.update(probe)
  with pytest.raises(SystemExit) as info:
    run_main(lambda: run_probe(config, workdir))
  assert info.value.code == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err and err[-1].startswith('error: '), err
  return err[-1]


def test_cli_workdir_without_a_training_run(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, 'probe.py'), f'--config={REPO}/configs/demo.py',
       f'--workdir={tmp_path}'], capture_output=True, text=True, cwd=REPO, timeout=300)
  assert proc.returncode == 2
  assert 'Traceback' not in proc.stderr
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and 'no config.json' in last and 'python train.py' in last


@pytest.fixture(scope='module')
def deboer_workdir(tmp_path_factory):
  config = small_config('sim_deboer', channels=8)
  return config, fabricate_workdir(config, str(tmp_path_factory.mktemp('deboer')))


def test_no_checkpoint_lists_what_exists(capsys, deboer_workdir):
  config, workdir = deboer_workdir
  line = _error_line(capsys, config, workdir, checkpoint='7')
  assert 'no checkpoint 7; found: checkpoints/0' in line
  line = _error_line(capsys, config, workdir, checkpoint='newest')
  assert "checkpoint='newest': use 'best', 'latest' or a step number" in line


def test_phones_on_de_boer(capsys, deboer_workdir):
  config, workdir = deboer_workdir
  line = _error_line(capsys, config, workdir, task='phones')
  assert 'cannot run on the deboer corpus (it has no per-frame phone labels)' in line


def test_module_out_of_range(capsys, deboer_workdir):
  config, workdir = deboer_workdir
  assert ("source='module_5': out of range; this sim encoder has 'context', 'module_<i>' for i in "
          "0..2, 'layer_<j>' for j in 0..4") in _error_line(capsys, config, workdir, source='module_5')


def test_bad_settings(capsys, deboer_workdir):
  config, workdir = deboer_workdir
  assert 'config.probe.seeds=0 must be at least 1' in _error_line(capsys, config, workdir, seeds=0)
