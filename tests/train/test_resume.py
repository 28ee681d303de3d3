"""Kill-and-resume: interrupted runs end with exactly the parameters of an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from sim_jax import io
from sim_jax.checkpoints import CheckpointError, checkpoint_steps
from sim_jax.workdir import load_trained_encoder
from sim_jax.train.loop import train_and_evaluate
from tests.conftest import REPO
from tests.train.helpers import small_config

ARGS = ['--config=configs/demo.py', '--config.model.channels=8', '--config.model.gru_hidden=4',
        '--config.train.batch_size=4', '--config.train.steps_per_epoch=6', '--config.train.eval_steps=1',
        '--config.train.log_every_steps=1', '--config.train.checkpoint_every_steps=2',
        '--config.data.demo_num_train=48', '--config.data.demo_num_test=8']


def _train(workdir, epochs, **popen):
  cmd = [sys.executable, 'train.py', *ARGS, f'--config.train.num_epochs={epochs}', f'--workdir={workdir}']
  return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          **popen)


def _params(workdir):
  trained = load_trained_encoder(str(workdir), 'latest')
  return trained.step, jax.device_get(trained.variables)


def _signal_at(workdir, step: int, signum) -> subprocess.Popen:
  """A 2-epoch run sent `signum` once it has logged `step` steps; returns it when it has ended."""
  victim = _train(workdir, 2)
  deadline = time.time() + 900
  while time.time() < deadline:
    steps = [r['step'] for r in io.read_jsonl(str(workdir / 'metrics.jsonl'))]
    if steps and max(steps) >= step:
      break
    time.sleep(0.05)
  victim.send_signal(signum)
  victim.wait(timeout=300)
  return victim


@pytest.mark.slow(minutes=4)
def test_stop_after_an_epoch_sigkill_and_ctrl_c_mid_epoch_all_resume_exactly(tmp_path):
  straight, stopped = tmp_path / 'straight', tmp_path / 'stopped'
  killed, interrupted = tmp_path / 'killed', tmp_path / 'interrupted'
  runs = [_train(straight, 2), _train(stopped, 1)]
  for run in runs:
    assert run.wait(timeout=900) == 0, run.stderr.read()[-2000:]
  # SIGKILL in the middle of epoch 2 (after its first mid-epoch checkpoint), then rerun.
  _signal_at(killed, 9, signal.SIGKILL)
  assert max(r['step'] for r in io.read_jsonl(str(killed / 'metrics.jsonl'))) < 12
  # Ctrl-C in epoch 1: the run stops at a step boundary, saves that step and exits 130 — no step lost.
  victim = _signal_at(interrupted, 3, signal.SIGINT)
  stderr = victim.stderr.read()
  assert victim.returncode == 130, stderr[-2000:]
  assert 'checkpoint saved — rerun the same command to resume' in stderr
  last_logged = max(r['step'] for r in io.read_jsonl(str(interrupted / 'metrics.jsonl')))
  assert checkpoint_steps(str(interrupted / 'checkpoints'))[-1] == last_logged < 12
  for workdir in (stopped, killed, interrupted):
    assert _train(workdir, 2).wait(timeout=900) == 0
  step, want = _params(straight)
  assert step == 12
  for workdir in (stopped, killed, interrupted):
    got_step, got = _params(workdir)
    assert got_step == step
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)
  # The metric log of a resumed run equals the uninterrupted one (no duplicated or lost records).
  strip = lambda rs: [{k: v for k, v in r.items() if k != 'samples_per_second'} for r in rs]  # noqa: E731
  for workdir in (killed, interrupted):
    assert strip(io.read_jsonl(str(workdir / 'metrics.jsonl'))) == strip(
        io.read_jsonl(str(straight / 'metrics.jsonl')))


def test_resume_refuses_other_settings_and_allows_more_epochs(tmp_path):
  workdir = str(tmp_path / 'w')

  def config(**overrides):
    c = small_config('demo', channels=8, batch_size=4, steps=2, **overrides)
    c.data.demo_num_train, c.data.demo_num_test = 16, 8
    return c

  train_and_evaluate(config(), workdir)
  before = open(os.path.join(workdir, 'config.json')).read()
  with pytest.raises(CheckpointError, match=r'holds checkpoints made with model.channels=8 \(now 16\), '
                                            r'train.learning_rate=0.003 \(now 0.001\); rerun with those '
                                            r'settings to resume, or train in a new --workdir'):
    train_and_evaluate(config(model__channels=16, train__learning_rate=1e-3), workdir)
  assert open(os.path.join(workdir, 'config.json')).read() == before  # the workdir still loads
  train_and_evaluate(config(train__num_epochs=2, train__log_every_steps=2, data__prefetch=0), workdir)
  assert load_trained_encoder(workdir, 'latest').step == 4
  assert io.read_json(os.path.join(workdir, 'config.json'))['train']['num_epochs'] == 2
