"""Decoder training on a frozen encoder's latents: jitted step, checkpoints + resume, metrics.

Layout of `<workdir>/decoder/module_<i>/`: checkpoints/<step>/ (latest, the resume point), best/
(lowest test loss), settings.json (what the training depends on; a resume must match it),
metrics.jsonl (train loss per logged step, test loss and MSE per epoch), loss_curve.png. The run is
a function of (config, seed): batch order, crops and SIM draws depend only on (seed, epoch, step)
(the draws also on the item: `latents.latents`), so a resumed run replays the same data and noise.
"""

import functools
import os
import time
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from sim_jax import data as data_lib
from sim_jax import io
from sim_jax.checkpoints import Checkpoints, saved_structure
from sim_jax.decoder.media import plot_decoder_loss
from sim_jax.decoder.latents import (TEST_DRAWS, TRAIN_DRAWS, DecoderError, LatentSource, draw_key,
                                     latent_frames, latent_prefix, latents_from_prefix)
from sim_jax.decoder.losses import mse_loss, reconstruction_loss
from sim_jax.decoder.nets import Decoder, chunk_size, decoded_length, make_decoder
from sim_jax.interrupts import StopRequest, save_and_stop
from sim_jax.models import Encoder
from sim_jax.parallel import batch_sharding, make_mesh, replicated
from sim_jax.progress import progress_bar
from sim_jax.workdir import TrainedEncoder, decoder_dir, record_settings


@flax.struct.dataclass
class DecoderState:
  """What decoder training carries from step to step."""

  step: jax.Array   # () int32
  params: Any       # {'deconv_<j>': {'kernel', 'bias'}}
  opt_state: Any    # Adam state


@functools.partial(jax.jit, static_argnames=('decoder', 'width', 'frames', 'learning_rate'))
def init_state(key, *, decoder: Decoder, width: int, frames: int, learning_rate: float) -> DecoderState:
  """PyTorch-default initialised decoder parameters and a fresh Adam state (one compiled program)."""
  params = decoder.init(key, jnp.zeros((1, frames, width), jnp.float32))['params']
  return DecoderState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=optax.adam(learning_rate).init(params))


def item_terms(loss_fn, pred, audio):
  """Per item: the loss, the MSE and the signal power (mean square of the audio), (B, 3)."""
  return jax.vmap(lambda p, t: jnp.stack([loss_fn(p[None], t[None]), mse_loss(p, t),
                                          jnp.mean(jnp.square(t))]))(pred, audio)


def batch_latents(encoder: Encoder, source: LatentSource, enc_vars, batch, key, cache):
  """The latents (B, L, C) of a batch: from `cache` (every item's `latent_prefix`, (N, ·, ·)) at
  batch['index'] when given, else from batch['audio']; SIM draws fold in batch['index']."""
  prefix = (latent_prefix(encoder, source, enc_vars, batch['audio']) if cache is None
            else jnp.take(cache, batch['index'], axis=0))
  return latents_from_prefix(encoder, source, enc_vars, prefix, key, batch['index'])


@functools.partial(jax.jit, static_argnames=('encoder', 'source', 'decoder', 'loss', 'learning_rate'),
                   donate_argnums=(0,))
def train_step(state: DecoderState, enc_vars, batch, key, cache=None, *, encoder: Encoder,
               source: LatentSource, decoder: Decoder, loss: str,
               learning_rate: float) -> tuple[DecoderState, jax.Array]:
  """One Adam step of the decoder on the frozen encoder's latents of batch['audio'] (B, T).

  The loss is the mean over the items with batch['mask'] 1 (padding and broken files never count).
  `key` is the step's (`draw_key(seed, TRAIN_DRAWS, epoch, step)`); SIM draws fold in batch['index'].
  `cache`: the split's `latent_cache` or None (see `batch_latents`): the same step either way.
  The gradient is summed over chunks of `chunk_size(decoder.implementation, B)` items (one chunk
  for 'plain'), so the 'cpu' step holds one chunk's activations, whatever the batch.
  Pure; jitted with the modules and settings static, so equal settings share one compilation.
  """
  audio, mask = batch['audio'], batch['mask']  # (B, T), (B,)
  z = batch_latents(encoder, source, enc_vars, batch, key, cache)  # (B, L, C)
  loss_fn = reconstruction_loss(loss)
  tx = optax.adam(learning_rate)

  def loss_sum(params, z, audio, mask):  # the summed loss of one chunk's unmasked items
    return item_terms(loss_fn, decoder.apply({'params': params}, z), audio)[:, 0] @ mask

  def add_chunk(totals, chunk):
    value, grads = jax.value_and_grad(loss_sum)(state.params, *chunk)
    return jax.tree_util.tree_map(jnp.add, totals, (value, grads)), None

  size = chunk_size(decoder.implementation, audio.shape[0])
  chunks = [a.reshape((-1, size) + a.shape[1:]) for a in (z, audio, mask)]  # (B / size, size, ...)
  zeros = (jnp.zeros(()), jax.tree_util.tree_map(jnp.zeros_like, state.params))
  (total, grads), _ = jax.lax.scan(add_chunk, zeros, chunks)
  count = jnp.maximum(jnp.sum(mask), 1.0)
  grads = jax.tree_util.tree_map(lambda g: g / count, grads)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  return state.replace(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                       opt_state=opt_state), total / count


