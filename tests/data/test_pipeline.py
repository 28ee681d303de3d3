"""batches(): order, crops, resume, padding/masks, prefetch, throughput, sharding over 4 CPU devices."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from sim_jax.data import batches, make_source, steps_per_epoch
from sim_jax.data.source import ArraySource
from tests.data.helpers import LIBRI, REPO, config


def _toy(n=10, length=4) -> ArraySource:
  audio = np.arange(n * length, dtype=np.float32).reshape(n, length)
  return ArraySource(audio, split='train', variant='words', names=[f'item{i}' for i in range(n)],
                     labels={'label': np.arange(n) % 3}, class_names={'label': ['a', 'b', 'c']})


@pytest.fixture(scope='module')
def libri(shared_data, tmp_path_factory):
  return make_source(config('librispeech', LIBRI, tmp_path_factory.mktemp('cache')), 'test', 'words')


def _collect(it) -> list[dict]:
  with it:
    return [{k: np.asarray(v) for k, v in b.items()} for b in it]


def test_steps_per_epoch():
  assert steps_per_epoch(_toy(10), 3, drop_last=True) == 3
  assert steps_per_epoch(_toy(10), 3, drop_last=False) == 4
  with pytest.raises(ValueError, match='batch_size'):
    steps_per_epoch(_toy(10), 0, drop_last=True)


@pytest.mark.parametrize('prefetch', [0, 2])
def test_shuffle_is_a_function_of_seed_and_epoch(prefetch):
  def run(seed, epoch):
    return np.concatenate([b['index'] for b in _collect(
        batches(_toy(), 2, seed=seed, epoch=epoch, shuffle=True, drop_last=True, prefetch=prefetch))])

  first = run(0, 0)
  assert sorted(first) == list(range(10))
  np.testing.assert_array_equal(run(0, 0), first)
  assert not np.array_equal(run(0, 1), first) and not np.array_equal(run(1, 0), first)
  in_order = _collect(batches(_toy(), 5, seed=0, epoch=3, shuffle=False, drop_last=True))
  assert [list(b['index']) for b in in_order] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


def test_batch_contents_and_dtypes():
  source = _toy()
  (first, *_) = _collect(batches(source, 4, seed=0, epoch=0, shuffle=True, drop_last=True))
  assert set(first) == {'audio', 'label', 'index', 'mask'}
  assert first['audio'].shape == (4, 4) and first['audio'].dtype == np.float32
  assert first['index'].dtype == np.int32 and first['label'].dtype == np.int32
  assert first['mask'].dtype == np.float32
  np.testing.assert_array_equal(first['audio'], source.audio[first['index']])
  np.testing.assert_array_equal(first['label'], first['index'] % 3)


def test_drop_last_and_padding_masks():
  dropped = _collect(batches(_toy(10), 4, seed=0, epoch=0, shuffle=True, drop_last=True))
  assert len(dropped) == 2 and all(b['mask'].sum() == 4 for b in dropped)
  padded = _collect(batches(_toy(10), 4, seed=0, epoch=0, shuffle=True, drop_last=False))
  assert len(padded) == 3 and padded[-1]['audio'].shape == (4, 4)
  np.testing.assert_array_equal(padded[-1]['mask'], [1, 1, 0, 0])
  real = np.concatenate([b['index'][b['mask'] == 1] for b in padded])
  assert sorted(real) == list(range(10))  # every item exactly once
  tiny = _collect(batches(_toy(3), 8, seed=0, epoch=0, shuffle=False, drop_last=False))
  assert len(tiny) == 1 and tiny[0]['mask'].sum() == 3 and tiny[0]['audio'].shape == (8, 4)


def test_resume_mid_epoch_is_exact(libri):
  """Crops depend on (seed, epoch, step): the batches from start_step k are the tail of a full run."""
  full = _collect(batches(libri, 2, seed=5, epoch=2, shuffle=True, drop_last=False))
  tail = _collect(batches(libri, 2, seed=5, epoch=2, shuffle=True, drop_last=False, start_step=1))
  assert len(full) == 3 and len(tail) == 2
  for a, b in zip(full[1:], tail):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  other_epoch = _collect(batches(libri, 5, seed=5, epoch=3, shuffle=False, drop_last=True))
  same_epoch = _collect(batches(libri, 5, seed=5, epoch=2, shuffle=False, drop_last=True))
  assert not np.array_equal(other_epoch[0]['audio'], same_epoch[0]['audio'])  # fresh crops


def test_start_step_out_of_range():
  with pytest.raises(ValueError, match='start_step=6'):
    batches(_toy(10), 2, seed=0, epoch=0, shuffle=True, drop_last=True, start_step=6)


class _Failing(ArraySource):
  def load(self, indices, crop_key):
    if 7 in indices:
      raise RuntimeError('disk on fire')
    return super().load(indices, crop_key)


def test_errors_reach_the_consumer():
  base = _toy()
  source = _Failing(base.audio, split='train', variant='words', names=base.names, labels=base.labels,
                    class_names=base.class_names)
  it = batches(source, 1, seed=0, epoch=0, shuffle=False, drop_last=True, prefetch=2)
  seen = []
  with pytest.raises(RuntimeError, match='disk on fire'):
    for b in it:
      seen.append(int(b['index'][0]))
  assert seen == list(range(7))
  it.close()


def test_close_stops_the_prefetch_thread():
  before = {t.ident for t in threading.enumerate()}
  it = batches(_toy(1000, 16), 2, seed=0, epoch=0, shuffle=True, drop_last=True, prefetch=3)
  next(it)
  time.sleep(0.2)  # the thread fills the queue and blocks
  it.close()
  assert not [t for t in threading.enumerate() if t.ident not in before and t.name.startswith('sim_jax')]
  with pytest.raises(StopIteration):
    next(it)


def test_throughput_is_reported(libri):
  it = batches(libri, 5, seed=0, epoch=0, shuffle=True, drop_last=True)
  assert it.items_per_second == 0.0
  _collect(it)
  assert it.items_loaded == 5 and it.items_per_second > 0 and it.wait_seconds >= 0


_SHARDED = r'''
import numpy as np, jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from sim_jax.data import batches
from tests.data.test_pipeline import _toy
assert jax.device_count() == 4, jax.devices()
sharding = NamedSharding(Mesh(np.asarray(jax.devices()), ('data',)), P('data'))
source = _toy(10)
plain = list(batches(source, 8, seed=3, epoch=1, shuffle=True, drop_last=False))
sharded = list(batches(source, 8, seed=3, epoch=1, shuffle=True, drop_last=False, sharding=sharding))
assert len(plain) == len(sharded) == 2
for p, s in zip(plain, sharded):
  for k in p:
    assert isinstance(s[k], jax.Array) and s[k].sharding == sharding and s[k].shape == p[k].shape
    assert [d.data.shape[0] for d in s[k].addressable_shards] == [2, 2, 2, 2]
    np.testing.assert_array_equal(np.asarray(s[k]), p[k])
try:
  batches(source, 6, seed=0, epoch=0, shuffle=True, drop_last=True, sharding=sharding)
except ValueError as e:
  assert 'not divisible by the 4 devices' in str(e), e
else:
  raise AssertionError('batch 6 on 4 devices was accepted')
print('ok')
'''


def test_sharding_over_four_cpu_devices():
  """Runs in a subprocess: XLA_FLAGS must be set before jax is imported."""
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4', JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', _SHARDED], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0 and result.stdout.strip().endswith('ok'), result.stderr[-3000:]
