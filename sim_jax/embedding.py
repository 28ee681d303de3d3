"""A trained encoder as a feature extractor: `sim_jax.load_encoder(workdir).encode(waves)`.

  enc = sim_jax.load_encoder('workdirs/sim_deboer')              # checkpoint='latest' | 'best' | a step
  out = enc.encode(waves, lengths)                                # waves (B, T) at 16 kHz, lengths (B,)
  out['module_2'].features                                        # (B, T_m, C) float32
  out['module_2'].frames                                          # (B,) valid frames of each row

Every module output is returned (`module_<i>` for each Gaussian-head module, `context` for the GRU) with
the arithmetic that aligns its frames with the waveform: frame t of a module sees the samples
[start + t·hop, start + t·hop + receptive_field) (the context also every earlier frame, through the
GRU). A frame counts as valid only where that field ends inside the row's own samples, so the frames
of a row never depend on what the batch padded it with (or on how long the batch is): a batch of
different lengths equals its items encoded one by one, to float32 round-off; frames past a row's
valid ones are zero. The waveform batch is zero-padded to a few lengths (`bucket_length`: two per
octave), so a stream of files of different lengths compiles once per length bucket, not per file.

Features are the modules' means (deterministic; GIM, CPC) or, with features='sample', SIM samples:
each Gaussian module passes on z = mu + exp(logvar / 2)·eps, as the original's `get_latents` does.
The draws of row b come from its own key (`fold_in(key, b)`, or the b-th of a batch of keys), frame by
frame, so they too are independent of padding; the same key gives the same samples.
"""

import contextlib
import dataclasses
import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sim_jax.data.audio import SAMPLE_RATE
from sim_jax.data.resample import resample as resample_audio
from sim_jax.models import (Encoder, encode, frame_counts, head_modules, layers_hop, layers_receptive_field,
                            layers_start, layers_valid_frames, stack_layers)
from sim_jax.workdir import TrainedEncoder, load_trained_encoder

FEATURES = ('mean', 'sample')
MIN_BUCKET = 4096  # samples: the shortest padded length (0.256 s), above every encoder's receptive field
# what jax records for each XLA compilation, and for each executable read from its persistent
# compilation cache instead (jax.monitoring): either is one program built for one bucket
COMPILE_EVENT = '/jax/core/compile/backend_compile_duration'
CACHE_HIT_EVENT = '/jax/compilation_cache/cache_hits'
# float waveforms are in [-1, 1]; beyond this they are integer samples stored as floats, most likely
LOUDEST = 2.0


@dataclasses.dataclass(frozen=True)
class ModuleFeatures:
  """One module's output for a batch.

  features: (B, T_m, C) float32, T_m the most valid frames of any row; zero past a row's `frames`.
  frames: (B,) int64, the valid frames of each row.
  hop: samples between consecutive frames. receptive_field: samples one frame sees through the
  convolutions. start: the sample where frame 0's field starts (negative: the convs' zero padding),
  so frame t sees samples [start + t·hop, start + t·hop + receptive_field).
  """

  features: np.ndarray
  frames: np.ndarray
  hop: int
  receptive_field: int
  start: int


@dataclasses.dataclass(frozen=True)
class _Output:
  """Where a module output comes from: the encoder module that makes it and which of its outputs."""

  name: str
  module: int
  key: str  # 'z' (a module's mean or sample) or 'c' (the GRU context)
  layers: tuple  # every conv layer from the waveform to it


@contextlib.contextmanager
def count_compilations():
  """`with count_compilations() as count:` count['compilations'] of the XLA programs built inside the
  block, of any function (a new length bucket costs one): compiled (count['seconds'] of compiling) or
  read from jax's persistent compilation cache, where one is set."""
  count = {'compilations': 0, 'seconds': 0.0}

  def compiled(event, seconds, **_):
    if event == COMPILE_EVENT:
      count['compilations'] += 1
      count['seconds'] += seconds

  def cached(event, **_):
    if event == CACHE_HIT_EVENT:
      count['compilations'] += 1
  jax.monitoring.register_event_duration_secs_listener(compiled)
  jax.monitoring.register_event_listener(cached)
  try:
    yield count
  finally:
    jax.monitoring.unregister_event_duration_listener(compiled)
    jax.monitoring.unregister_event_listener(cached)


