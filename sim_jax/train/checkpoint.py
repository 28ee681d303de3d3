"""Checkpoints in a workdir (orbax), and loading a trained encoder for the downstream stages.

Workdir layout written by training:
  config.json              the resolved config
  checkpoints/<step>/      latest (resume point) + every `keep_every_epochs`-th epoch
  best/<step>/             the checkpoint with the lowest validation loss (sum over modules)
  metrics.jsonl            per-fetch train metrics and per-epoch validation metrics
  loss_curves.png          per-module train / validation curves
Orbax writes each checkpoint to a temporary folder and renames it, so a killed run never leaves a
half-written checkpoint behind.
"""

import dataclasses
import json
import logging
import os
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


class CheckpointError(ValueError):
  """A workdir without the checkpoint asked for, or one that does not fit the config."""


def _manager(path: str, read_only: bool = False, **options) -> ocp.CheckpointManager:
  """An orbax manager of `path`; read-only ones neither create the folder nor plan saves."""
  if read_only:
    options.update(read_only=True, create=False, save_interval_steps=0)
  else:
    options.update(create=True)
  return ocp.CheckpointManager(os.path.abspath(path), options=ocp.CheckpointManagerOptions(**options))


class Checkpoints:
  """The latest/periodic and best checkpoint managers of a training workdir."""

  def __init__(self, workdir: str, keep_period_steps: int | None = None):
    self.latest = _manager(os.path.join(workdir, 'checkpoints'), max_to_keep=1,
                           keep_period=keep_period_steps or None)
    self.best = _manager(os.path.join(workdir, 'best'), max_to_keep=1,
                         best_fn=lambda m: m['val_loss'], best_mode='min')

  def latest_step(self) -> int | None:
    """Step of the newest checkpoint, or None."""
    return self.latest.latest_step()

  def save(self, state: TrainState, val_loss: float | None = None) -> None:
    """Save `state` as the latest checkpoint and, with a validation loss, offer it as the best."""
    step = int(state.step)
    self.latest.save(step, args=ocp.args.StandardSave(state), force=True)
    if val_loss is not None and np.isfinite(val_loss):
      self.best.save(step, args=ocp.args.StandardSave(state), metrics={'val_loss': float(val_loss)},
                     force=True)
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def restore(self, target: TrainState, step: int | None = None) -> TrainState:
    """Restore the latest (or a given) checkpoint into the structure of `target`."""
    step = self.latest.latest_step() if step is None else step
    return self.latest.restore(step, args=ocp.args.StandardRestore(_abstract(target)))

  def close(self) -> None:
    """Release the managers (waits for pending writes)."""
    self.latest.close()
    self.best.close()


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


def load_trained_encoder(workdir: str, which: str | int = 'best') -> TrainedEncoder:
  """Load the encoder of a training workdir: `which` is 'best', 'latest' or a step number.

  'best' falls back to 'latest' when no validation has run yet. Errors name what exists.
  """
  config = load_config(workdir)
  _, target = create_train_state(config, jax.random.PRNGKey(0))
  folders = {'best': 'best', 'latest': 'checkpoints'}
  sub = folders.get(str(which), 'checkpoints')
  manager = _manager(os.path.join(workdir, sub), read_only=True)
  if str(which) in folders:
    step = manager.latest_step()
    if step is None and which == 'best':
      manager = _manager(os.path.join(workdir, 'checkpoints'), read_only=True)
      step = manager.latest_step()
  else:
    step = int(which)
    if step not in manager.all_steps():
      step = None
  if step is None:
    raise CheckpointError(f'{workdir}: no checkpoint {which!r}; found: {_list_checkpoints(workdir)}')
  state = manager.restore(step, args=ocp.args.StandardRestore(_abstract(target)))
  specs = module_specs(config.model)
  variables = {'params': state.params}
  if state.batch_stats:
    variables['batch_stats'] = state.batch_stats
  return TrainedEncoder(config, make_encoder(config.model, specs), variables, int(state.step),
                        os.path.join(workdir, sub, str(step)))


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
