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
from sim_jax.train.checkpoint import load_trained_encoder
from tests.conftest import REPO

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


@pytest.mark.slow(minutes=3)
def test_stop_after_an_epoch_and_sigkill_mid_epoch_both_resume_exactly(tmp_path):
  straight, stopped, killed = tmp_path / 'straight', tmp_path / 'stopped', tmp_path / 'killed'
  runs = [_train(straight, 2), _train(stopped, 1)]
  for run in runs:
    assert run.wait(timeout=900) == 0, run.stderr.read()[-2000:]
  # SIGKILL in the middle of epoch 2 (after its first mid-epoch checkpoint), then rerun.
  victim = _train(killed, 2)
  deadline = time.time() + 900
  while time.time() < deadline:
    steps = [r['step'] for r in io.read_jsonl(str(killed / 'metrics.jsonl'))]
    if steps and max(steps) >= 9:
      break
    time.sleep(0.2)
  victim.send_signal(signal.SIGKILL)
  victim.wait()
  assert max(r['step'] for r in io.read_jsonl(str(killed / 'metrics.jsonl'))) < 12
  for workdir in (stopped, killed):
    assert _train(workdir, 2).wait(timeout=900) == 0
  step, want = _params(straight)
  assert step == 12
  for workdir in (stopped, killed):
    got_step, got = _params(workdir)
    assert got_step == step
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, want)
  # The metric log of a resumed run equals the uninterrupted one (no duplicated or lost records).
  strip = lambda rs: [{k: v for k, v in r.items() if k != 'samples_per_second'} for r in rs]  # noqa: E731
  assert strip(io.read_jsonl(str(killed / 'metrics.jsonl'))) == strip(
      io.read_jsonl(str(straight / 'metrics.jsonl')))
