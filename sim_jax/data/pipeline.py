"""Batches of a Source: deterministic order and crops, static shapes, sharding, background prefetch.

One call of `batches` iterates one epoch. The item order is a permutation drawn from (seed, epoch)
(identity when shuffle=False); the crops of step s come from the key mix_key(seed, epoch, s), so a run
restarted with start_step=k yields exactly the batches k, k+1, ... of an uninterrupted run.
drop_last=True drops the last partial batch (training); drop_last=False pads it by repeating items
from the start of the order with mask 0 (evaluation: every item is seen exactly once with mask 1).
"""

import logging
import queue
import threading
import time
import numpy as np

from sim_jax.data.keys import mix_key

logger = logging.getLogger('sim_jax.data')
_ORDER_TAG = 0x5EED
_CROP_TAG = 0xC409


def steps_per_epoch(source, batch_size: int, drop_last: bool) -> int:
  """Batches per epoch: floor(N / batch_size) with drop_last, else ceil."""
  if batch_size < 1:
    raise ValueError(f'batch_size must be at least 1, got {batch_size}')
  n = len(source)
  return n // batch_size if drop_last else -(-n // batch_size)


def epoch_order(num_items: int, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
  """(N,) int64 item order of an epoch: a permutation keyed by (seed, epoch), or 0..N-1."""
  if not shuffle:
    return np.arange(num_items, dtype=np.int64)
  rng = np.random.default_rng([_ORDER_TAG, int(seed) % (1 << 63), int(epoch)])
  return rng.permutation(num_items).astype(np.int64)


def crop_key(seed: int, epoch: int, step: int) -> int:
  """The crop key of one step (64-bit int): distinct for every (seed, epoch, step)."""
  return mix_key(_CROP_TAG, seed, epoch, step)


def _local_rows(sharding, batch_size: int) -> np.ndarray:
  """Rows of the global batch held by this process's devices, in ascending order."""
  rows = set()
  for index in sharding.addressable_devices_indices_map((batch_size,)).values():
    rows.update(range(*index[0].indices(batch_size)))
  return np.array(sorted(rows), np.int64)


class _Epoch:
  """The plan of one epoch and the making of its batches (shared with the prefetch thread)."""

  def __init__(self, source, batch_size, seed, epoch, shuffle, drop_last, sharding):
    """Checks the batch size against the mesh and draws the item order."""
    self.source = source
    self.batch_size = batch_size
    self.seed, self.epoch = seed, epoch
    self.num_steps = steps_per_epoch(source, batch_size, drop_last)
    self.order = epoch_order(len(source), seed, epoch, shuffle)
    self.sharding = sharding
    if sharding is not None:
      devices = len(sharding.device_set)
      if batch_size % devices:
        raise ValueError(f'batch size {batch_size} is not divisible by the {devices} devices of the '
                         f'mesh; use a multiple of {devices}')
      self.rows = _local_rows(sharding, batch_size)
    else:
      self.rows = np.arange(batch_size, dtype=np.int64)
    self.items_loaded = 0
    self.load_seconds = 0.0

  def indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Global item indices (B,) int64 and mask (B,) float32 of `step` (padding repeats items, mask 0)."""
    b = self.batch_size
    chosen = self.order[step * b:(step + 1) * b]
    mask = np.zeros(b, np.float32)
    mask[:len(chosen)] = 1.0
    if len(chosen) < b:
      chosen = np.concatenate([chosen, np.resize(self.order, b - len(chosen))])
    return chosen, mask

  def make(self, step: int) -> dict:
    """The batch of `step`: numpy arrays of this process's rows, or global jax Arrays if sharded."""
    tick = time.perf_counter()
    chosen, mask = self.indices(step)
    local = chosen[self.rows]
    key = crop_key(self.seed, self.epoch, step)
    if self.source.item_length is None:  # whole utterances: every process pads to the global maximum
      out = self.source.load(local, key, pad_to=int(self.source.lengths[chosen].max()))
    else:
      out = self.source.load(local, key)
    valid = out.pop('valid', None)
    batch = dict(out, index=local.astype(np.int32), mask=mask[self.rows])
    if valid is not None:
      batch['mask'] = batch['mask'] * valid
    self.items_loaded += len(local)
    self.load_seconds += time.perf_counter() - tick
    if self.sharding is not None:
      import jax
      batch = {k: jax.make_array_from_process_local_data(self.sharding, v,
                                                         (self.batch_size,) + v.shape[1:])
               for k, v in batch.items()}
    return batch


def _prefetch(epoch: _Epoch, steps: range, out: queue.Queue, stop: threading.Event) -> None:
  """Prefetch thread: puts ('batch', b) for each step, then ('end', None) or ('error', exception)."""

  def put(item) -> bool:
    """Puts into the bounded queue, giving up when stopped; returns whether it was put."""
    while not stop.is_set():
      try:
        out.put(item, timeout=0.1)
        return True
      except queue.Full:
        continue
    return False

  try:
    for step in steps:
      if stop.is_set() or not put(('batch', epoch.make(step))):
        return
    put(('end', None))
  except BaseException as e:  # handed over and re-raised in the consumer's thread
    put(('error', e))


class Batches:
  """Iterator over the batches of one epoch (see `batches`), and a context manager: leaving the
  `with` block (or close()) stops its prefetch thread.

  Throughput: `items_per_second` is the loader's own rate (items loaded per second of loading time,
  whatever the consumer does); `wait_seconds` is how long the consumer waited for data in total — if
  it grows with training time, the input pipeline is the bottleneck.
  """

  def __init__(self, source, batch_size: int, *, seed: int, epoch: int, shuffle: bool,
               drop_last: bool, start_step: int, sharding, prefetch: int):
    """Plans the epoch and starts the prefetch thread (prefetch > 0)."""
    self._stop = threading.Event()
    self._thread = None
    self._epoch = _Epoch(source, batch_size, seed, epoch, shuffle, drop_last, sharding)
    self.num_steps = self._epoch.num_steps
    if not 0 <= start_step <= self.num_steps:
      raise ValueError(f'start_step={start_step} is outside 0..{self.num_steps} '
                       f'(steps per epoch of {len(source)} items at batch size {batch_size})')
    self._steps = iter(range(start_step, self.num_steps))
    self.wait_seconds = 0.0
    self._queue = None
    if prefetch > 0:
      self._queue = queue.Queue(maxsize=prefetch)
      steps = range(start_step, self.num_steps)
      self._thread = threading.Thread(target=_prefetch, name='sim_jax-data-prefetch', daemon=True,
                                      args=(self._epoch, steps, self._queue, self._stop))
      self._thread.start()

  @property
  def items_per_second(self) -> float:
    """Items loaded per second spent loading (0 before the first batch)."""
    e = self._epoch
    return e.items_loaded / e.load_seconds if e.load_seconds else 0.0

  @property
  def items_loaded(self) -> int:
    """Items (rows of this process) loaded so far."""
    return self._epoch.items_loaded

  def __iter__(self) -> 'Batches':
    """The iterator itself."""
    return self

  def __enter__(self) -> 'Batches':
    """`with batches(...) as b:` closes the prefetch thread however the block ends (an exception, a
    Ctrl-C): a prefetch thread still inside jax while the interpreter exits can crash it."""
    return self

  def __exit__(self, *exc) -> None:
    """Closes the iterator."""
    self.close()

  def __next__(self) -> dict:
    """The next batch dict: 'audio', labels, 'index', 'mask' (+ 'length' for clip corpora)."""
    if self._stop.is_set() and (self._queue is None or self._queue.empty()):
      raise StopIteration
    if self._queue is None:
      return self._epoch.make(next(self._steps))
    tick = time.perf_counter()
    kind, value = self._queue.get()
    self.wait_seconds += time.perf_counter() - tick
    if kind == 'batch':
      return value
    self._stop.set()
    if kind == 'error':
      raise value
    raise StopIteration

  def close(self) -> None:
    """Stops the prefetch thread and drops prefetched batches (idempotent)."""
    self._stop.set()
    if self._thread is not None:
      while self._thread.is_alive():
        try:
          self._queue.get_nowait()
        except queue.Empty:
          self._thread.join(timeout=0.05)
      self._thread = None
      while not self._queue.empty():
        self._queue.get_nowait()
    if self.items_loaded:
      logger.debug('data: %d items at %.1f items/s, consumer waited %.2f s', self.items_loaded,
                   self.items_per_second, self.wait_seconds)

  def __del__(self):
    """Stops the prefetch thread if the iterator is dropped without close()."""
    self._stop.set()


def batches(source, batch_size: int, *, seed: int, epoch: int, shuffle: bool, drop_last: bool,
            start_step: int = 0, sharding=None, prefetch: int = 2) -> Batches:
  """Iterates one epoch of `source` in batches of `batch_size` (the global batch).

  Yields dicts: 'audio' (B, T) float32, each label of the source (B,) int32, 'index' (B,) int32 (item
  indices), 'mask' (B,) float32 (1 real, 0 padding or a broken file skipped) — and for clip corpora
  (`ClipSource`) 'length' (B,) int32, the real samples of each row: whole clips are zero-padded to the
  batch's longest (a multiple of 160), a crop of a clip shorter than a crop past its end.
  Without `sharding`: numpy arrays. With a NamedSharding over a 1-axis mesh (batch along axis 0):
  global jax Arrays; each process loads only the rows of its own devices.
  `prefetch` batches are made ahead on a background thread (0: in the caller's thread).
  """
  return Batches(source, batch_size, seed=seed, epoch=epoch, shuffle=shuffle, drop_last=drop_last,
                 start_step=start_step, sharding=sharding, prefetch=prefetch)
