"""Atomic writes and the metric log (sim_jax.io)."""

import os
import stat

import numpy as np
import pytest

from sim_jax import io


@pytest.fixture
def umask():
  """Sets a umask for one test and restores the old one."""
  old = os.umask(0o022)
  yield lambda mask: os.umask(mask)
  os.umask(old)


@pytest.mark.parametrize('mask, mode', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask(tmp_path, umask, mask, mode):
  umask(mask)
  io.write_json(str(tmp_path / 'a.json'), {'x': 1})
  io.save_npz(str(tmp_path / 'b.npz'), x=np.arange(3))
  plain = tmp_path / 'plain.txt'
  plain.write_text('made with open()')  # what the process's own files get
  for name in ('a.json', 'b.npz', 'plain.txt'):
    assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == mode, name
  assert stat.S_IMODE(os.stat(plain).st_mode) == mode


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
  path = str(tmp_path / 'r.json')
  io.write_json(path, {'v': 1})

  def fail(tmp):
    with open(tmp, 'w') as f:
      f.write('{"v": 2')  # half written
    raise OSError('disk full')

  with pytest.raises(OSError, match='disk full'):
    io.atomic_write(path, fail)
  assert io.read_json(path) == {'v': 1}
  assert os.listdir(tmp_path) == ['r.json']


def test_save_npz_keeps_the_name(tmp_path):
  path = str(tmp_path / 'w.npz')
  io.save_npz(path, a=np.eye(2))
  with np.load(path) as z:
    np.testing.assert_array_equal(z['a'], np.eye(2))
  assert os.listdir(tmp_path) == ['w.npz']


def test_metric_log_truncate_and_torn_line(tmp_path):
  path = str(tmp_path / 'metrics.jsonl')
  log = io.MetricLog(path)
  for step in (10, 20, 30):
    log.write(step, loss=np.float32(step / 10))
  with open(path, 'a') as f:
    f.write('{"step": 40, "lo')  # a killed run's torn last line
  assert [r['step'] for r in io.read_jsonl(path)] == [10, 20, 30]
  log.truncate(20)
  assert io.read_jsonl(path) == [{'step': 10, 'loss': 1.0}, {'step': 20, 'loss': 2.0}]
