"""The SIM / GIM / CPC encoder: a stack of independently trained modules.

SIM and GIM stack three strided conv modules (each ending in 1x1 mean and log-variance heads) and a
GRU module; CPC is one module (conv stack, mean head, GRU) trained end to end. Every module also owns
its bias-free InfoNCE predictor (`predictor`, (H_context, K * C)), used by `sim_jax.losses`.

The random numbers a forward pass needs (the normal draws of the Gaussian heads) are arguments, so
that recorded draws can be fed in (`sim_jax.reference`) and the step stays a pure function.
"""

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sim_jax.models.layers import GRU, BatchNorm1d, Conv1d, conv_frames, torch_uniform

# The original's base conv stack (reference-semantics §1.1): (kernel, stride, padding) per layer.
BASE_LAYERS = ((10, 5, 2), (8, 4, 2), (4, 2, 2), (4, 2, 2), (4, 2, 1))
# How SIM / GIM split the base stack into modules (§1.2).
GREEDY_SPLIT = ((0, 1), (2, 3), (4,))
# The CPC "extra layers" variant (§1.6): 1x1 no-ReLU layers mimic the ends of the SIM modules.
CPC_EXTRA_LAYERS = ((10, 5, 2, True), (8, 4, 2, True), (1, 1, 0, False), (4, 2, 2, True),
                    (4, 2, 2, True), (1, 1, 0, False), (4, 2, 1, True), (1, 1, 0, False))

KINDS = ('sim', 'gim', 'cpc')
# How the step is formulated (config.model.implementation). 'cpu': the choices tuned for XLA:CPU —
# convolutions as im2col matmuls with a custom gradient (layers.patch_conv), Gaussian draws one batch
# row at a time, InfoNCE a chunk of rows at a time with its gathers redone in the backward pass.
# 'plain': lax.conv, whole-batch draws, unchunked InfoNCE, which XLA:GPU/TPU schedule and fuse
# themselves. Both give the same numbers (same key -> same draws); 'auto' picks per backend.
IMPLEMENTATIONS = ('auto', 'cpu', 'plain')
MATMUL_PRECISIONS = ('highest', 'high', 'default', 'float32', 'tensorfloat32', 'bfloat16')
COMPUTE_DTYPES = ('float32', 'bfloat16')


@dataclasses.dataclass(frozen=True)
class ModuleSpec:
  """Static description of one module of the stack.

  kind: 'conv' (strided conv stack + mean/log-variance heads), 'gru' (context module on the
    previous module's output) or 'cpc' (conv stack + mean head + GRU, one module).
  layers: (kernel, stride, padding, relu) per conv layer; empty for 'gru'.
  gaussian: the module's output is sampled from N(mu, exp(logvar)) (SIM).
  """

  kind: str
  layers: tuple = ()
  channels: int = 512
  gru_hidden: int = 256
  use_batch_norm: bool = True
  gaussian: bool = False
  implementation: str = 'cpu'  # 'cpu' | 'plain' (resolved, see IMPLEMENTATIONS)

  @property
  def context_dim(self) -> int:
    """Width of the context c that the InfoNCE predictor reads."""
    return self.channels if self.kind == 'conv' else self.gru_hidden

  def frames(self, length: int) -> int:
    """Number of output frames for an input of `length` frames (samples for the first module)."""
    return layers_frames(self.layers, length)


def layers_frames(layers, length):
  """Frames after the conv `layers` ((kernel, stride, padding, ...) each, in order) for inputs of
  `length` frames (an int, or a numpy / jax array elementwise), e.g. 20480 samples -> 128 frames
  through the whole base stack."""
  for kernel, stride, padding, *_ in layers:
    length = conv_frames(length, kernel, stride, padding)
  return length


def layers_hop(layers) -> int:
  """Input frames (samples for a stack starting at the waveform) between consecutive output frames."""
  hop = 1
  for _, stride, *_ in layers:
    hop *= stride
  return hop


