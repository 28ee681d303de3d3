"""Fault injection: damaged checkpoints and caches, a FLAC cut mid-audio, a full disk and
SIGKILL while checkpoints are written. Every fault is either survived (the rerun resumes and ends
bit-identical to an uninterrupted run, or a cache is rebuilt) or stops the command with one line
naming the file: never a traceback, never a lost checkpoint.

The training runs are subprocesses of train.py on a tiny demo model (8 channels, 3 steps an epoch)
sharing one XLA compilation cache; one trained workdir (2 epochs: checkpoints 4 and 6) is copied
into each test, and one uninterrupted 3-epoch run is the reference.
"""

import asyncio
import gc
import glob
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from sim_jax.checkpoints import CheckpointError, quiet_abandoned_orbax_reads
from sim_jax.cli import run_main
from sim_jax.data import make_source
from sim_jax.data.cache import load_npz_cache
from sim_jax.probe.features import cached_features, feature_source
from sim_jax.state import create_train_state
from sim_jax.train.loop import train_and_evaluate
from sim_jax.workdir import load_config, load_trained_encoder, training_checkpoints
from tests.conftest import DATA, REPO
from tests.probe.helpers import tiny_trained
from tests.train.helpers import small_config

ARGS = ['--config=configs/demo.py', '--config.model.channels=8', '--config.model.gru_hidden=4',
        '--config.train.batch_size=4', '--config.train.steps_per_epoch=3', '--config.train.eval_steps=1',
        '--config.train.log_every_steps=1', '--config.train.checkpoint_every_steps=2',
        '--config.data.demo_num_train=24', '--config.data.demo_num_test=8']
LIBRI = os.path.join(DATA, 'librispeech_mini')
DEBOER = os.path.join(DATA, 'de_boer')


def _env(cache: str) -> dict:
  return dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS='0',
              JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES='0')


def _command(script: str, workdir, *extra) -> list[str]:
  return [sys.executable, script, *ARGS, *extra, f'--workdir={workdir}']


def _under_file_size_limit(cmd: list[str], limit: int) -> list[str]:
  """`cmd` (a Python command) run with writes past `limit` bytes failing with EFBIG (SIGXFSZ
  ignored), as on a full disk: a small Python prelude sets the limit, then execs it."""
  prelude = ('import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); '
             f'resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); '
             'os.execv(sys.executable, [sys.executable] + sys.argv[1:])')
  return [sys.executable, '-c', prelude, *cmd[1:]]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """(run(script, workdir, *flags, **popen) -> CompletedProcess, the 2-epoch workdir, the 3-epoch one)."""
  base = tmp_path_factory.mktemp('faults')
  env = _env(str(base / 'xla-cache'))

  def run(script, workdir, *extra, file_size_limit=None):
    cmd = _command(script, workdir, *extra)
    if file_size_limit:
      cmd = _under_file_size_limit(cmd, file_size_limit)
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)

  trained, straight = base / 'trained', base / 'straight'
  done = run('train.py', trained, '--config.train.num_epochs=2')
  assert done.returncode == 0, done.stderr[-3000:]
  assert sorted(os.listdir(trained / 'checkpoints')) == ['4', '6']  # keep_recent=2
  assert not os.path.exists(trained / 'best')  # train.select_best is off by default
  shutil.copytree(trained, straight)
  done = run('train.py', straight, '--config.train.num_epochs=3')
  assert done.returncode == 0, done.stderr[-3000:]
  return run, trained, straight


def _copy(trained, tmp_path):
  workdir = tmp_path / 'run'
  shutil.copytree(trained, workdir)
  return workdir


def _flip_bytes(path: str, start: float = 0.5, count: int = 16) -> None:
  data = bytearray(open(path, 'rb').read())
  at = int(len(data) * start)
  for i in range(at, min(at + count, len(data))):
    data[i] ^= 0xFF
  open(path, 'wb').write(bytes(data))


def _damage_checkpoint(checkpoint, start: float = 0.5, count: int = 16) -> None:
  """Flip bytes in every data file of an orbax checkpoint: a file may hold only data no array of
  the checkpoint references any more (OCDBT appends), so damaging one file need not damage it."""
  files = glob.glob(os.path.join(checkpoint, 'default', 'ocdbt.process_0', 'd', '*'))
  assert files, checkpoint
  for path in files:
    _flip_bytes(path, start, count if count > 0 else os.path.getsize(path))


def _assert_same_result(workdir, straight) -> None:
  got, want = load_trained_encoder(str(workdir)), load_trained_encoder(str(straight))
  assert got.step == want.step == 9
  jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(got.variables),
                         jax.device_get(want.variables))


