"""The epoch loop: greedy training, validation, checkpoints, metrics, plots; resumable exactly.

The run is a pure function of (config, seed): the step key is fold_in(seed key, step), the batch
order and crops are functions of (seed, epoch, step). Resuming restores the latest checkpoint (state,
optimizer, step) and replays the data from that step, so an interrupted run ends bit-identical to an
uninterrupted one (on CPU). Ctrl-C or SIGTERM stops at the next step boundary and saves a checkpoint
there (`StopRequest`); a SIGKILL loses the steps since the last checkpoint
(`train.checkpoint_every_steps` bounds them).
"""

import contextlib
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from sim_jax import data as data_lib
from sim_jax import io
from sim_jax import workdir as workdir_lib
from sim_jax.checkpoints import checkpoint_steps
from sim_jax.interrupts import StopRequest, save_and_stop
from sim_jax.models import check_audio, fit_to_receptive_field, module_specs
from sim_jax.parallel import batch_sharding, make_mesh, replicated
from sim_jax.progress import progress_bar
from sim_jax.state import create_train_state
from sim_jax.train.plots import plot_loss_curves
from sim_jax.train.step import (accumulate, active_modules, compile_on_first_call, empty_accumulator,
                                make_eval_step, make_train_step)


class TrainingDiverged(ArithmeticError):
  """A module's loss became NaN/Inf; the last good checkpoint is left in place."""


def _check_finite(host: dict) -> None:
  """Raise TrainingDiverged when the accumulated metrics (on the host) saw a non-finite loss."""
  bad = host['first_bad_step']
  if np.any(bad >= 0):
    module = int(np.argmax(bad >= 0))
    raise TrainingDiverged(f'non-finite loss in module {module} at step {int(bad[module])}; '
                           'stopping — the last good checkpoint is kept')


def raise_if_diverged(acc: dict) -> None:
  """Raise TrainingDiverged when a step since the accumulator was emptied had a non-finite loss:
  called before every save, so a diverged state is never checkpointed."""
  _check_finite(jax.device_get({'first_bad_step': acc['first_bad_step']}))


def _fetch(acc: dict) -> dict:
  """Mean metrics of the accumulator on the host; raises TrainingDiverged on a non-finite loss."""
  host = jax.device_get(acc)
  _check_finite(host)
  count = max(int(host['count']), 1)
  return {k: (v / count).tolist() for k, v in host['sum'].items()}


def evaluate(config, eval_step, state, source, sharding, num_modules: int) -> dict:
  """Mean validation metrics per module over `source` (full batches, as the original): the test
  split each epoch, as the original logs it, and the held-out training items when
  train.select_best chooses `best/` by them."""
  batch_size = config.train.batch_size
  steps = data_lib.steps_per_epoch(source, batch_size, drop_last=True)
  if config.train.eval_steps > 0:
    steps = min(steps, config.train.eval_steps)
  if steps == 0:
    return {}
  acc = empty_accumulator(num_modules)
  key = jax.random.PRNGKey(config.seed + 1)  # the same draws every epoch: comparable curves
  with data_lib.batches(source, batch_size, seed=config.seed, epoch=0, shuffle=False, drop_last=True,
                        sharding=sharding, prefetch=config.data.prefetch) as batches:
    for i, batch in zip(range(steps), batches):
      metrics = eval_step(state.params, state.batch_stats, batch, jax.random.fold_in(key, i))
      acc = accumulate(acc, metrics, jnp.int32(i))
  return _fetch(acc)


