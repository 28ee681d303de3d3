"""`python -m sim_jax.reference import`: an original state_dict becomes a workdir the later stages load;
bad input is one line, and a workdir that already holds a run is never touched."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from sim_jax.config import load_config_file
from sim_jax.reference import torch_to_variables, variables_to_torch
from sim_jax.models import module_specs
from sim_jax.state import create_train_state
from sim_jax.workdir import load_trained_encoder
from tests.conftest import REFERENCE, REPO

SIM = os.path.join(REPO, 'configs', 'sim_deboer.py')
NARROW = ['--config.model.channels=32', '--config.model.gru_hidden=16']  # the reference files' widths


def _import(*args):
  return subprocess.run([sys.executable, '-m', 'sim_jax.reference', 'import', *args], capture_output=True,
                        text=True, cwd=REPO, timeout=300)


@pytest.fixture
def sim_state(tmp_path):
  """The SIM reference file's initial weights saved as a plain state_dict .npz."""
  with np.load(os.path.join(REFERENCE, 'sim_deboer_nobn.npz')) as z:
    state = {k[len('param/'):]: z[k] for k in z.files if k.startswith('param/')}
  np.savez(tmp_path / 'state.npz', **state)
  return state, str(tmp_path / 'state.npz')


def test_import_writes_a_loadable_workdir_and_refuses_to_overwrite_one(sim_state, tmp_path):
  state, state_path = sim_state
  workdir = str(tmp_path / 'w')
  run = _import(state_path, f'--config={SIM}', *NARROW, f'--workdir={workdir}')
  assert run.returncode == 0, run.stderr
  trained = load_trained_encoder(workdir, 'best')  # no best/ (select_best off): falls back to the import
  config = load_config_file(SIM)
  config.model.channels, config.model.gru_hidden = 32, 16
  _, target = create_train_state(config, jax.random.PRNGKey(0))
  want = torch_to_variables(state, module_specs(config.model), {'params': target.params, 'batch_stats': {}},
                            source=state_path)['params']
  jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(trained.variables['params']), want)
  assert trained.config.model.channels == 32 and trained.step == 0

  listing = sorted(os.listdir(workdir))
  again = _import(state_path, f'--config={SIM}', *NARROW, f'--workdir={workdir}')
  assert again.returncode == 2 and 'Traceback' not in again.stderr
  assert again.stderr.strip() == (f'error: {workdir} already holds a run (config.json, checkpoints); '
                                  'import into a new --workdir')
  assert sorted(os.listdir(workdir)) == listing


@pytest.mark.parametrize('which, message', [
    ('missing', 'no such file'),
    ('reference', 'is a reference-output file'),
    ('wide', 'has shape'),
    ('typo', 'config.model has no key "chanels"; did you mean "channels"?'),
])
def test_bad_input_is_one_line(sim_state, tmp_path, which, message):
  _, state_path = sim_state
  path = {'missing': str(tmp_path / 'nope.ckpt'),
          'reference': os.path.join(REFERENCE, 'sim_deboer_nobn.npz')}.get(which, state_path)
  overrides = {'wide': [], 'typo': ['--config.model.chanels=32']}.get(which, NARROW)  # 'wide': 512
  run = _import(path, f'--config={SIM}', *overrides, f'--workdir={tmp_path / "w"}')
  lines = run.stderr.strip().splitlines()
  assert run.returncode == 2 and len(lines) == 1 and 'Traceback' not in run.stderr, run.stderr
  assert lines[0].startswith('error: ') and message in lines[0]
  assert not os.path.exists(tmp_path / 'w' / 'checkpoints')


def test_cpc_extra_layers_checkpoint_round_trips(tmp_path):
  """The CPC "extra layers" variant, whose 1x1 no-ReLU layers the original stores as bare convs
  (`encoder.encoder.2.weight`, not `.2.0.weight`): its state_dict imports into a workdir, and our loaded
  weights map back to exactly the original's keys and values."""
  with np.load(os.path.join(REFERENCE, 'cpc_extra_deboer_nobn.npz')) as z:
    state = {k[len('param/'):]: z[k] for k in z.files if k.startswith('param/')}
  assert 'fullmodel.0.encoder.encoder.2.weight' in state and 'fullmodel.0.encoder.encoder.3.0.weight' in state
  np.savez(tmp_path / 'state.npz', **state)
  workdir = str(tmp_path / 'w')
  run = _import(str(tmp_path / 'state.npz'), f'--config={os.path.join(REPO, "configs", "cpc_deboer.py")}',
                '--config.model.cpc_variant=extra_layers', '--config.model.use_batch_norm=False', *NARROW,
                f'--workdir={workdir}')  # the file's model has no BatchNorm
  assert run.returncode == 0, run.stderr
  trained = load_trained_encoder(workdir, 'latest')
  back = variables_to_torch(jax.device_get(trained.variables['params']), module_specs(trained.config.model))
  assert set(back) == set(state)
  for key, value in back.items():
    np.testing.assert_array_equal(value, state[key])