def _one_error_line(stderr: str) -> str:
  """The error line of a command that stopped: no traceback, nothing after it."""
  assert 'Traceback' not in stderr and 'Event loop is closed' not in stderr, stderr[-3000:]
  lines = [line for line in stderr.splitlines() if line.strip()]
  assert lines and lines[-1].startswith('error: '), stderr[-3000:]
  return lines[-1]


@pytest.mark.slow(minutes=1)
def test_bit_flips_in_the_latest_checkpoint_resume_from_the_one_before(runs, tmp_path):
  run, trained, straight = runs
  workdir = _copy(trained, tmp_path)
  _damage_checkpoint(workdir / 'checkpoints' / '6')
  done = run('train.py', workdir, '--config.train.num_epochs=3')
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'warning: checkpoint 6 is damaged' in done.stderr and 'resuming from step 4' in done.stderr
  assert os.path.isdir(workdir / 'checkpoints' / '6.damaged')  # moved aside, not deleted
  _assert_same_result(workdir, straight)
  assert load_trained_encoder(str(workdir), 'best').step == 9  # no best/: the last checkpoint


def test_a_checkpoint_missing_its_commit_marker_is_passed_over(runs, tmp_path, capsys):
  _, trained, _ = runs
  workdir = _copy(trained, tmp_path)
  os.remove(workdir / 'checkpoints' / '6' / 'commit_success.txt')
  _, target = create_train_state(load_config(str(trained)), jax.random.PRNGKey(0))
  checkpoints = training_checkpoints(str(workdir))
  try:
    state = checkpoints.restore(target)
  finally:
    checkpoints.close()
  assert int(state.step) == 4
  assert 'checkpoint 6 is damaged (no commit_success.txt' in capsys.readouterr().err
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['4', '6.damaged']
  want = load_trained_encoder(str(trained), 4).variables['params']
  jax.tree_util.tree_map(np.testing.assert_array_equal, jax.device_get(state.params), jax.device_get(want))


@pytest.mark.slow(minutes=1)
def test_no_intact_checkpoint_is_one_line_for_train_and_probe(runs, tmp_path):
  run, trained, _ = runs
  workdir = _copy(trained, tmp_path)
  for step in ('4', '6'):
    _damage_checkpoint(workdir / 'checkpoints' / step, start=0.3, count=0)  # the back 70 %: undecodable
  done = run('train.py', workdir, '--config.train.num_epochs=3')
  assert done.returncode == 2
  line = _one_error_line(done.stderr)
  assert f'{workdir}/checkpoints: no intact checkpoint' in line and 'delete the workdir' in line
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['4', '6']  # nothing moved: nothing to resume
  done = run('probe.py', workdir)
  assert done.returncode == 2
  line = _one_error_line(done.stderr)
  assert f'checkpoint {workdir}/checkpoints/6 is damaged (unreadable' in line
  with pytest.raises(CheckpointError, match='checkpoints/4 is damaged'):
    load_trained_encoder(str(workdir), 4)


def _deboer_root(tmp_path, spelled: str = 'absolute') -> str:
  """Three real de Boer words (links) under tmp_path/de_boer."""
  folder = tmp_path / 'de_boer' / 'reshuffledv2' / 'train'
  folder.mkdir(parents=True, exist_ok=True)
  for name in ('bababa_1', 'bubuga_1', 'diduba_1'):
    if not os.path.exists(folder / f'{name}.wav'):
      os.symlink(os.path.join(DEBOER, 'reshuffledv2', 'train', f'{name}.wav'), folder / f'{name}.wav')
  root = str(tmp_path / 'de_boer')
  return root if spelled == 'absolute' else os.path.relpath(root)


def _data_config(name: str, root: str, cache):
  config = small_config('gim_deboer' if name == 'deboer' else 'gim_librispeech').data
  config.root, config.cache_dir = root, str(cache)
  return config


