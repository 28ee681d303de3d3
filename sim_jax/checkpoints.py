"""Orbax checkpoints of any pytree in a folder: save, verified restore, digests, damaged ones moved aside.

A checkpoint folder holds `<step>/` step folders. Orbax writes each to a temporary folder and renames
it, so a killed run never leaves a half-written checkpoint behind; each step folder also holds
`state.sha256`, the digest of its arrays, so a file damaged later is found on load instead of
resuming from wrong values. What a training workdir keeps where is `sim_jax.workdir`'s concern.
"""

import contextlib
import hashlib
import inspect
import logging
import os
import shutil
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from sim_jax import io

COMMIT_FILE = 'commit_success.txt'  # orbax's commit marker in every finished step folder
DIGEST_FILE = 'state.sha256'        # ours: sha256 of the saved arrays (`tree_digest`), beside it
_ITEM = 'default'                   # orbax's folder of the single saved item inside a step folder


class CheckpointError(ValueError):
  """A folder without the checkpoint asked for, or one that does not fit what reads it."""


def tree_digest(tree) -> str:
  """sha256 (hex) of every array of a pytree: its path, dtype, shape and bytes, in tree order."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]:
    leaf = np.ascontiguousarray(leaf)
    digest.update(f'{jax.tree_util.keystr(path)}:{leaf.dtype}:{leaf.shape}'.encode())
    digest.update(leaf.tobytes())
  return digest.hexdigest()


def checkpoint_steps(folder: str) -> list[int]:
  """The steps of the finished orbax checkpoints in `folder` (none if it does not exist)."""
  if not os.path.isdir(folder):
    return []
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit())


def _from_orbax(exc: BaseException | None) -> bool:
  """Whether `exc`, or an error it wraps, was raised through orbax's code."""
  seen = set()
  while exc is not None and id(exc) not in seen:
    seen.add(id(exc))
    frame = exc.__traceback__
    while frame is not None:
      if '/orbax/' in frame.tb_frame.f_code.co_filename:
        return True
      frame = frame.tb_next
    exc = exc.__cause__ or exc.__context__
  return False


def _from_a_storage_thread(exc: BaseException) -> bool:
  """Whether `exc` was raised in asyncio's `call_soon_threadsafe` called from no Python frame: a
  callback of a C++ storage thread (tensorstore, under orbax) into an event loop already closed."""
  tb = exc.__traceback__
  return (tb is not None and tb.tb_frame.f_code.co_name == 'call_soon_threadsafe'
          and tb.tb_frame.f_back is None)


def quiet_abandoned_orbax_reads() -> None:
  """Drop the reports orbax's abandoned reads make after a failed read, which no caller can catch.

  A damaged checkpoint (or a full disk) is reported as one line; the other async operations orbax
  started for it fail later, when they finish or are collected: as unraisable errors of orbax's
  coroutines, as 'Event loop is closed' errors of the callbacks its storage threads (tensorstore's
  C++ threads: no Python frame calls them) make into the closed loop, and as asyncio's '... exception
  was never retrieved' logs of tracebacks through orbax. Those are dropped; every other unraisable
  error and asyncio log is reported as before. Entry points call this once
  (`sim_jax.cli.run_main`); it changes process-wide hooks.
  """
  previous = sys.unraisablehook

  def hook(unraisable) -> None:
    obj, exc = unraisable.object, unraisable.exc_value
    orbax_coroutine = inspect.iscoroutine(obj) and '/orbax/' in obj.cr_code.co_filename
    closed_loop = isinstance(exc, RuntimeError) and str(exc) == 'Event loop is closed'
    if orbax_coroutine or (closed_loop and (_from_orbax(exc) or _from_a_storage_thread(exc))):
      return
    previous(unraisable)

  def keep(record: logging.LogRecord) -> bool:
    if 'exception was never retrieved' not in record.getMessage() or not record.exc_info:
      return True
    return not _from_orbax(record.exc_info[1])

  if getattr(previous, 'quiets_orbax', False):
    return
  hook.quiets_orbax = True
  sys.unraisablehook = hook
  logging.getLogger('asyncio').addFilter(keep)


