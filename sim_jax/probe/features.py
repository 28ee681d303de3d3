"""Features of a frozen encoder for the probes: which representation, extraction, and the cache.

Feature sources (`config.probe.source`). 'auto' (the default) ties the source to the probe's bias as
the original does (reference-semantics §5.1; linear_classifiers/logistic_regression.py:50-77 `get_z`,
regression=bias): with a bias the context, without one the last Gaussian-head module. Any other value
chooses the source independently of the bias:
  'context'     the context of the last module: the GRU output (SIM / GIM module 3, CPC's GRU);
  'module_<i>'  the output of Gaussian-head module i: SIM / GIM conv modules 0..2, CPC module 0
                (its mean head after the whole conv stack);
  'layer_<j>'   conv layer j of the stack, counted over all conv layers in order (for CPC the
                intermediate layers the original reaches with `encoder_layer`; for SIM / GIM layers
                0-1 are module 0's, 2-3 module 1's, 4 module 2's), before the mean head.
`config.probe.features` picks 'mean' (every module passes on its mean: deterministic) or 'sample'
(SIM only: every Gaussian module passes on a fresh draw, and a 'module_<i>' source is such a draw,
as the original's `get_latents` with deterministic=False); 'auto' (the default) is what the original's
README runs: 'mean' for probes with a bias (README.md:86, 206: deterministic=True), 'sample' for the
bias-free interpretability probes of a SIM encoder (README.md:102, 222: deterministic=False).

Whole utterances are zero-padded to the longest of their batch and pooled over their own frames;
from the second conv layer on, the last frame of a padded utterance differs slightly from an unpadded
pass (that frame's right-edge padding sees the previous layer's output of silence instead of zeros).

Deterministic features are computed once per (checkpoint, source, data split, variant, crop set)
and cached in `<workdir>/probes/cache/<digest>/` (pooled.npy, valid.npy, frames.f32 + offsets.npy
for frame-wise tasks, meta.json with their sha256s; built in a temporary folder and renamed; an entry
that fails its check is rebuilt with a warning), so reruns, other tasks on
the same data and extra seeds reuse them. The key includes a digest of the encoder parameters, so
retraining a workdir never serves stale features. Several sources of one encoder come from a single
pass (`extract_many`; `cached_features(..., also=...)` fills the entries a batch of probes will read
next), as the shared modules then run once.
"""

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from sim_jax import data as data_lib
from sim_jax import io
from sim_jax.checkpoints import tree_digest
from sim_jax.data.cache import warn_damaged_cache
from sim_jax.losses import kl_to_standard_normal
from sim_jax.models import Encoder, encode, head_modules, layers_frames, layers_hop, stack_layers
from sim_jax.workdir import TrainedEncoder

FEATURES = ('mean', 'sample')


class ProbeError(ValueError):
  """Bad probe input: feature source, task, settings the encoder or dataset cannot serve."""


@dataclasses.dataclass(frozen=True)
class FeatureSource:
  """A representation of the encoder.

  name: as in config.probe.source. module: the encoder module that produces it (the encoder runs
  modules 0..module). layer: conv layer index inside that module, or None for its output.
  output: 'c' (context), 'z' (module output: mean or sample), 'layers' (conv layer `layer`) or
  'kl' (the per-dimension KL of the module's Gaussian heads to N(0, 1), `posterior_kl_source`);
  dim: width; hop: samples per frame; sample: SIM samples instead of means.
  """

  name: str
  module: int
  layer: int | None
  output: str
  dim: int
  hop: int
  sample: bool


def resolve_source(trained: TrainedEncoder, name: str, features: str, bias: bool) -> tuple[str, str]:
  """(source, features) with 'auto' resolved as the original pairs them with the probe's bias."""
  specs = trained.encoder.specs
  if name == 'auto':
    name = 'context' if bias else f'module_{head_modules(specs)[-1]}'
  if features == 'auto':
    features = 'sample' if not bias and any(s.gaussian for s in specs) else 'mean'
  return name, features


