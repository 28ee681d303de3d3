"""Checkpoints in a workdir (orbax), and loading a trained encoder for the downstream stages.

Workdir layout written by training:
  config.json              the resolved config
  checkpoints/<step>/      the `train.keep_recent` newest (resume points) + every `keep_every_epochs`-th epoch
  checkpoints/<step>.damaged  a checkpoint found damaged on resume, moved aside (never deleted)
  best/<step>/             train.select_best=True only: the lowest loss on the held-out training items
  metrics.jsonl            per-fetch train metrics and per-epoch validation metrics
  loss_curves.png          per-module train / validation curves
Orbax writes each checkpoint to a temporary folder and renames it, so a killed run never leaves a
half-written checkpoint behind; each step folder also holds `state.sha256`, the digest of its arrays,
so a file damaged later is found on load (`_restore_verified`) instead of resuming from wrong values.
"""

import contextlib
import dataclasses
import hashlib
import inspect
import json
import logging
import os
import shutil
import signal
import sys
import threading

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from sim_jax import io
from sim_jax.models import make_encoder, module_specs
from sim_jax.models.encoder import Encoder
from sim_jax.train.step import TrainState, create_train_state


# Orbax warns that a read-only manager's folder "is read only" on every load: that is the point here.
logging.getLogger('absl').addFilter(lambda record: 'is read only' not in record.getMessage())


def _drop_orbax_leftovers(unraisable, previous=sys.unraisablehook) -> None:
  """sys.unraisablehook: after a failed orbax read or write (reported as one line), the async
  operations it abandoned raise 'Event loop is closed' when they finish or are collected, as
  tracebacks no caller can catch; those are dropped, anything else is reported as before."""
  obj, exc = unraisable.object, unraisable.exc_value
  if inspect.iscoroutine(obj) and '/orbax/' in obj.cr_code.co_filename:
    return
  if isinstance(exc, RuntimeError) and str(exc) == 'Event loop is closed':
    return
  previous(unraisable)


sys.unraisablehook = _drop_orbax_leftovers


def _not_an_abandoned_orbax_read(record: logging.LogRecord) -> bool:
  """'asyncio' logger filter: after a failed orbax read (reported as one line), asyncio may log the
  other reads it abandoned as '... exception was never retrieved' with their tracebacks when the
  future is collected; those are dropped, any other asyncio log is kept."""
  if 'exception was never retrieved' not in record.getMessage() or not record.exc_info:
    return True
  exc = record.exc_info[1]
  while exc is not None:
    frame = exc.__traceback__
    while frame is not None:
      if '/orbax/' in frame.tb_frame.f_code.co_filename:
        return False
      frame = frame.tb_next
    exc = exc.__cause__ or exc.__context__
  return True


logging.getLogger('asyncio').addFilter(_not_an_abandoned_orbax_read)


@contextlib.contextmanager
def _orbax_errors_hidden():
  """Drop orbax's own error logs (a traceback per writer thread) while a save runs and, if it fails,
  from then on (its other writer threads fail later): a full disk is reported as one line by the
  caller, and any other failure is re-raised with its traceback."""
  def keep(record):
    return not (record.levelno >= logging.ERROR and '/orbax/' in record.pathname)
  absl = logging.getLogger('absl')
  absl.addFilter(keep)
  yield
  absl.removeFilter(keep)


class CheckpointError(ValueError):
  """A workdir without the checkpoint asked for, or one that does not fit the config."""


COMMIT_FILE = 'commit_success.txt'  # orbax's commit marker in every finished step folder
DIGEST_FILE = 'state.sha256'        # ours: sha256 of the saved arrays (`tree_digest`), beside it


def tree_digest(tree) -> str:
  """sha256 (hex) of every array of a pytree: its path, dtype, shape and bytes, in tree order."""
  digest = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_flatten_with_path(jax.device_get(tree))[0]:
    leaf = np.ascontiguousarray(leaf)
    digest.update(f'{jax.tree_util.keystr(path)}:{leaf.dtype}:{leaf.shape}'.encode())
    digest.update(leaf.tobytes())
  return digest.hexdigest()


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


def _move_aside(folder: str) -> str:
  """Rename a damaged checkpoint folder to `<folder>.damaged` (or `.damaged-2`, …); never delete."""
  moved, n = f'{folder}.damaged', 1
  while os.path.exists(moved):
    n += 1
    moved = f'{folder}.damaged-{n}'
  os.rename(folder, moved)
  return moved