def bucket_length(samples: int, buckets: Sequence[int] = ()) -> int:
  """The padded length of a batch whose longest row has `samples` samples: the smallest of `buckets`
  that holds it, else the next of 4096, 6144, 8192, 12288, 16384, … (2^k and 1.5·2^k: at most 1.5× the
  row, two compilations per octave)."""
  fits = [b for b in buckets if b >= samples]
  if fits:
    return min(fits)
  size = 1 << max(int(samples) - 1, 0).bit_length()  # the power of two >= samples
  if size * 3 // 4 >= samples:
    size = size * 3 // 4
  return max(size, MIN_BUCKET)


def choose_buckets(lengths, count: int = 8, granule: int = 1600) -> tuple[int, ...]:
  """At most `count` padded lengths for rows of known `lengths` (samples) that minimise the padded
  samples in all, each a multiple of `granule` (0.1 s; coarser for a very wide range) and at least
  MIN_BUCKET: a folder's files then compile `count` times at most, with less padding than the fixed
  sizes of `bucket_length`. Exact (dynamic programming over the distinct sizes)."""
  lengths = np.maximum(np.asarray(lengths, np.int64), 1)
  if lengths.size == 0:
    return ()
  while -(-lengths.max() // granule) > 4000:  # keeps the program's n^2 table small
    granule *= 2
  sizes, counts = np.unique(np.where(lengths <= MIN_BUCKET, MIN_BUCKET, -(-lengths // granule) * granule),
                            return_counts=True)
  n = len(sizes)
  before = np.concatenate([[0], np.cumsum(counts)])  # rows up to each size
  # cost[i, j]: the rows of sizes i..j-1 padded to size j-1
  cost = np.where(np.arange(n + 1)[:, None] < np.arange(n + 1)[None, :],
                  (before[None, :] - before[:, None]) * np.concatenate([[0], sizes])[None, :], np.inf)
  best = cost[0].copy()  # best[j]: sizes 0..j-1 in one bucket (none for j = 0)
  best[0] = 0
  choice = [np.zeros(n + 1, np.int64)]
  for _ in range(min(count, n) - 1):
    total = best[:, None] + cost  # (i, j): the first i sizes as before, then one bucket of i..j-1
    choice.append(np.argmin(total, axis=0))
    best = np.min(total, axis=0)
  out, j = [], n
  for split in reversed(choice):  # walk the choices back from the last size
    if j == 0:
      break
    out.append(int(sizes[j - 1]))
    j = int(split[j])
  return tuple(sorted(set(out)))


def _module_outputs(encoder: Encoder) -> dict[str, _Output]:
  """The outputs `encode` can return, by name: 'module_<i>' for each Gaussian-head module, 'context'."""
  specs = encoder.specs
  outputs = {f'module_{i}': _Output(f'module_{i}', i, 'z', stack_layers(specs, i)) for i in head_modules(specs)}
  last = len(specs) - 1
  outputs['context'] = _Output('context', last, 'c', stack_layers(specs, last))
  return outputs


def _frame_draws(keys, specs, num_modules: int, num_samples: int) -> list:
  """Standard-normal draws (None, eps_z) of each Gaussian module, (B, L, C): row b's frame t from
  fold_in(fold_in(keys[b], module), t), so a row's draws depend on its key and frame index only."""
  frames = frame_counts(specs, num_samples)
  eps = []
  for i, spec in enumerate(specs[:num_modules]):
    if not spec.gaussian:
      eps.append(None)
      continue

    def row(key, i=i, channels=spec.channels, length=frames[i]):  # (L, C)
      key = jax.random.fold_in(key, i)
      return jax.vmap(lambda t: jax.random.normal(jax.random.fold_in(key, t), (channels,)))(jnp.arange(length))
    eps.append((None, jax.vmap(row)(keys)))
  return eps


@functools.partial(jax.jit, static_argnames=('encoder', 'outputs'))
def _forward(encoder: Encoder, outputs: tuple, variables, audio, frames, keys):
  """The requested outputs of a padded batch, zero past each row's valid frames; jitted.

  audio: (B, T) zero-padded; frames: (B, n) valid frames of each row for each of the n `outputs`;
  keys: (B, 2) uint32 row keys for SIM samples, or (2,) one key (row b uses fold_in(key, b)), or None
  for means.
  """
  num_modules = max(o.module for o in outputs) + 1
  eps = None
  if keys is not None:
    if keys.ndim == 1:
      keys = jax.vmap(lambda b: jax.random.fold_in(keys, b))(jnp.arange(audio.shape[0]))
    eps = _frame_draws(keys, encoder.specs, num_modules, audio.shape[1])
  result = encode(encoder, variables, audio, num_modules=num_modules, eps=eps)
  out = {}
  for j, o in enumerate(outputs):
    x = result[o.module][o.key]  # (B, L, C)
    keep = jnp.arange(x.shape[1])[None, :] < frames[:, j:j + 1]  # (B, L)
    out[o.name] = jnp.where(keep[..., None], x, 0).astype(jnp.float32)
  return out


def _as_float(x: np.ndarray, what: str) -> np.ndarray:
  """float32 samples in [-1, 1] from float or signed-integer PCM (int16 / 32768, as torchaudio reads)."""
  if np.issubdtype(x.dtype, np.signedinteger):
    return (x / float(-np.iinfo(x.dtype).min)).astype(np.float32)
  if not np.issubdtype(x.dtype, np.floating):
    raise ValueError(f'{what} has dtype {x.dtype}: give float samples in [-1, 1] or signed-integer PCM (int16)')
  x = x.astype(np.float32)
  loudest = float(np.max(np.abs(x))) if x.size else 0.0
  if not np.isfinite(loudest):
    raise ValueError(f'{what} holds NaN or infinite samples')
  if loudest > LOUDEST:
    raise ValueError(f'{what} is float with max |sample| {loudest:g}; float waveforms are in [-1, 1] — '
                     'integer samples stored as floats? divide them by 32768, or pass the int16 array')
  return x


def _batch(waves, lengths) -> tuple[np.ndarray, np.ndarray]:
  """(B, T) float32 and (B,) int64 lengths from an array or a list of 1-D arrays; one-line errors."""
  if isinstance(waves, (list, tuple)):
    if lengths is not None:
      raise ValueError('waves is a list of arrays, which carry their own lengths: drop lengths=')
    items = [_as_float(np.asarray(w), f'waves[{b}]') for b, w in enumerate(waves)]
    for b, w in enumerate(items):
      if w.ndim != 1:
        raise ValueError(f'waves[{b}] has shape {w.shape}: each item of a list must be mono (samples,)')
    if not items:
      raise ValueError('waves is an empty list')
    lengths = np.array([len(w) for w in items], np.int64)
    batch = np.zeros((len(items), int(lengths.max())), np.float32)
    for b, w in enumerate(items):
      batch[b, :len(w)] = w
    return batch, lengths
  waves = np.asarray(waves)
  if waves.ndim == 1:
    waves = waves[None]
  elif waves.ndim == 3:
    raise ValueError(f'waves has shape {waves.shape}, (batch, channels, samples)?: give mono (batch, '
                     'samples) — waves.mean(axis=1), or waves[:, 0] for the first channel')
  elif waves.ndim != 2:
    raise ValueError(f'waves has shape {waves.shape}: give (samples,) for one item or (batch, samples)')
  elif waves.shape[1] <= 8 < waves.shape[0]:
    raise ValueError(f'waves has shape {waves.shape}, (samples, channels)?: give mono (samples,) — '
                     'waves.mean(axis=1) — or (batch, samples) — waves.T for one row per channel')
  waves = _as_float(waves, 'waves')
  if lengths is None:
    return waves, np.full(len(waves), waves.shape[1], np.int64)
  lengths = np.asarray(lengths)
  if lengths.shape != (len(waves),) or not np.issubdtype(lengths.dtype, np.integer):
    raise ValueError(f'lengths has shape {lengths.shape} and dtype {lengths.dtype}: give one integer per row '
                     f'of waves, shape ({len(waves)},)')
  bad = np.flatnonzero((lengths < 1) | (lengths > waves.shape[1]))
  if bad.size:
    raise ValueError(f'lengths[{bad[0]}] = {lengths[bad[0]]}: a row holds 1 to {waves.shape[1]} samples')
  return waves, lengths.astype(np.int64)


def _row_keys(key, batch: int) -> np.ndarray:
  """A PRNG key (raw uint32 (2,) or typed) or one per row ((B, 2) / (B,)) as raw uint32 data."""
  if key is None:
    raise ValueError("features='sample' needs key= (e.g. jax.random.key(0); the same key gives the same "
                     'samples), or a batch of keys, one per row')
  if hasattr(key, 'dtype') and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
    key = jax.random.key_data(key)
  key = np.asarray(key)
  if key.dtype != np.uint32 or key.shape not in ((2,), (batch, 2)):
    raise ValueError(f'key has shape {key.shape} and dtype {key.dtype}: give one PRNG key (jax.random.key(0)) '
                     f'or one per row ({batch} keys)')
  return key


class FeatureExtractor:
  """A trained encoder with `encode(waves)` returning every module's features (see the module docstring).

  Attributes: config (the training run's), step (of the checkpoint), path (its folder), outputs (the
  names `encode` can return, in order), sample_rate (16000).
  """

  sample_rate = SAMPLE_RATE

  def __init__(self, trained: TrainedEncoder):
    """Wraps `trained` (`sim_jax.workdir.load_trained_encoder`); its variables go to the device once."""
    self.trained = trained
    self.config = trained.config
    self.step = trained.step
    self.path = trained.path
    self._outputs = _module_outputs(trained.encoder)
    self.outputs = tuple(self._outputs)
    self._variables = jax.device_put(trained.variables)

  def __repr__(self) -> str:
    """e.g. <FeatureExtractor sim 512 channels, step 1000: module_0, module_1, module_2, context>."""
    model = self.config.model
    return (f'<FeatureExtractor {model.kind} {model.channels} channels, step {self.step}: '
            f'{", ".join(self.outputs)}>')

  def describe(self, name: str) -> dict:
    """{'hop', 'receptive_field', 'start', 'channels'} of output `name` (samples; see `ModuleFeatures`)."""
    o = self._outputs[self.select([name])[0]]
    spec = self.trained.encoder.specs[o.module]
    return {'hop': layers_hop(o.layers), 'receptive_field': layers_receptive_field(o.layers),
            'start': layers_start(o.layers), 'channels': spec.gru_hidden if o.key == 'c' else spec.channels}

  def valid_frames(self, name: str, lengths):
    """Valid frames of output `name` for rows of `lengths` samples (an int or a numpy array)."""
    return layers_valid_frames(self._outputs[self.select([name])[0]].layers, lengths)

  def check_features(self, features: str, flag: str = 'features') -> None:
    """A one-line ValueError unless `features` is 'mean', or 'sample' of a SIM encoder (`flag` names
    the setting in the message)."""
    if features not in FEATURES:
      raise ValueError(f'{flag}={features!r}: use one of {", ".join(FEATURES)}')
    if features == 'sample' and not any(s.gaussian for s in self.trained.encoder.specs):
      raise ValueError(f"{flag}='sample' needs a SIM encoder; this one is {self.config.model.kind!r} — "
                       f"use {flag}='mean'")

  def select(self, modules) -> list[str]:
    """The output names `modules` asks for ('all', a comma-separated string or a list), in the
    encoder's order; an unknown name raises a one-line ValueError listing the choices."""
    if isinstance(modules, str):
      modules = self.outputs if modules == 'all' else [m.strip() for m in modules.split(',') if m.strip()]
    unknown = [m for m in modules if m not in self._outputs]
    if unknown or not modules:
      raise ValueError(f'modules={unknown[0] if unknown else modules!r} is not an output of this '
                       f'{self.config.model.kind} encoder; use \'all\' or some of {", ".join(self.outputs)}')
    return [name for name in self.outputs if name in modules]

  def lowered(self, batch: int, samples: int, modules: str | Sequence[str] = 'all'):
    """The jitted forward pass of `encode` (features='mean') for a (batch, samples) padded batch, lowered
    but not compiled: `.cost_analysis()['flops']` is XLA's FLOP count of it, `.compile()` the program."""
    outputs = tuple(self._outputs[name] for name in self.select(modules))
    frames = np.ones((batch, len(outputs)), np.int32)
    return _forward.lower(self.trained.encoder, outputs, self._variables, np.zeros((batch, samples), np.float32),
                          frames, None)

  def encode(self, waves, lengths=None, sample_rate: int = SAMPLE_RATE, modules: str | Sequence[str] = 'all',
             features: str = 'mean', key=None, resample: bool = False, buckets: Sequence[int] = ()
             ) -> dict[str, ModuleFeatures]:
    """Features of a batch of waveforms, per requested output (`ModuleFeatures`, in the encoder's order).

    Args:
      waves: (B, T) float samples in [-1, 1] or signed-integer PCM (int16 is divided by 32768),
        numpy or jax; a (T,) array is one item (B = 1); or a list of (T_b,) arrays of any lengths.
      lengths: (B,) the valid samples of each row (default: all T).
      sample_rate: the rate of `waves`; one other than the encoder's (16 kHz) raises unless `resample`.
      modules: 'all', or names among `self.outputs` (a list or a comma-separated string).
      features: 'mean' (deterministic) or 'sample' (SIM only: each Gaussian module passes on a draw).
      key: the PRNG key of 'sample' (required there; unused for 'mean'), or one key per row.
      resample: resample each row to 16 kHz with the training run's resampler (config.data.resampler).
      buckets: padded lengths to choose from (`bucket_length`), e.g. `choose_buckets` of a folder's
        lengths; default: the fixed sizes 4096, 6144, 8192, …
    """
    self.check_features(features)
    outputs = [self._outputs[name] for name in self.select(modules)]
    waves, lengths = _batch(waves, lengths)
    if sample_rate != self.sample_rate:
      if not resample:
        raise ValueError(f'waves are at {sample_rate} Hz, this encoder was trained at {self.sample_rate} Hz: '
                         f'resample them to {self.sample_rate} Hz, or pass resample=True')
      rows = [resample_audio(w[:n], int(sample_rate), self.sample_rate, self.config.data.get('resampler', 'sinc'))
              for w, n in zip(waves, lengths)]
      waves, lengths = _batch(rows, None)
    keys = _row_keys(key, len(waves)) if features == 'sample' else None
    frames = np.stack([layers_valid_frames(o.layers, lengths) for o in outputs], axis=1)  # (B, n)
    short = np.argwhere(frames < 1)
    if short.size:
      b, j = short[0]
      need = layers_receptive_field(outputs[j].layers) + layers_start(outputs[j].layers)
      raise ValueError(f'row {b} has {lengths[b]} samples, fewer than the {need} that one frame of '
                       f'{outputs[j].name} needs')
    padded = np.zeros((len(waves), bucket_length(int(lengths.max()), buckets)), np.float32)  # (B, T_bucket)
    for b, n in enumerate(lengths):
      padded[b, :n] = waves[b, :n]
    result = jax.device_get(_forward(self.trained.encoder, tuple(outputs), self._variables, padded,
                                     frames.astype(np.int32), keys))
    out = {}
    for j, o in enumerate(outputs):
      hop, field, start = layers_hop(o.layers), layers_receptive_field(o.layers), layers_start(o.layers)
      out[o.name] = ModuleFeatures(np.asarray(result[o.name][:, :int(frames[:, j].max())]), frames[:, j],
                                   hop, field, start)
    return out


def load_encoder(workdir: str, checkpoint: str | int = 'latest') -> FeatureExtractor:
  """The encoder of a training workdir (train.py's, or one `python -m sim_jax.reference import` made from
  an original PyTorch checkpoint) as a `FeatureExtractor`; `checkpoint` is 'latest' (the original's
  choice), 'best' (train.select_best=True runs; else the latest) or a step number."""
  return FeatureExtractor(load_trained_encoder(workdir, checkpoint))