def feature_source(trained: TrainedEncoder, name: str, features: str = 'mean') -> FeatureSource:
  """Validate config.probe.source / .features against the encoder of `trained`."""
  specs = trained.encoder.specs
  kind = trained.config.model.kind
  if features not in FEATURES:
    raise ProbeError(f"config.probe.features={features!r}: use one of {FEATURES}")
  sample = features == 'sample'
  if sample and not any(s.gaussian for s in specs):
    raise ProbeError(f"config.probe.features='sample' needs a SIM encoder; this one is {kind!r} — "
                     "use 'mean'")
  heads = head_modules(specs)
  conv_layers = [(i, j) for i in heads for j in range(len(specs[i].layers))]
  choices = (f"'context', 'module_<i>' for i in {heads[0]}..{heads[-1]}, "
             f"'layer_<j>' for j in 0..{len(conv_layers) - 1}")
  match = re.fullmatch(r'(context|module|layer)(?:_(\d+))?', name)
  if match is None or (match.group(1) == 'context') != (match.group(2) is None):
    raise ProbeError(f'config.probe.source={name!r} is not a feature source of this {kind} encoder; '
                     f'use {choices}')
  what, index = match.group(1), int(match.group(2) or 0)
  if what == 'context':
    module = len(specs) - 1
    return FeatureSource(name, module, None, 'c', specs[module].gru_hidden,
                         layers_hop(stack_layers(specs)), sample)
  if what == 'module':
    if index not in heads:
      why = f'module {index} is the GRU — use \'context\'' if index < len(specs) else 'out of range'
      raise ProbeError(f'config.probe.source={name!r}: {why}; this {kind} encoder has {choices}')
    return FeatureSource(name, index, None, 'z', specs[index].channels,
                         layers_hop(stack_layers(specs, index)), sample)
  if index >= len(conv_layers):
    raise ProbeError(f'config.probe.source={name!r} is out of range; this {kind} encoder has {choices}')
  module, layer = conv_layers[index]
  return FeatureSource(name, module, layer, 'layers', specs[module].channels,
                       layers_hop(stack_layers(specs, module, layer)), sample)


def posterior_kl_source(trained: TrainedEncoder, module: int) -> FeatureSource:
  """KL(N(mu, exp(logvar)) || N(0, 1)) per frame and dimension of SIM module `module`'s heads (its
  pooled features: the time average per item), named 'module_<i>_kl'; deterministic, so cached."""
  base = feature_source(trained, f'module_{module}', 'mean')
  if not trained.encoder.specs[module].gaussian:
    raise ProbeError(f'module {module} of this {trained.config.model.kind} encoder has no Gaussian '
                     'posterior (its log-variance head is not trained)')
  return dataclasses.replace(base, name=f'{base.name}_kl', output='kl')


def source_frames(specs, source: FeatureSource, num_samples):
  """Frames of `source` for inputs of `num_samples` samples (int, numpy or jax array, elementwise)."""
  return layers_frames(stack_layers(specs, source.module, source.layer), num_samples)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def compute_features(encoder: Encoder, sources: tuple[FeatureSource, ...], keep_frames: bool, variables, audio,
                     lengths, key):
  """Features of each of `sources` for a batch, from one encoder pass: per source (frames (B, L, D),
  pooled (B, D), valid (B, L)); jitted.

  audio (B, T) is zero-padded; `lengths` (B,) are the real samples of each row: frames past them are
  not valid and pooled is the mean over the valid frames only. `key` is used only for SIM samples; the
  sources share one `sample` setting, and a module's draw does not depend on which others are asked
  for (the encoder folds the key per module). Without `keep_frames` frames and valid are None.
  """
  if len({s.sample for s in sources}) != 1:
    raise ValueError('sources computed in one pass must all be samples or all be means')
  outputs = encode(encoder, variables, audio, num_modules=max(s.module for s in sources) + 1,
                   sample_key=key if sources[0].sample else None)
  out = []
  for source in sources:
    module_out = outputs[source.module]
    if source.output == 'layers':
      frames = module_out['layers'][source.layer]
    elif source.output == 'kl':
      frames = kl_to_standard_normal(module_out['mu'].astype(jnp.float32), module_out['logvar'].astype(jnp.float32))
    else:
      frames = module_out[source.output]
    valid = jnp.arange(frames.shape[1])[None, :] < source_frames(encoder.specs, source, lengths)[:, None]
    weights = valid.astype(frames.dtype)
    pooled = jnp.einsum('bld,bl->bd', frames, weights) / jnp.maximum(weights.sum(1, keepdims=True), 1)
    out.append((frames, pooled, valid) if keep_frames else (None, pooled, None))
  return tuple(out)


def params_digest(variables) -> str:
  """A short hash of every array of the encoder's variables (the cache key's identity of weights)."""
  return tree_digest(variables)[:16]


@dataclasses.dataclass
class Features:
  """Features of every item of a data split, in the split's order.

  pooled: (N, D) time-averaged. valid: (N,) bool, False for items whose file was broken and skipped
  while loading (their rows are zero). frames: (F, D) every valid frame of every item, item i's frames at rows
  offsets[i]:offsets[i+1] (None when only pooled features were asked for).
  """

  pooled: np.ndarray
  valid: np.ndarray
  frames: np.ndarray | None = None
  offsets: np.ndarray | None = None