def layers_receptive_field(layers) -> int:
  """Input frames needed to produce one output frame of the conv `layers`."""
  field = 1
  for kernel, stride, *_ in reversed(layers):
    field = (field - 1) * stride + kernel
  return field


def layers_start(layers) -> int:
  """Input frame where the receptive field of output frame 0 of the conv `layers` starts: minus the
  convs' zero padding on the left, e.g. -212 samples through the whole base stack. Output frame t
  sees input frames [start + t·hop, start + t·hop + receptive field)."""
  start, hop = 0, 1
  for _, stride, padding, *_ in layers:
    start -= padding * hop
    hop *= stride
  return start


def layers_valid_frames(layers, length):
  """Output frames of the conv `layers` whose receptive field ends inside the first `length` input
  frames (an int or a numpy array, elementwise), e.g. 63 of the 64 frames of 10240 samples through
  the base stack: the frames nothing after `length` can change. The later frames reach into the
  convs' zero padding on the right, which in a batch padded past `length` holds the previous
  layer's output on the padding instead; the left padding is the same in every pass."""
  hop, field = layers_hop(layers), layers_receptive_field(layers)
  return np.maximum((length - layers_start(layers) - field) // hop + 1, 0)


def stack_layers(specs: Sequence[ModuleSpec], module: int | None = None, layer: int | None = None) -> tuple:
  """Every conv layer from the waveform to the output of module `module` (default: the last), or,
  with `layer`, through conv layer `layer` of that module."""
  module = len(specs) - 1 if module is None else module
  layers = sum((spec.layers for spec in specs[:module]), ())
  own = specs[module].layers
  return layers + (own if layer is None else own[:layer + 1])


def head_modules(specs: Sequence[ModuleSpec]) -> list[int]:
  """Indices of the modules with Gaussian (mean / log-variance) heads: SIM / GIM conv modules, CPC's."""
  return [i for i, spec in enumerate(specs) if spec.kind in ('conv', 'cpc')]


def resolve_implementation(model_config) -> str:
  """'cpu' or 'plain' for `config.model.implementation` ('auto': 'cpu' on the CPU backend)."""
  choice = model_config.implementation
  if choice not in IMPLEMENTATIONS:
    raise ValueError(f'config.model.implementation={choice!r}: use one of {IMPLEMENTATIONS}')
  if choice == 'auto':
    return 'cpu' if jax.default_backend() == 'cpu' else 'plain'
  return choice


def compute_dtype(model_config):
  """The activation / matmul dtype of `config.model.compute_dtype` (parameters stay float32)."""
  dtype = model_config.compute_dtype
  if dtype not in COMPUTE_DTYPES:
    raise ValueError(f'config.model.compute_dtype={dtype!r}: use one of {COMPUTE_DTYPES}')
  return jnp.dtype(dtype)


def module_specs(model_config) -> tuple[ModuleSpec, ...]:
  """Module specs for `config.model` (kind sim|gim|cpc, channels, gru_hidden, use_batch_norm, ...)."""
  kind = model_config.kind
  common = dict(channels=model_config.channels, gru_hidden=model_config.gru_hidden,
                use_batch_norm=model_config.use_batch_norm,
                implementation=resolve_implementation(model_config))
  if kind in ('sim', 'gim'):
    convs = tuple(
        ModuleSpec('conv', tuple(BASE_LAYERS[j] + (True,) for j in split), gaussian=(kind == 'sim'),
                   **common) for split in GREEDY_SPLIT)
    return convs + (ModuleSpec('gru', **common),)
  if kind == 'cpc':
    variant = model_config.cpc_variant
    if variant == 'conventional':
      layers = tuple(layer + (True,) for layer in BASE_LAYERS)
    elif variant == 'extra_layers':
      layers = CPC_EXTRA_LAYERS
    else:
      raise ValueError(f"config.model.cpc_variant={variant!r}: use 'conventional' or 'extra_layers'")
    return (ModuleSpec('cpc', layers, **common),)
  raise ValueError(f'config.model.kind={kind!r}: use one of {KINDS}')


class ConvStack(nn.Module):
  """Conv blocks: Conv1d -> [BatchNorm1d] -> ReLU, or a bare Conv1d where a layer has no ReLU."""

  spec: ModuleSpec

  @nn.compact
  def __call__(self, x, train: bool):  # (B, T, C_in) -> list of (B, L_j, C) per layer
    outputs = []
    for j, (kernel, stride, padding, relu) in enumerate(self.spec.layers):
      x = Conv1d(self.spec.channels, kernel, stride, padding, plain=self.spec.implementation == 'plain',
                 name=f'conv_{j}')(x)
      if relu:
        if self.spec.use_batch_norm:
          x = BatchNorm1d(name=f'bn_{j}')(x, train)
        x = nn.relu(x)
      outputs.append(x)
    return outputs


class EncoderModule(nn.Module):
  """One module of the stack; returns what its loss and the next module need.

  Outputs (dict, all (B, L, ·)):
    'mu', 'logvar': the Gaussian heads (conv and cpc modules);
    'c': the context the predictor reads; 'z': the InfoNCE targets, also passed on (conv: a sample
      in SIM, else mu; gru: its input; cpc: mu);
    'layers': every conv layer's output (for probes on intermediate CPC layers).
  `eps_c`, `eps_z` are standard-normal draws (B, L, C) for the two samples of a Gaussian module;
  None means the mean is used (GIM, CPC, or deterministic features).
  """

  spec: ModuleSpec
  num_steps: int = 10

  @nn.compact
  def __call__(self, x, train: bool, eps_c=None, eps_z=None):  # x (B, T, C_in)
    spec = self.spec
    out = {}
    if spec.kind in ('conv', 'cpc'):
      layers = ConvStack(spec, name='encoder')(x, train)
      h = layers[-1]
      plain = spec.implementation == 'plain'
      mu = Conv1d(spec.channels, 1, plain=plain, name='mu_head')(h)
      logvar = Conv1d(spec.channels, 1, plain=plain, name='logvar_head')(h)
      out.update(mu=mu, logvar=logvar, layers=layers)
      std = jnp.exp(0.5 * logvar) if spec.gaussian else None
      c = mu if eps_c is None or not spec.gaussian else mu + std * eps_c.astype(mu.dtype)
      z = mu if eps_z is None or not spec.gaussian else mu + std * eps_z.astype(mu.dtype)
      if spec.kind == 'cpc':
        c = GRU(spec.gru_hidden, name='gru')(z)
    else:  # 'gru'
      z = x
      c = GRU(spec.gru_hidden, name='gru')(x)
    out.update(c=c, z=z)
    self.param('predictor', torch_uniform(spec.context_dim ** -0.5),
               (spec.context_dim, self.num_steps * spec.channels))
    return out


class Encoder(nn.Module):
  """The whole stack. Modules are named `module_<i>`; gradients stop between them.

  Args to `__call__`:
    audio: (B, T) waveforms; with `first_module` i > 0, module i - 1's output z (B, L, C) instead.
    train: one bool, or one per module run (False puts BatchNorm in eval mode).
    eps: per module run a pair (eps_c, eps_z) of standard-normal draws or None (see `EncoderModule`).
    num_modules: run modules `first_module` .. `num_modules` - 1 (default: to the last).
    first_module: the first module run (default 0, the waveform's).
  Returns the list of per-module output dicts of the modules run.
  `matmul_precision` is not applied here: the jitted callers trace under
  `jax.default_matmul_precision(encoder.matmul_precision)` (so the backward pass gets it too).
  """

  specs: tuple
  num_steps: int = 10
  matmul_precision: str = 'highest'

  @nn.compact
  def __call__(self, audio, train: Any = False, eps=None, num_modules: int | None = None,
               first_module: int = 0):
    n = (len(self.specs) if num_modules is None else num_modules) - first_module
    train = (train,) * n if isinstance(train, bool) else tuple(train)
    eps = (None,) * n if eps is None else tuple(eps)
    x = audio[..., None] if first_module == 0 else audio  # (B, T, 1) or (B, L, C)
    outputs = []
    for j, i in enumerate(range(first_module, first_module + n)):
      eps_c, eps_z = eps[j] if eps[j] is not None else (None, None)
      out = EncoderModule(self.specs[i], self.num_steps, name=f'module_{i}')(x, train[j], eps_c, eps_z)
      outputs.append(out)
      x = jax.lax.stop_gradient(out['z'])
    return outputs


def check_audio(audio, specs: Sequence[ModuleSpec]) -> None:
  """Raise a one-line ValueError for audio of the wrong rank or shorter than the receptive field."""
  if audio.ndim != 2:
    raise ValueError(f'audio must be (batch, samples); got shape {tuple(audio.shape)}'
                     + (' — drop the channel axis (audio[:, 0])' if audio.ndim == 3 else ''))
  need = layers_receptive_field(stack_layers(specs))
  if audio.shape[1] < need:
    raise ValueError(f'audio has {audio.shape[1]} samples, fewer than the encoder\'s receptive field '
                     f'of {need} samples; use longer clips')


def fit_to_receptive_field(source, specs: Sequence[ModuleSpec]):
  """A data source without clips shorter than the encoder's receptive field: each such clip is a bad
  file under config.data.on_bad_file (`Source.require_length`; fixed-length corpora: `check_audio`)."""
  return source.require_length(layers_receptive_field(stack_layers(specs)), "the encoder's receptive field")


def frame_counts(specs: Sequence[ModuleSpec], num_samples: int) -> list[int]:
  """Frames after each module for `num_samples` input samples, e.g. [1023, 257, 128, 128] for 20480."""
  counts, length = [], num_samples
  for spec in specs:
    length = spec.frames(length)
    counts.append(length)
  return counts


def make_encoder(model_config, specs: Sequence[ModuleSpec]) -> Encoder:
  """The Flax encoder for `config.model` and its module specs."""
  precision = model_config.matmul_precision
  if precision not in MATMUL_PRECISIONS:
    raise ValueError(f'config.model.matmul_precision={precision!r}: use one of {MATMUL_PRECISIONS}')
  compute_dtype(model_config)  # checked here, where every run starts
  return Encoder(tuple(specs), num_steps=model_config.prediction_steps, matmul_precision=precision)


def encode(encoder: Encoder, variables, audio, *, num_modules: int | None = None, sample_key=None,
           eps=None, first_module: int = 0):
  """Eval-mode forward (BatchNorm on running statistics): per-module output dicts.

  With `sample_key`, Gaussian (SIM) modules pass on a fresh sample z ~ N(mu, exp(logvar)) as the
  original's `get_latents` does (module i's draw from `fold_in(sample_key, i)`); without it every
  module passes on its mean (deterministic). `eps` feeds draws made elsewhere instead (per module a
  pair (eps_c, eps_z) or None, as `Encoder` takes them): e.g. draws that do not depend on a row's
  batch or padding (`sim_jax.embedding`). `first_module` i > 0 starts from module i - 1's output
  z (B, L, C) in `audio`, with the draws a whole pass would make from module i on.
  """
  if sample_key is not None and eps is not None:
    raise ValueError('pass sample_key or eps, not both')
  n = len(encoder.specs) if num_modules is None else num_modules
  if sample_key is not None:
    frames = frame_counts(encoder.specs[first_module:n], audio.shape[1])
    eps = []
    for i, spec, length in zip(range(first_module, n), encoder.specs[first_module:n], frames):
      shape = (audio.shape[0], length, spec.channels)
      eps.append((None, jax.random.normal(jax.random.fold_in(sample_key, i), shape))
                 if spec.gaussian else None)
  with jax.default_matmul_precision(encoder.matmul_precision):
    return encoder.apply(variables, audio, False, eps, num_modules=n, first_module=first_module)