@functools.partial(jax.jit, static_argnames=('encoder', 'source', 'decoder', 'loss'))
def eval_step(params, enc_vars, batch, key, cache=None, *, encoder: Encoder, source: LatentSource,
              decoder: Decoder, loss: str) -> dict:
  """Sums over the unmasked items of a batch: the loss, MSE and signal power ('loss', 'mse',
  'power'), the latents ('z' (L, C), 'z_sq' (C,)) and the audio ('audio' (T,)); and their 'count'.
  `cache` as train_step's."""
  audio, mask = batch['audio'], batch['mask']  # (B, T), (B,)
  z = batch_latents(encoder, source, enc_vars, batch, key, cache)  # (B, L, C)
  sums = mask @ item_terms(reconstruction_loss(loss), decoder.apply({'params': params}, z), audio)
  return {'loss': sums[0], 'mse': sums[1], 'power': sums[2], 'count': jnp.sum(mask),
          'z': jnp.einsum('blc,b->lc', z, mask), 'z_sq': jnp.einsum('blc,b->c', jnp.square(z), mask),
          'audio': mask @ audio}


@functools.partial(jax.jit, static_argnames=('encoder', 'source'))
def _prefix(enc_vars, audio, *, encoder: Encoder, source: LatentSource):
  return latent_prefix(encoder, source, enc_vars, audio)


def latent_cache(trained: TrainedEncoder, source: LatentSource, data_source, budget_gb: float,
                 batch_size: int, mesh) -> jax.Array | None:
  """Every item's `latent_prefix` (N, L, W) float32 on the mesh (replicated), computed once, or None.

  Only a split whose items are the same every epoch (`fixed_items`: de Boer, demo; crops are not)
  and whose prefix fits in `budget_gb` (config.decoder.latent_cache_gb; 0 never) is cached. Then a
  step starts from the item's cached module-0 Gaussian (SIM samples) or latents (a mean) instead of
  running the frozen module(s) on its audio again each epoch: the same numbers, as a whole-batch
  pass computes them."""
  if budget_gb <= 0 or not data_source.fixed_items:
    return None
  audio = jax.ShapeDtypeStruct((batch_size, data_source.item_length), jnp.float32)
  shape = jax.eval_shape(functools.partial(_prefix, encoder=trained.encoder, source=source), trained.variables,
                         audio).shape[1:]
  count = len(data_source)
  gigabytes = count * int(np.prod(shape)) * 4 / 1e9
  what = 'module-0 means and standard deviations' if source.sample else 'latents'
  if gigabytes > budget_gb:
    tqdm.write(f'decoder: the {what} of the {count} {data_source.split} items would take {gigabytes:.2f} GB, more '
               f'than config.decoder.latent_cache_gb={budget_gb:g}; computing them at every step')
    return None
  cache = np.empty((count,) + shape, np.float32)
  with progress_bar(total=count, unit='item', dynamic_ncols=True,
                    desc=f'decoder: caching the {what} of the {data_source.split} items ({gigabytes:.2f} GB)') as bar:
    for start in range(0, count, batch_size):
      rows = np.arange(start, min(start + batch_size, count))
      audio = data_source.load(rows, 0)['audio']  # (n, T)
      audio = np.pad(audio, ((0, batch_size - len(rows)), (0, 0)))  # one compiled shape
      cache[rows] = np.asarray(_prefix(trained.variables, audio, encoder=trained.encoder, source=source))[:len(rows)]
      bar.update(len(rows))
  return jax.device_put(cache, replicated(mesh))