DAMAGE = {'bit flip': lambda path: _flip_bytes(path, 0.5, 4),
          'truncated': lambda path: open(path, 'r+b').truncate(os.path.getsize(path) // 2)}


@pytest.mark.parametrize('damage', sorted(DAMAGE))
def test_a_damaged_deboer_cache_is_rebuilt_with_one_warning(shared_data, tmp_path, caplog, damage):
  config = _data_config('deboer', _deboer_root(tmp_path), tmp_path / 'cache')
  first = make_source(config, 'train', 'words')
  (cache,) = glob.glob(str(tmp_path / 'cache' / 'deboer' / '*.npz'))
  DAMAGE[damage](cache)
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    again = make_source(config, 'train', 'words')
  warnings = [r.getMessage() for r in caplog.records if 'damaged cache' in r.getMessage()]
  assert len(warnings) == 1 and cache in warnings[0] and '\n' not in warnings[0]
  np.testing.assert_array_equal(again.audio, first.audio)
  assert load_npz_cache(cache) is not None  # rebuilt in place
  assert glob.glob(str(tmp_path / 'cache' / 'deboer' / '*')) == [cache]  # no temp file left


def test_the_deboer_cache_key_is_the_resolved_path(shared_data, tmp_path, monkeypatch):
  absolute = _deboer_root(tmp_path)
  monkeypatch.chdir(tmp_path)
  make_source(_data_config('deboer', absolute, tmp_path / 'cache'), 'train', 'words')
  make_source(_data_config('deboer', 'de_boer', tmp_path / 'cache'), 'train', 'words')
  make_source(_data_config('deboer', './de_boer/../de_boer/', tmp_path / 'cache'), 'train', 'words')
  assert len(os.listdir(tmp_path / 'cache' / 'deboer')) == 1


@pytest.mark.parametrize('damage', sorted(DAMAGE))
def test_damaged_librispeech_manifest_and_labels_are_rebuilt(shared_data, tmp_path, caplog, damage):
  config = _data_config('librispeech', LIBRI, tmp_path / 'cache')
  first = make_source(config, 'train', 'words')
  first_labels = first.frame_labels(0)
  caches = sorted(glob.glob(str(tmp_path / 'cache' / 'librispeech' / '*')))
  assert [os.path.basename(c).split('-')[0] for c in caches] == ['manifest', 'phones']
  for cache in caches:
    DAMAGE[damage](cache)
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    again = make_source(config, 'train', 'words')
    labels = again.frame_labels(0)
  warned = [c for c in caches if any(c in r.getMessage() and 'damaged cache' in r.getMessage()
                                     for r in caplog.records)]
  assert warned == caches
  np.testing.assert_array_equal(again.lengths, first.lengths)
  np.testing.assert_array_equal(labels, first_labels)


@pytest.mark.parametrize('damage', sorted(DAMAGE))
def test_a_damaged_probe_feature_cache_is_rebuilt(tmp_path, caplog, damage):
  trained = tiny_trained('sim_deboer')
  config = small_config('demo')
  config.data.demo_num_test = 6
  data = make_source(config.data, 'test', 'syllables')
  source, cache = feature_source(trained, 'module_2'), str(tmp_path / 'cache')
  first = cached_features(cache, trained, source, data, data_config=config.data, batch_size=4, frames=True)
  want = np.array(first.frames)  # a copy: the entry's frames are a memory map of the file damaged next
  (entry,) = glob.glob(os.path.join(cache, '*'))
  DAMAGE[damage](os.path.join(entry, 'frames.f32'))
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    again = cached_features(cache, trained, source, data, data_config=config.data, batch_size=4, frames=True)
  (warning,) = [r.getMessage() for r in caplog.records if 'damaged cache' in r.getMessage()]
  assert entry in warning and 'frames.f32 does not match its sha256' in warning
  np.testing.assert_array_equal(np.asarray(again.frames), want)
  assert glob.glob(os.path.join(cache, '*')) == [entry]


def _truncated_libri_root(tmp_path) -> str:
  """A LibriSpeech root whose training FLACs are the fixture's, each cut at 30 % of its bytes:
  intact headers (the manifest sees full lengths), audio that ends early."""
  root = tmp_path / 'libri'
  split = root / 'LibriSpeech100_labels_split'
  split.mkdir(parents=True)
  flacs = sorted(glob.glob(os.path.join(LIBRI, 'LibriSpeech', 'train-clean-100', '*', '*', '*.flac')))
  ids = [os.path.basename(f)[:-5] for f in flacs]
  (split / 'train_split.txt').write_text('\n'.join(ids) + '\n')
  (split / 'test_split.txt').write_text('\n'.join(ids) + '\n')
  for flac in flacs:
    speaker, chapter = flac.split(os.sep)[-3:-1]
    folder = root / 'LibriSpeech' / 'train-clean-100' / speaker / chapter
    folder.mkdir(parents=True, exist_ok=True)
    data = open(flac, 'rb').read()
    (folder / os.path.basename(flac)).write_bytes(data[:int(len(data) * 0.3)])
  return str(root)


def test_a_flac_cut_mid_audio_stops_training_with_one_line_below_the_bar(shared_data, tmp_path, capfd):
  config = small_config('gim_librispeech', channels=8, batch_size=4, steps=1)
  config.data.root, config.data.cache_dir = _truncated_libri_root(tmp_path), str(tmp_path / 'cache')
  with pytest.raises(SystemExit) as exit_:
    run_main(lambda: train_and_evaluate(config, str(tmp_path / 'run')))
  assert exit_.value.code == 2
  err = capfd.readouterr().err
  (line,) = [line for line in err.splitlines() if 'error:' in line]
  assert line.startswith('error: ') and '.flac: ' in line and 'truncated' in line
  assert 'config.data.on_bad_file=skip' in line


def test_a_write_past_the_file_size_limit_is_one_line_and_keeps_the_checkpoints(runs, tmp_path):
  run, trained, _ = runs
  workdir = _copy(trained, tmp_path)
  done = run('train.py', workdir, '--config.train.num_epochs=3', file_size_limit=20_000)
  assert done.returncode == 2
  line = _one_error_line(done.stderr)
  assert line.startswith(f'error: cannot write {workdir}/checkpoints/8: File too large; free at least')
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['4', '6']  # no partial folder
  checkpoints = training_checkpoints(str(workdir))
  try:
    _, target = create_train_state(load_config(str(trained)), jax.random.PRNGKey(0))
    assert int(checkpoints.restore(target).step) == 6  # intact: no warning, nothing moved
  finally:
    checkpoints.close()
  assert sorted(os.listdir(workdir / 'checkpoints')) == ['4', '6']
  # Any other file: one line naming it and the space, and no file or temp file left behind.
  target = tmp_path / 'out' / 'results.json'
  code = ('from sim_jax import io; from sim_jax.cli import run_main; '
          f'run_main(lambda: io.write_json({str(target)!r}, {{"x": "y" * 50000}}))')
  done = subprocess.run(_under_file_size_limit([sys.executable, '-c', code], 20_000), cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 2
  line = _one_error_line(done.stderr)
  assert line == (f'error: cannot write {target}: File too large; free at least 0.1 MB on {target.parent} '
                  '(or raise the file-size limit) and rerun — nothing half-written was left')
  assert os.listdir(target.parent) == []


@pytest.mark.slow(minutes=2)
def test_sigkill_while_checkpoints_are_written_then_resume_bit_identical(runs, tmp_path):
  """Saving every step, the run is killed as soon as a save is seen in progress (plus 0-30 ms),
  three times; each rerun resumes, and the last ends as the uninterrupted run."""
  run, trained, straight = runs
  workdir = _copy(trained, tmp_path)
  cmd = _command('train.py', workdir, '--config.train.num_epochs=3',
                 '--config.train.checkpoint_every_steps=1')
  env = _env(str(straight.parent / 'xla-cache'))
  rng = random.Random(18)
  kills = 0
  for _ in range(3):
    victim = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while victim.poll() is None and time.time() < deadline:
      if any('orbax-checkpoint-tmp' in name for name in os.listdir(workdir / 'checkpoints')):
        time.sleep(rng.uniform(0, 0.03))
        victim.send_signal(signal.SIGKILL)
        kills += 1
        break
      time.sleep(0.002)
    victim.wait(timeout=300)
  assert kills >= 1
  done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
  assert done.returncode == 0, done.stderr[-3000:]
  assert not glob.glob(str(workdir / 'checkpoints' / '*tmp*'))  # unfinished saves cleaned up
  _assert_same_result(workdir, straight)


def _never_retrieved(loop, read) -> None:
  """A future of `loop` that failed with `read`'s exception and is collected unretrieved."""
  future = loop.create_future()
  try:
    read()
  except OSError as e:
    future.set_exception(e)
  del future
  gc.collect()


def test_abandoned_orbax_reads_are_not_logged_other_unretrieved_futures_are(caplog):
  """asyncio logs a collected future's unretrieved exception with a traceback; after a damaged
  checkpoint (one error line) those of orbax's abandoned reads are dropped, and only those, once the
  entry points' call has quietened them."""
  quiet_abandoned_orbax_reads()
  orbax_read, own_read = {}, {}
  exec(compile('def read():\n  raise OSError("damaged shard")\n', '/venv/site-packages/orbax/read.py', 'exec'),
       orbax_read)
  exec(compile('def read():\n  raise OSError("our own failure")\n', '/work/sim_jax/read.py', 'exec'), own_read)
  loop = asyncio.new_event_loop()
  with caplog.at_level(logging.ERROR, logger='asyncio'):
    _never_retrieved(loop, orbax_read['read'])
    _never_retrieved(loop, own_read['read'])
  loop.close()
  logged = [r for r in caplog.records if r.name == 'asyncio']
  assert len(logged) == 1 and 'exception was never retrieved' in logged[0].getMessage()
  assert str(logged[0].exc_info[1]) == 'our own failure'
