"""A real two-process run: two `train.py` processes (2 simulated CPU devices each) meet through
`jax.distributed.initialize` on 127.0.0.1 and must train exactly like one process with 4 devices.

Each process records the dataset rows it loads (a wrapper around the pipeline's batch maker), so the
test also checks that each process read only its own half of every global batch. The pair's
checkpoint is then restored in this (single-device) process.
"""

import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from sim_jax import io
from sim_jax.state import create_train_state
from sim_jax.workdir import load_config, training_checkpoints
from tests.conftest import REPO

# Runs train.py with the pipeline's batch maker wrapped to append the rows this process loads.
RUNNER = '''
import json, os, runpy, sys
from sim_jax.data import pipeline
make = pipeline._Epoch.make
def recording(self, step):
  rows = self.indices(step)[0][self.rows]
  with open(os.environ['ROWS_LOG'], 'a') as f:
    f.write(json.dumps({'split': self.source.split, 'step': step, 'rows': rows.tolist()}) + '\\n')
  return make(self, step)
pipeline._Epoch.make = recording
sys.argv = ['train.py'] + sys.argv[1:]
runpy.run_path('train.py', run_name='__main__')
'''
BATCH = 8


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _command(workdir, cache, distributed):
  return [sys.executable, '-c', RUNNER, '--config=configs/demo.py', f'--workdir={workdir}',
          '--config.model.channels=8', '--config.model.gru_hidden=4',
          f'--config.train.batch_size={BATCH}', '--config.train.steps_per_epoch=2',
          '--config.train.num_epochs=1', '--config.train.eval_steps=1',
          '--config.train.log_every_steps=1', f'--config.data.cache_dir={cache}',
          f'--config.train.distributed={distributed}']


def _env(devices, rows_log, **extra):
  return dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS='cpu', ROWS_LOG=str(rows_log),
              XLA_FLAGS=f'--xla_force_host_platform_device_count={devices}', **extra)


def _rows(path):
  return {(r['split'], r['step']): r['rows'] for r in io.read_jsonl(path)}


@pytest.mark.slow(minutes=3)
def test_two_processes_train_like_one_with_four_devices(tmp_path):
  cache = tmp_path / 'cache'
  one = subprocess.run(_command(tmp_path / 'one', cache, False), cwd=REPO,
                       env=_env(4, tmp_path / 'rows_one.jsonl'), capture_output=True, text=True,
                       timeout=600)
  assert one.returncode == 0, one.stderr[-3000:]

  port = _free_port()
  procs = [subprocess.Popen(_command(tmp_path / 'pair', cache, True), cwd=REPO,
                            env=_env(2, tmp_path / f'rows_{i}.jsonl',
                                     JAX_COORDINATOR_ADDRESS=f'127.0.0.1:{port}',
                                     JAX_NUM_PROCESSES='2', JAX_PROCESS_ID=str(i)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for i in range(2)]
  outputs = [p.communicate(timeout=600) for p in procs]
  for p, (_, err) in zip(procs, outputs):
    assert p.returncode == 0, err[-3000:]

  # every global batch: process 0 loaded its first half, process 1 the second, together the batch
  whole = _rows(tmp_path / 'rows_one.jsonl')
  halves = [_rows(tmp_path / f'rows_{i}.jsonl') for i in range(2)]
  # (the prefetch thread may also have made a batch or two past the last step used)
  used = {('train', 0), ('train', 1), ('test', 0)}
  assert used <= set(whole) & set(halves[0]) & set(halves[1])
  for key in set(whole) & set(halves[0]) & set(halves[1]):
    assert len(whole[key]) == BATCH
    assert halves[0][key] == whole[key][:BATCH // 2] and halves[1][key] == whole[key][BATCH // 2:], key

  # the same losses, logged once (by process 0)
  logs = [io.read_jsonl(tmp_path / name / 'metrics.jsonl') for name in ('one', 'pair')]
  assert [r['step'] for r in logs[1]] == [r['step'] for r in logs[0]] == [1, 2, 2]
  for a, b in zip(*logs):
    for key in ('train/total', 'train/nce', 'val/total', 'val/nce'):
      if key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=2e-5, atol=1e-6, err_msg=key)

  # the pair's checkpoint restores in one process and holds the same parameters
  config = load_config(str(tmp_path / 'pair'))
  _, template = create_train_state(config, jax.random.PRNGKey(1))
  restored = [training_checkpoints(str(tmp_path / name)).restore(template) for name in ('one', 'pair')]
  assert int(restored[1].step) == 2
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                         restored[1].params, restored[0].params)
  jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                         restored[1].opt_state, restored[0].opt_state)