@contextlib.contextmanager
def _absl_filtered(keep, after_failure: bool = False):
  """absl's logger filtered by `keep(record)` inside the block and, with `after_failure`, from then
  on when the block fails."""
  absl = logging.getLogger('absl')
  absl.addFilter(keep)
  try:
    yield
  except BaseException:
    if not after_failure:
      absl.removeFilter(keep)
    raise
  absl.removeFilter(keep)


def _orbax_errors_hidden():
  """Drop orbax's own error logs (a traceback per writer thread) while a save runs and, if it fails,
  from then on (its other writer threads fail later): a full disk is reported as one line by the
  caller, and any other failure is re-raised with its traceback."""
  return _absl_filtered(lambda r: not (r.levelno >= logging.ERROR and '/orbax/' in r.pathname),
                        after_failure=True)


def _read_only_note_hidden():
  """Drop orbax's note that a read-only manager's folder 'is read only' (that is the point of it)."""
  return _absl_filtered(lambda r: 'is read only' not in r.getMessage())


def _manager(path: str, read_only: bool = False, **options) -> ocp.CheckpointManager:
  """An orbax manager of `path`; read-only ones neither create the folder nor plan saves; writable
  ones delete the temporary folders of saves a killed run left unfinished."""
  if read_only:
    options.update(read_only=True, create=False, save_interval_steps=0)
  else:
    options.update(create=True, cleanup_tmp_directories=True)
  return ocp.CheckpointManager(os.path.abspath(path), options=ocp.CheckpointManagerOptions(**options))


def _root_cause(e: BaseException, limit: int = 160) -> str:
  """The first line of the innermost error `e` wraps (orbax's own messages run to pages)."""
  while (e.__cause__ or e.__context__) is not None:
    e = e.__cause__ or e.__context__
  line = (str(e).strip().splitlines() or [type(e).__name__])[0]
  return line if len(line) <= limit else line[:limit] + '…'


def _abstract(tree):
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)


def _restore_verified(manager: ocp.CheckpointManager, step: int, target):
  """(state, None) for an intact checkpoint `step` of `manager`, else (None, the problem).

  Intact: orbax's commit marker is there, orbax reads it, and its arrays hash to the digest saved
  with it (checkpoints written before digests existed are checked by the read alone).
  """
  folder = os.path.join(str(manager.directory), str(step))
  if not os.path.exists(os.path.join(folder, COMMIT_FILE)):
    return None, f'no {COMMIT_FILE}: its write did not finish'
  try:
    state = manager.restore(step, args=ocp.args.StandardRestore(_abstract(target)))
  except Exception as e:  # noqa: BLE001 (orbax and tensorstore raise many types for a damaged file)
    return None, f'unreadable: {_root_cause(e)}'
  digest_path = os.path.join(folder, DIGEST_FILE)
  if os.path.exists(digest_path):
    with open(digest_path) as f:
      if f.read().strip() != tree_digest(state):
        return None, f'its arrays do not match {DIGEST_FILE} (damaged data)'
  return state, None


def read_checkpoint(folder: str, step: int, target):
  """(state, None) for the intact checkpoint `folder/<step>` read into the structure of `target`,
  else (None, the problem: unfinished, unreadable, or not matching its digest). Writes nothing."""
  with _read_only_note_hidden():
    manager = _manager(folder, read_only=True)
    try:
      return _restore_verified(manager, step, target)
    finally:
      manager.close()


def saved_structure(folder: str, step: int):
  """The tree of array metadata (shape, dtype) of checkpoint `folder/<step>`, read without its arrays."""
  return ocp.StandardCheckpointHandler().metadata(epath.Path(os.path.abspath(folder)) / str(step) / _ITEM)


def _move_aside(folder: str) -> str:
  """Rename a damaged checkpoint folder to `<folder>.damaged` (or `.damaged-2`, …); never delete."""
  moved, n = f'{folder}.damaged', 1
  while os.path.exists(moved):
    n += 1
    moved = f'{folder}.damaged-{n}'
  os.rename(folder, moved)
  return moved