class Checkpoints:
  """The checkpoint managers of a training workdir: `checkpoints/` (the `keep_recent` newest, plus
  every `keep_period_steps`-th step) and, once a validation loss is offered, `best/`."""

  def __init__(self, workdir: str, keep_period_steps: int | None = None, keep_recent: int = 2):
    if keep_recent < 1:
      raise ValueError(f'config.train.keep_recent={keep_recent}: keep at least 1 recent checkpoint')
    self.folder = os.path.abspath(os.path.join(workdir, 'checkpoints'))
    self.latest = _manager(self.folder, max_to_keep=keep_recent, keep_period=keep_period_steps or None)
    self._best_folder = os.path.join(workdir, 'best')
    self.best = None

  def latest_step(self) -> int | None:
    """Step of the newest checkpoint, or None."""
    return self.latest.latest_step()

  def save(self, state: TrainState, val_loss: float | None = None) -> None:
    """Save `state` as the latest checkpoint and, with a validation loss, offer it as the best.

    A write the disk refuses raises io.DiskFull naming the folder and the space needed; its partial
    files are removed and the earlier checkpoints stay as they were.
    """
    step = int(state.step)
    digest = tree_digest(state)
    managers = [self.latest]
    if val_loss is not None and np.isfinite(val_loss):
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

  def restore(self, target: TrainState) -> TrainState:
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


def _remove_unfinished(directory: str, step: int) -> None:
  """Delete what a failed save of `step` left in `directory` (orbax's temporary folder)."""
  for name in os.listdir(directory):
    if name.startswith(f'{step}.orbax-checkpoint-tmp'):
      shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


class Interrupted(KeyboardInterrupt):
  """A run stopped on request after saving a checkpoint; the message says where."""


class StopRequest:
  """`with StopRequest() as stop:` turns the first SIGINT (Ctrl-C) or SIGTERM (a scheduler's
  preemption) into `stop.requested = True`, for a loop to see at its next step and end with
  `save_and_stop`; a second signal interrupts at once. Outside the main thread it does nothing."""

  def __init__(self):
    self.requested = False
    self._previous = {}

  def __enter__(self) -> 'StopRequest':
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGINT, signal.SIGTERM):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame) -> None:
    del frame
    if self.requested:
      raise KeyboardInterrupt
    self.requested = True
    print(f'\n{signal.Signals(signum).name}: stopping at the next step (after the validation, if one '
          'is running) and saving a checkpoint; again to quit at once', file=sys.stderr, flush=True)

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def save_and_stop(checkpoints: 'Checkpoints', state) -> None:
  """Save `state` (unless its step is saved already) and raise Interrupted."""
  step = int(state.step)
  if checkpoints.latest_step() != step:
    checkpoints.save(state)
  raise Interrupted(f'stopped at step {step}, checkpoint saved — rerun the same command to resume')


def _abstract(tree):
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)


@dataclasses.dataclass
class TrainedEncoder:
  """A trained encoder loaded from a workdir, ready for `sim_jax.models.encode`."""

  config: ml_collections.ConfigDict
  encoder: Encoder
  variables: dict   # {'params': ..., 'batch_stats': ...}
  step: int
  path: str


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to `<workdir>/config.json`."""
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    raise CheckpointError(f'{workdir}: no config.json — not a training workdir; train first: '
                          f'python train.py --config=configs/<name>.py --workdir={workdir}')
  return ml_collections.ConfigDict(io.read_json(path))


def checkpoint_steps(folder: str) -> list[int]:
  """The steps of the finished orbax checkpoints in `folder` (none if it does not exist)."""
  if not os.path.isdir(folder):
    return []
  return sorted(int(d) for d in os.listdir(folder) if d.isdigit())


def with_training_data_root(config: ml_collections.ConfigDict, trained_config) -> ml_collections.ConfigDict:
  """`config` with the training run's data.root (`trained_config`, a workdir's config.json) when its
  own is empty and both name the same corpus: a rerun of train.py and the later stages then read the
  data the encoder was trained on without repeating the flag."""
  if config.data.root or config.data.name != trained_config.data.name or not trained_config.data.root:
    return config
  config = config.copy_and_resolve_references()
  config.data.root = trained_config.data.root
  print(f'data: {config.data.root} (the training run\'s config.data.root)', file=sys.stderr)
  return config


def _list_checkpoints(workdir: str) -> str:
  found = [f'{sub}/{step}' for sub in ('checkpoints', 'best')
           for step in checkpoint_steps(os.path.join(workdir, sub))]
  return ', '.join(found) if found else 'none'


def _flat(tree: dict, prefix: str = '') -> dict:
  """{'a.b': leaf} of a nested dict, leaves as JSON has them (tuples become lists)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = json.loads(json.dumps(value))
  return flat