def extract(trained: TrainedEncoder, source: FeatureSource, data_source, *, batch_size: int,
            epoch: int, seed: int, key=None, frames: bool = False, out_dir: str | None = None,
            desc: str = 'features') -> Features:
  """Run the frozen encoder once over `data_source` (whole split, in order, padded last batch).

  Crops (for a cropping source) are those of `data_lib.batches(..., seed, epoch)`. `key` seeds SIM
  samples (required when source.sample). With `frames`, every valid frame is kept too — streamed to
  `out_dir/frames.f32` and memory-mapped when `out_dir` is given (large splits), else in memory.
  """
  return extract_many(trained, (source,), data_source, batch_size=batch_size, epoch=epoch, seed=seed, key=key,
                      frames=frames, out_dirs=None if out_dir is None else [out_dir], desc=desc)[0]


def extract_many(trained: TrainedEncoder, sources, data_source, *, batch_size: int, epoch: int, seed: int,
                 key=None, frames: bool = False, out_dirs=None, desc: str = 'features') -> list[Features]:
  """`extract` for several sources of one encoder (all means or all samples) in a single pass over
  `data_source`: the shared modules run once. `out_dirs`: one folder per source, or None."""
  sources = tuple(sources)
  if sources[0].sample and key is None:
    raise ValueError('sampled features need a PRNG key')
  n = len(data_source)
  batch_size = min(batch_size, n)
  pooled = [np.zeros((n, s.dim), np.float32) for s in sources]
  valid = np.zeros(n, bool)
  chunks, counts = [[] for _ in sources], np.zeros((len(sources), n), np.int64)  # frames per item
  sink_paths = [os.path.join(d, 'frames.f32') for d in out_dirs] if frames and out_dirs else None
  total = data_lib.steps_per_epoch(data_source, batch_size, drop_last=False)
  batches = data_lib.batches(data_source, batch_size, seed=seed, epoch=epoch, shuffle=False,
                             drop_last=False)
  with batches, contextlib.ExitStack() as stack:
    sinks = [stack.enter_context(open(p, 'wb')) for p in sink_paths] if sink_paths else None
    for step, batch in enumerate(tqdm(batches, total=total, desc=desc, unit='batch', leave=False)):
      audio = np.asarray(batch['audio'], np.float32)  # (B, T)
      lengths = np.asarray(batch.get('length', np.full(len(audio), audio.shape[1])))  # (B,)
      step_key = jax.random.fold_in(key, step) if key is not None else jax.random.PRNGKey(0)
      outputs = jax.device_get(compute_features(trained.encoder, sources, frames, trained.variables, audio,
                                                lengths, step_key))  # per source (B, L, D), (B, D), (B, L)
      real = np.flatnonzero(np.asarray(batch['mask']) > 0)  # padding and broken files are 0
      index = np.asarray(batch['index'])[real]
      valid[index] = True
      for s, (f, p, v) in enumerate(outputs):
        pooled[s][index] = p[real]
        if not frames:
          continue
        for b, i in zip(real, index):
          rows = np.ascontiguousarray(f[b][v[b]], np.float32)  # (L_b, D)
          counts[s, i] = len(rows)
          if sinks is not None:
            sinks[s].write(rows.tobytes())
          else:
            chunks[s].append(rows)
  if not frames:
    return [Features(p, valid.copy()) for p in pooled]
  out = []
  for s, source in enumerate(sources):
    offsets = np.concatenate([[0], np.cumsum(counts[s])])  # (N + 1,)
    if sink_paths:
      flat = np.memmap(sink_paths[s], np.float32, 'r', shape=(int(offsets[-1]), source.dim))
    else:
      flat = np.concatenate(chunks[s]) if chunks[s] else np.zeros((0, source.dim), np.float32)
    out.append(Features(pooled[s], valid.copy(), flat, offsets))
  return out


def cache_key(trained: TrainedEncoder, source: FeatureSource, data_source, *, data_config,
              batch_size: int, epoch: int, seed: int) -> dict:
  """What deterministic features depend on: weights, source, data split / variant / settings, crops."""
  return {'checkpoint': os.path.abspath(trained.path), 'step': trained.step,
          'weights': params_digest(trained.variables), 'source': source.name,
          'corpus': data_source.corpus, 'split': data_source.split, 'variant': data_source.variant,
          'items': len(data_source), 'data': data_config.to_dict(),
          # crops are a function of (seed, epoch, batch position): only for cropping sources
          'crops': [seed, epoch, batch_size] if data_source.item_length and _crops(data_source) else None}


def _crops(data_source) -> bool:
  return callable(getattr(data_source, 'crop_starts', None))


