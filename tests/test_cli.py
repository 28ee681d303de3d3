"""Bad command lines, through the real entry points: one line on stderr naming the flag, exit 2."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _run(script, *args):
  proc = subprocess.run([sys.executable, os.path.join(REPO, script), *args, '--workdir=/nonexistent'],
                        capture_output=True, text=True, cwd=REPO, timeout=120)
  lines = proc.stderr.strip().splitlines()
  assert proc.returncode == 2, proc.stderr
  assert 'Traceback' not in proc.stderr and len(lines) == 1, proc.stderr
  return lines[0]


@pytest.mark.parametrize('script', ['train.py', 'probe.py', 'decode.py', 'analyze.py'])
def test_misspelt_override_names_the_flag_and_the_key(script):
  line = _run(script, '--config=configs/demo.py', '--config.train.num_epoch=3')
  assert line == ('error: --config.train.num_epoch: config.train has no key "num_epoch"; '
                  'did you mean "num_epochs"?')


def test_unknown_section_key_in_another_section_and_path_below_a_value():
  assert _run('train.py', '--config=configs/demo.py', '--config.trian.x=1') == (
      'error: --config.trian.x: config has no key "trian"; did you mean "train"?')
  assert _run('train.py', '--config=configs/demo.py', '--config.data.batch_size=2') == (
      'error: --config.data.batch_size: config.data has no key "batch_size"; '
      '"batch_size" is in config.analysis, config.decoder, config.probe, config.train')
  assert _run('train.py', '--config=configs/demo.py', '--config.data.name.x=1') == (
      'error: --config.data.name.x: config.data.name is a value (str), not a section')


def test_the_bad_one_of_several_overrides_is_named():
  assert _run('train.py', '--config=configs/demo.py', '--config.probe.seed=1', '--config.train.seed=2',
              '--config.train.num_epochs=2').startswith(
      'error: --config.train.seed: config.train has no key "seed"; "seed" is in config, ')


def test_an_error_in_the_config_files_own_code_keeps_its_traceback(tmp_path):
  broken = tmp_path / 'broken.py'
  broken.write_text('from sim_jax.config import base_config\n\n\ndef get_config():\n'
                    '  config = base_config("demo", "sim")\n  config.train.num_epoch += 1\n'
                    '  return config\n')
  proc = subprocess.run([sys.executable, os.path.join(REPO, 'train.py'), f'--config={broken}',
                         '--workdir=/nonexistent'], capture_output=True, text=True, cwd=REPO, timeout=120)
  assert proc.returncode == 1 and 'Traceback' in proc.stderr and 'broken.py' in proc.stderr


def test_value_of_the_wrong_type_and_missing_config_file():
  line = _run('train.py', '--config=configs/demo.py', '--config.train.num_epochs=three')
  assert line.startswith('error: flag --config.train.num_epochs=three: ')
  line = _run('train.py', '--config=configs/no_such_config.py')
  assert line.startswith('error: --config: cannot load the config file: ') and 'no_such_config.py' in line


@pytest.mark.parametrize('script', ['probe.py', 'analyze.py'])
def test_override_without_a_config_file_says_to_pass_one(script):
  assert _run(script, '--config.probe.task=vowels') == (
      'error: --config.probe.task overrides a config file: pass --config=configs/<name>.py too')