def record_settings(path: str, settings: dict, *, resuming: bool, free: tuple[str, ...] = (),
                    fix: str) -> None:
  """Write the settings of a run to `path` (JSON); when `resuming` from the checkpoints it made,
  first check they are the settings those checkpoints were made with.

  Keys starting with one of `free` may change between runs (e.g. the number of epochs); a key that
  only one side has (a setting added later) is not compared. A difference raises CheckpointError,
  one line naming each differing key with its old and new value, then `fix`; nothing is written.
  """
  if resuming and os.path.exists(path):
    old, new = _flat(io.read_json(path)), _flat(settings)
    changed = [f'{k}={old[k]!r} (now {new[k]!r})' for k in sorted(old.keys() & new.keys())
               if old[k] != new[k] and not k.startswith(free)]
    if changed:
      raise CheckpointError(f'{os.path.dirname(path) or "."} holds checkpoints made with '
                            f'{", ".join(changed)}; {fix}')
  io.write_json(path, settings)


def load_trained_encoder(workdir: str, which: str | int = 'latest') -> TrainedEncoder:
  """Load the encoder of a training workdir: `which` is 'latest', 'best' or a step number.

  'latest' is the last checkpoint, the original's choice (its downstream scripts load the last
  epoch's model, reference-semantics §3). 'best' exists only when training ran with
  train.select_best=True, and falls back to 'latest' otherwise. A missing or damaged checkpoint is a
  CheckpointError naming what exists.
  """
  config = load_config(workdir)
  _, target = create_train_state(config, jax.random.PRNGKey(0))
  folders = {'best': 'best', 'latest': 'checkpoints'}
  sub = folders.get(str(which), 'checkpoints')
  if str(which) == 'best' and not checkpoint_steps(os.path.join(workdir, 'best')):
    sub = 'checkpoints'
  steps = checkpoint_steps(os.path.join(workdir, sub))
  step = (steps[-1] if steps else None) if str(which) in folders else int(which)
  if step is None or step not in steps:
    raise CheckpointError(f'{workdir}: no checkpoint {which!r}; found: {_list_checkpoints(workdir)}')
  manager = _manager(os.path.join(workdir, sub), read_only=True)
  try:
    state, problem = _restore_verified(manager, step, target)
  finally:
    manager.close()
  path = os.path.join(workdir, sub, str(step))
  if problem:
    raise CheckpointError(f'checkpoint {path} is damaged ({problem}); load another (found: '
                          f'{_list_checkpoints(workdir)}) or train again')
  specs = module_specs(config.model)
  variables = {'params': state.params}
  if state.batch_stats:
    variables['batch_stats'] = state.batch_stats
  return TrainedEncoder(config, make_encoder(config.model, specs), variables, int(state.step), path)


def import_original_checkpoint(checkpoint: str, config: ml_collections.ConfigDict, workdir: str) -> None:
  """Turn a checkpoint of the original PyTorch code into a workdir the downstream stages can read;
  `config` describes its model (widths must match the checkpoint's)."""
  from sim_jax.reference import load_torch_state, torch_to_variables
  held = [name for name in ('config.json', 'checkpoints', 'best')
          if os.path.exists(os.path.join(workdir, name))]
  if held:
    raise CheckpointError(f'{workdir} already holds a run ({", ".join(held)}); import into a new --workdir')
  _, state = create_train_state(config, jax.random.PRNGKey(0))
  expected = {'params': state.params, 'batch_stats': state.batch_stats}
  variables = torch_to_variables(load_torch_state(checkpoint), module_specs(config.model), expected,
                                 source=checkpoint)
  state = state.replace(params=variables['params'],
                        batch_stats=variables['batch_stats'] if state.batch_stats else {})
  os.makedirs(workdir, exist_ok=True)
  io.write_json(os.path.join(workdir, 'config.json'), config.to_dict())
  checkpoints = Checkpoints(workdir)
  checkpoints.save(state)
  checkpoints.close()
  print(f'imported {checkpoint} into {workdir}/checkpoints/{int(state.step)}')