def _remove_unfinished(directory: str, step: int) -> None:
  """Delete what a failed save of `step` left in `directory` (orbax's temporary folder)."""
  for name in os.listdir(directory):
    if name.startswith(f'{step}.orbax-checkpoint-tmp'):
      shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


class Checkpoints:
  """The checkpoints of one run: `folder` (the `keep_recent` newest, plus every
  `keep_period_steps`-th step) and, once a validation loss is offered, `best_folder` (the lowest)."""

  def __init__(self, folder: str, best_folder: str | None = None, keep_period_steps: int | None = None,
               keep_recent: int = 2):
    if keep_recent < 1:
      raise ValueError(f'config.train.keep_recent={keep_recent}: keep at least 1 recent checkpoint')
    self.folder = os.path.abspath(folder)
    self.latest = _manager(self.folder, max_to_keep=keep_recent, keep_period=keep_period_steps or None)
    self._best_folder = best_folder
    self.best = None

  def latest_step(self) -> int | None:
    """Step of the newest checkpoint, or None."""
    return self.latest.latest_step()

  def save(self, state, val_loss: float | None = None) -> None:
    """Save `state` (a pytree with a `step`) as the latest checkpoint and, with a validation loss and a
    best folder, offer it as the best.

    A write the disk refuses raises io.DiskFull naming the folder and the space needed; its partial
    files are removed and the earlier checkpoints stay as they were.
    """
    step = int(state.step)
    digest = tree_digest(state)
    managers = [self.latest]
    if val_loss is not None and np.isfinite(val_loss) and self._best_folder is not None:
      if self.best is None:
        self.best = _manager(self._best_folder, max_to_keep=1, best_fn=lambda m: m['val_loss'],
                             best_mode='min')
      managers.append(self.best)
    for manager in managers:
      metrics = {'val_loss': float(val_loss)} if manager is self.best else None
      try:
        with _orbax_errors_hidden():
          manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)
          manager.wait_until_finished()
      except Exception as e:  # noqa: BLE001 (orbax wraps the OS error in its own types)
        full = io.disk_full_reason(e)
        if full is None:
          raise
        _remove_unfinished(str(manager.directory), step)
        need = sum(np.asarray(x).nbytes for x in jax.tree_util.tree_leaves(jax.device_get(state)))
        raise io.DiskFull(os.path.join(str(manager.directory), str(step)), need, full) from None
      folder = os.path.join(str(manager.directory), str(step))
      if os.path.isdir(folder) and jax.process_index() == 0:  # best/ drops a worse step at once
        io.write_text(os.path.join(folder, DIGEST_FILE), digest + '\n')

  def restore(self, target):
    """Restore the newest intact checkpoint into the structure of `target`.

    Damaged newer ones (unreadable, unfinished, or not matching their digest) are renamed to
    `<step>.damaged` with one line each on stderr; with no intact one left, CheckpointError names
    the folder and the choices, and nothing is moved.
    """
    damaged = []
    for step in reversed(self.latest.all_steps()):
      state, problem = _restore_verified(self.latest, step, target)
      if state is not None:
        break
      damaged.append((step, problem))
    else:
      found = '; '.join(f'{step}: {problem}' for step, problem in damaged)
      raise CheckpointError(f'{self.folder}: no intact checkpoint to resume from ({found}); delete the '
                            'workdir to train from scratch, or train afresh with another --workdir')
    for bad, problem in damaged:
      if jax.process_index() == 0:  # one host renames (the folder is shared)
        moved = _move_aside(os.path.join(self.folder, str(bad)))
        print(f'warning: checkpoint {bad} is damaged ({problem}); moved it to {moved}, resuming from '
              f'step {step}', file=sys.stderr, flush=True)
    if damaged:
      self.latest.reload()
    return state

  def close(self) -> None:
    """Release the managers (waits for pending writes)."""
    self.latest.close()
    if self.best is not None:
      self.best.close()