def check_width(checkpoints: Checkpoints, source: LatentSource, path: str) -> None:
  """Raise DecoderError when the saved decoder reads latents of another width than the encoder's."""
  step = checkpoints.latest_step()
  if step is None:
    return
  kernel = saved_structure(checkpoints.folder, step)['params']['deconv_0']['kernel']
  if kernel.shape[1] != source.width:
    raise DecoderError(f'decoder checkpoint {path}/checkpoints/{step} reads {kernel.shape[1]}-wide '
                       f'latents but the encoder\'s module {source.module} is {source.width} wide '
                       f'(retrained?); delete {path} to train a new decoder')


def test_statistics(evaluate, params, enc_vars, test_source, decoder_config, sharding,
                    prefetch: int, cache=None) -> dict:
  """Means over the test split (the last batch padded and masked; at most eval_steps batches;
  `cache`: its `latent_cache` or None):
  'loss', 'mse', 'power' (mean square of the audio), 'mean_latent' (L, C), 'latent_mean' and
  'latent_std' per dimension (C,) over items and frames, 'mean_audio' (T,). SIM draws: the same
  every epoch, a different one per item."""
  cfg = decoder_config
  key = draw_key(cfg.seed, TEST_DRAWS)
  totals = None
  with data_lib.batches(test_source, cfg.batch_size, seed=cfg.seed, epoch=0, shuffle=False,
                        drop_last=False, sharding=sharding, prefetch=prefetch) as batches:
    for i, batch in enumerate(batches):
      if i == cfg.eval_steps:
        break
      sums = evaluate(params, enc_vars, batch, key, cache)
      totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
  totals = jax.device_get(totals)
  count = float(totals['count'])
  mean_latent = totals['z'] / count  # (L, C)
  latent_mean = mean_latent.mean(axis=0)
  latent_var = totals['z_sq'] / (count * mean_latent.shape[0]) - np.square(latent_mean)
  return {'loss': float(totals['loss']) / count, 'mse': float(totals['mse']) / count,
          'power': float(totals['power']) / count, 'mean_latent': mean_latent,
          'latent_mean': latent_mean, 'latent_std': np.sqrt(np.maximum(latent_var, 0.0)),
          'mean_audio': totals['audio'] / count}


def _check_finite(loss_sum, step: int) -> None:
  """Raise ArithmeticError when the summed training loss since the last log is NaN/Inf."""
  if not np.isfinite(float(loss_sum)):
    raise ArithmeticError(f'decoder loss became {float(loss_sum)} by step {step}; lower '
                          f'config.decoder.learning_rate (the last good checkpoint is kept)')


def _decoder_settings(config, trained: TrainedEncoder) -> dict:
  """What a decoder's training depends on (besides its module): resuming needs the same."""
  cfg = config.decoder
  return {'encoder_step': trained.step, 'data': {'name': config.data.name},
          'decoder': {k: cfg[k] for k in ('latents', 'loss', 'learning_rate', 'batch_size',
                                          'steps_per_epoch', 'seed')}}