def cached_features(cache_dir: str, trained: TrainedEncoder, source: FeatureSource, data_source, *,
                    data_config, batch_size: int, epoch: int = 0, seed: int = 0,
                    frames: bool = False, also=()) -> Features:
  """Deterministic features of `data_source`, from `cache_dir` or computed once and stored there.

  An entry holds pooled.npy, valid.npy and, once frames were asked for, frames.f32 + offsets.npy;
  it is built in a temporary folder and renamed into place, so a killed run leaves no half entry.
  `also`: further deterministic sources of the same encoder to cache in the same encoder pass when
  `source` must be computed (the sources a batch of probes will ask for next), each only if missing.
  """
  sources = (source, *(s for s in also if s != source))
  if any(s.sample for s in sources):
    raise ValueError('sampled features are redrawn every pass and never cached')
  keys = [cache_key(trained, s, data_source, data_config=data_config, batch_size=batch_size, epoch=epoch,
                    seed=seed) for s in sources]
  entries = [os.path.join(cache_dir, hashlib.sha1(json.dumps(k, sort_keys=True, default=str).encode()).hexdigest()[:20])
             for k in keys]
  folder = entries[0]
  held = _held_entry(folder, source.dim, frames)
  if held is not None:
    return held
  # an extra source's entry is checked in full when it is asked for
  todo = [i for i, f in enumerate(entries) if i == 0 or not _lists_entry(f, frames)]
  tmps = []
  try:
    for i in todo:  # one at a time, so a failure leaves every folder made so far in `tmps` to remove
      tmps.append(io.temp_beside(entries[i], folder=True))
    names = ', '.join(sources[i].name for i in todo)
    what = f'{names} features ({data_source.corpus} {data_source.split} {data_source.variant})'
    computed = extract_many(trained, [sources[i] for i in todo], data_source, batch_size=batch_size, epoch=epoch,
                            seed=seed, frames=frames, out_dirs=tmps, desc=what)
    for i, feats, tmp in zip(todo, computed, tmps):
      s, f = sources[i], entries[i]
      np.save(os.path.join(tmp, 'pooled.npy'), feats.pooled)
      np.save(os.path.join(tmp, 'valid.npy'), feats.valid)
      if frames:
        np.save(os.path.join(tmp, 'offsets.npy'), feats.offsets)
      files = {name: io.file_digest(os.path.join(tmp, name)) for name in sorted(os.listdir(tmp))}
      io.write_json(os.path.join(tmp, 'meta.json'), {**keys[i], 'frames': frames, 'dim': s.dim,
                                                     'names': list(data_source.names), 'sha256': files})
      if os.path.exists(f):
        shutil.rmtree(f)
      os.rename(tmp, f)
  except BaseException as e:
    for tmp in tmps:
      shutil.rmtree(tmp, ignore_errors=True)
    full = io.disk_full_reason(e)
    if full is None:
      raise
    raise io.DiskFull(folder, len(data_source) * sum(sources[i].dim for i in todo) * 4,  # pooled: a lower bound
                      full) from None
  return _load_entry(folder, source.dim)


def _lists_entry(folder: str, frames: bool) -> bool:
  """Whether `folder`'s meta.json says it holds what is asked for (its files are not checked)."""
  try:
    held = io.read_json(os.path.join(folder, 'meta.json'))
    return not frames or bool(held['frames'])
  except (OSError, ValueError, KeyError, TypeError):
    return False


def _held_entry(folder: str, dim: int, frames: bool) -> Features | None:
  """The entry in `folder` when it is whole and holds what is asked for (frames or not), else None
  (a damaged one is reported and will be rebuilt)."""
  if not os.path.exists(os.path.join(folder, 'meta.json')):
    return None
  try:
    held = _checked_meta(folder)
  except (OSError, ValueError, KeyError, TypeError) as e:
    warn_damaged_cache(folder, e)
    return None
  return _load_entry(folder, dim) if not frames or held['frames'] else None


def _checked_meta(folder: str) -> dict:
  """An entry's meta.json, after checking every file against the sha256 it records (ValueError:
  a file is missing, cut or damaged; an entry from before the digests counts as damaged)."""
  held = io.read_json(os.path.join(folder, 'meta.json'))
  for name, digest in held['sha256'].items():
    if io.file_digest(os.path.join(folder, name)) != digest:
      raise ValueError(f'{name} does not match its sha256')
  return held


def _load_entry(folder: str, dim: int) -> Features:
  pooled = np.load(os.path.join(folder, 'pooled.npy'))
  valid = np.load(os.path.join(folder, 'valid.npy'))
  offsets_path = os.path.join(folder, 'offsets.npy')
  if not os.path.exists(offsets_path):
    return Features(pooled, valid)
  offsets = np.load(offsets_path)
  frames = np.memmap(os.path.join(folder, 'frames.f32'), np.float32, 'r', shape=(int(offsets[-1]), dim))
  return Features(pooled, valid, frames, offsets)