def train_and_evaluate(config, workdir: str) -> dict:
  """Train the encoder of `config` in `workdir` (resuming if it holds a checkpoint).

  Returns the last epoch's validation metrics ({'nce', 'kld', 'total'} per module).
  """
  os.makedirs(workdir, exist_ok=True)
  config_path = os.path.join(workdir, workdir_lib.CONFIG_FILE)
  if os.path.exists(config_path):  # a rerun need not repeat the data's location
    config = workdir_lib.with_training_data_root(config, workdir_lib.load_config(workdir))
  resuming = bool(checkpoint_steps(os.path.join(workdir, workdir_lib.CHECKPOINTS)))
  workdir_lib.record_settings(config_path, config.to_dict(), resuming=resuming,
                              free=workdir_lib.CHANGEABLE_ON_RESUME,
                              fix='rerun with those settings to resume, or train in a new --workdir')
  mesh = make_mesh()
  sharding = batch_sharding(mesh)
  if config.train.batch_size % mesh.size:
    raise ValueError(f'config.train.batch_size={config.train.batch_size} is not divisible by the '
                     f'{mesh.size} devices; use a multiple of {mesh.size}')
  specs = module_specs(config.model)
  train_source = fit_to_receptive_field(data_lib.make_source(config.data, 'train', 'words'), specs)
  test_source = fit_to_receptive_field(data_lib.make_source(config.data, 'test', 'words'), specs)
  if train_source.split_record is not None:  # a split made from settings is part of the run's record
    workdir_lib.record_split(workdir, train_source.split_record, resuming=resuming)
  heldout_source = None
  if config.train.select_best:  # model selection never sees the test split
    train_source, heldout_source = data_lib.hold_out(train_source, config.train.validation_fraction,
                                                     config.seed)
    if len(heldout_source) < config.train.batch_size:
      raise ValueError(f'config.train.validation_fraction={config.train.validation_fraction} holds out '
                       f'{len(heldout_source)} of {len(heldout_source) + len(train_source)} training items, '
                       f'fewer than one batch of {config.train.batch_size}; raise it')
    io.write_json(os.path.join(workdir, workdir_lib.HELDOUT_FILE),
                  {'seed': config.seed, 'fraction': config.train.validation_fraction,
                   'names': heldout_source.names})
  check_audio(np.zeros((1, train_source.item_length), np.float32), specs)
  steps_per_epoch = data_lib.steps_per_epoch(train_source, config.train.batch_size, drop_last=True)
  if config.train.steps_per_epoch > 0:
    steps_per_epoch = min(steps_per_epoch, config.train.steps_per_epoch)
  if steps_per_epoch == 0:
    raise ValueError(f'the training split has {len(train_source)} items, fewer than one batch of '
                     f'config.train.batch_size={config.train.batch_size}')
  num_modules = len(specs)

  encoder, state = create_train_state(config, jax.random.PRNGKey(config.seed))
  checkpoints = workdir_lib.training_checkpoints(
      workdir, keep_period_steps=config.train.keep_every_epochs * steps_per_epoch,
      keep_recent=config.train.keep_recent)
  if resuming:
    try:
      state = checkpoints.restore(state)  # the newest intact checkpoint
    except BaseException:
      checkpoints.close()
      raise
  primary = jax.process_index() == 0  # in a multi-process run, process 0 writes the log and figures
  metrics_path = os.path.join(workdir, workdir_lib.METRICS_FILE)
  log = io.MetricLog(metrics_path, config.wandb if primary else None,
                     config.to_dict(), wandb_dir=workdir)  # one wandb run, not one per process
  if resuming and primary:
    log.truncate(int(state.step))
  state = jax.device_put(state, replicated(mesh))
  step = int(state.step)  # host-side mirror of state.step: the loop never syncs to read it
  if step >= config.train.num_epochs * steps_per_epoch:
    tqdm.write(f'{workdir} has trained {step // steps_per_epoch} epochs ({step} steps): nothing to '
               f'do; raise --config.train.num_epochs to train further')
  elif step:
    tqdm.write(f'resuming {workdir} at step {step} (epoch {step // steps_per_epoch + 1}, '
               f'{step % steps_per_epoch} of its {steps_per_epoch} steps done)')
  base_key = jax.random.PRNGKey(config.seed)
  eval_step = compile_on_first_call(make_eval_step(config, encoder, mesh))
  train_steps = {}
  val_metrics = {}
  with StopRequest() as stop, contextlib.closing(checkpoints), contextlib.closing(log):
    for epoch in range(step // steps_per_epoch, config.train.num_epochs):
      active = active_modules(config, epoch)
      if active not in train_steps:
        train_steps[active] = compile_on_first_call(make_train_step(config, encoder, mesh, active))
      train_step = train_steps[active]
      first = step - epoch * steps_per_epoch
      n_run = max(active) + 1
      acc = empty_accumulator(n_run)
      tick, tick_step = time.perf_counter(), step
      with progress_bar(total=steps_per_epoch, initial=first, unit='step', dynamic_ncols=True,
                        desc=f'epoch {epoch + 1}/{config.train.num_epochs}',
                        disable=not primary) as bar, \
          data_lib.batches(train_source, config.train.batch_size, seed=config.seed, epoch=epoch,
                           shuffle=True, drop_last=True, start_step=first, sharding=sharding,
                           prefetch=config.data.prefetch) as batches:
        for i, batch in zip(range(first, steps_per_epoch), batches):
          if stop.requested:
            break
          state, metrics = train_step(state, batch, jax.random.fold_in(base_key, step))
          acc = accumulate(acc, metrics, jnp.int32(step))
          bar.update(1)
          step += 1
          last = i == steps_per_epoch - 1
          if step % config.train.log_every_steps == 0 or last:
            mean = _fetch(acc)
            rate = (step - tick_step) * config.train.batch_size / (time.perf_counter() - tick)
            tick, tick_step = time.perf_counter(), step
            acc = empty_accumulator(n_run)
            if primary:
              log.write(step, epoch=epoch, samples_per_second=rate,
                        **{f'train/{k}': v for k, v in mean.items()})
            bar.set_postfix_str(f'{rate:.1f} samples/s  InfoNCE ' +
                                ' '.join(f'{x:.3f}' for x in mean['nce']))
          if (config.train.checkpoint_every_steps > 0 and not last
              and step % config.train.checkpoint_every_steps == 0):
            raise_if_diverged(acc)
            checkpoints.save(state)
      if stop.requested and step < (epoch + 1) * steps_per_epoch:  # else: validate, save, then stop
        raise_if_diverged(acc)
        save_and_stop(checkpoints, state)
      val_metrics = evaluate(config, eval_step, state, test_source, sharding, num_modules)
      if val_metrics and primary:
        log.write(step, epoch=epoch, **{f'val/{k}': v for k, v in val_metrics.items()})
        tqdm.write(f'epoch {epoch + 1}: validation InfoNCE per module ' +
                   ' '.join(f'{x:.4f}' for x in val_metrics['nce']))
      heldout_loss = None
      if heldout_source is not None:
        heldout = evaluate(config, eval_step, state, heldout_source, sharding, num_modules)
        if heldout and primary:
          log.write(step, epoch=epoch, **{f'heldout/{k}': v for k, v in heldout.items()})
          heldout_loss = float(np.sum(heldout['total']))
      if (epoch + 1) % config.train.checkpoint_every_epochs == 0 or epoch + 1 == config.train.num_epochs:
        checkpoints.save(state, val_loss=heldout_loss)
      if primary:
        plot_loss_curves(io.read_jsonl(metrics_path), os.path.join(workdir, workdir_lib.LOSS_CURVES))
      if stop.requested:  # asked during validation or saving: the epoch's end is a clean stop
        save_and_stop(checkpoints, state)
  return val_metrics