def train_decoder(config, workdir: str, trained: TrainedEncoder,
                  source: LatentSource) -> tuple[Decoder, DecoderState, dict]:
  """Train (or resume, or just load when done) the decoder of `source` in `<workdir>/decoder/`.

  `config.decoder` holds the settings, `config.data` the corpus (its word-length items).
  Returns the decoder, its final state and the final `test_statistics`.
  """
  cfg = config.decoder
  out_dir = decoder_dir(workdir, source.module)
  mesh = make_mesh()
  sharding = batch_sharding(mesh)
  if cfg.batch_size % mesh.size:
    raise ValueError(f'config.decoder.batch_size={cfg.batch_size} is not divisible by the '
                     f'{mesh.size} devices; use a multiple of {mesh.size}')
  train_source = data_lib.make_source(config.data, 'train', 'words')
  test_source = data_lib.make_source(config.data, 'test', 'words')
  steps_per_epoch = data_lib.steps_per_epoch(train_source, cfg.batch_size, drop_last=True)
  if cfg.steps_per_epoch > 0:
    steps_per_epoch = min(steps_per_epoch, cfg.steps_per_epoch)
  if steps_per_epoch == 0:
    raise ValueError(f'the training split has {len(train_source)} items, fewer than one batch of '
                     f'config.decoder.batch_size={cfg.batch_size}')

  decoder = make_decoder(source.module, source.width, trained.encoder.specs[0].implementation)
  frames = latent_frames(trained, source, train_source.item_length)
  if decoded_length(decoder.layers, frames) != train_source.item_length:
    raise DecoderError(f'the module-{source.module} decoder turns {frames} frames into '
                       f'{decoded_length(decoder.layers, frames)} samples, not the '
                       f'{train_source.item_length} of a {config.data.name} item; the original\'s '
                       f'decoders fit 10240- and 20480-sample items')
  checkpoints = Checkpoints(os.path.join(out_dir, 'checkpoints'), os.path.join(out_dir, 'best'))
  log = io.MetricLog(os.path.join(out_dir, 'metrics.jsonl'), config.wandb, config.to_dict(),
                     wandb_dir=out_dir)
  try:
    check_width(checkpoints, source, out_dir)
    record_settings(os.path.join(out_dir, 'settings.json'), _decoder_settings(config, trained),
                    resuming=checkpoints.latest_step() is not None,
                    fix=f'rerun with those settings to resume, or delete {out_dir} to train a new decoder')
    state = init_state(jax.random.PRNGKey(cfg.seed), decoder=decoder, width=source.width, frames=frames,
                       learning_rate=cfg.learning_rate)
    if checkpoints.latest_step() is not None:
      state = checkpoints.restore(state)
      log.truncate(int(state.step))
      epochs = int(state.step) / steps_per_epoch
      tqdm.write(f'the decoder in {out_dir} has trained {epochs:g} epochs; ' + (
          'writing its outputs' if epochs >= cfg.num_epochs else f'resuming towards {cfg.num_epochs}'))
    state = jax.device_put(state, replicated(mesh))
    enc_vars = jax.device_put(trained.variables, replicated(mesh))
    budget = cfg.latent_cache_gb
    train_cache = None
    if int(state.step) < cfg.num_epochs * steps_per_epoch:
      train_cache = latent_cache(trained, source, train_source, budget, cfg.batch_size, mesh)
      budget -= 0 if train_cache is None else train_cache.nbytes / 1e9
    test_cache = latent_cache(trained, source, test_source, budget, cfg.batch_size, mesh)
    modules = dict(encoder=trained.encoder, source=source, decoder=decoder, loss=cfg.loss)
    step_fn = functools.partial(train_step, **modules, learning_rate=cfg.learning_rate)
    evaluate = functools.partial(eval_step, **modules)
    step = int(state.step)
    stats = None
    with StopRequest() as stop:
      for epoch in range(step // steps_per_epoch, cfg.num_epochs):
        first = step - epoch * steps_per_epoch
        running, count, tick = jnp.zeros(()), 0, time.perf_counter()
        with progress_bar(total=steps_per_epoch, initial=first, unit='step', dynamic_ncols=True,
                          desc=f'decoder module {source.module} epoch {epoch + 1}/{cfg.num_epochs}') as bar, \
             data_lib.batches(train_source, cfg.batch_size, seed=cfg.seed, epoch=epoch, shuffle=True,
                              drop_last=True, start_step=first, sharding=sharding,
                              prefetch=config.data.prefetch) as batches:
          for i, batch in zip(range(first, steps_per_epoch), batches):
            if stop.requested:
              break
            state, loss = step_fn(state, enc_vars, batch, draw_key(cfg.seed, TRAIN_DRAWS, epoch, i), train_cache)
            running, count, step = running + loss, count + 1, step + 1
            bar.update(1)
            if step % cfg.log_every_steps == 0 or i == steps_per_epoch - 1:
              _check_finite(running, step)
              mean = float(running) / count
              rate = count * cfg.batch_size / (time.perf_counter() - tick)
              log.write(step, epoch=epoch, samples_per_second=rate, **{'train/loss': mean})
              bar.set_postfix_str(f'loss {mean:.5f}')
              running, count, tick = jnp.zeros(()), 0, time.perf_counter()
        if stop.requested and step < (epoch + 1) * steps_per_epoch:  # else: evaluate, save, stop
          _check_finite(running, step)
          save_and_stop(checkpoints, state)
        stats = test_statistics(evaluate, state.params, enc_vars, test_source, cfg, sharding,
                                config.data.prefetch, test_cache)
        log.write(step, epoch=epoch, **{'test/loss': stats['loss'], 'test/mse': stats['mse']})
        checkpoints.save(state, val_loss=stats['loss'])
        plot_decoder_loss(io.read_jsonl(os.path.join(out_dir, 'metrics.jsonl')),
                          os.path.join(out_dir, 'loss_curve.png'), cfg.loss)
        if stop.requested:
          save_and_stop(checkpoints, state)
    if stats is None:
      stats = test_statistics(evaluate, state.params, enc_vars, test_source, cfg, sharding,
                              config.data.prefetch, test_cache)
  finally:
    checkpoints.close()
    log.close()
  return decoder, state, stats
