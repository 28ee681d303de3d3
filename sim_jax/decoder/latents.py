"""Which latents a decoder reads: one conv module of a frozen encoder, its mean or a SIM sample.

SIM / GIM: conv module i (0, 1, 2) — 'mean' is its mean head, 'sample' a fresh draw from its
Gaussian (every earlier module then passes on a sample too, as the original's `get_latents`).
CPC (one module): module 2 is its representation (the mean head after the whole conv stack);
modules 0 and 1 are the conv layers that end at the frame rate of SIM modules 0 and 1
(reference-semantics §1.6, §6.1). BatchNorm is always in eval mode (the original lets it drift).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from sim_jax.models import Encoder, encode
from sim_jax.train.checkpoint import TrainedEncoder

NUM_DECODABLE = 3  # conv modules with a decoder architecture
# CPC conv layer whose output has the frame rate of SIM module 0 / 1, per variant.
CPC_LAYERS = {'conventional': (1, 3), 'extra_layers': (2, 5)}


class DecoderError(ValueError):
  """Bad decoder input: module index, latent kind, utterance name, or a mismatched checkpoint."""


@dataclasses.dataclass(frozen=True)
class LatentSource:
  """Where the decoded latents come from (hashable: a static argument of jitted steps).

  module: the conv module (0..2) decoded; width: its channels; sample: draw SIM samples;
  name: the probe-source name of these features (`probes/<task>_<name>/`);
  num_modules: encoder modules to run; layer: for CPC modules 0 / 1 the conv layer read, else None.
  """

  module: int
  width: int
  sample: bool
  name: str
  num_modules: int
  layer: int | None = None


def latent_source(trained: TrainedEncoder, module: int, latents: str) -> LatentSource:
  """Validate config.decoder.module / .latents against the encoder of `trained`."""
  model = trained.config.model
  width = trained.encoder.specs[0].channels
  if not 0 <= module < NUM_DECODABLE:
    hint = ' (module 3 is the GRU context, which has no decoder)' if model.kind != 'cpc' else ''
    raise DecoderError(f'config.decoder.module={module} is out of range: decoders exist for conv '
                       f'modules 0..{NUM_DECODABLE - 1}{hint}')
  if latents not in ('mean', 'sample'):
    raise DecoderError(f"config.decoder.latents={latents!r}: use 'mean' or 'sample'")
  if latents == 'sample' and model.kind != 'sim':
    raise DecoderError(f"config.decoder.latents='sample' needs a SIM encoder; this one is "
                       f"{model.kind!r} — use 'mean'")
  sample = latents == 'sample'
  if model.kind != 'cpc':
    return LatentSource(module, width, sample, f'module_{module}', module + 1)
  if module == NUM_DECODABLE - 1:
    return LatentSource(module, width, sample, 'module_0', 1)
  layer = CPC_LAYERS[model.cpc_variant][module]
  return LatentSource(module, width, sample, f'layer_{layer}', 1, layer)


def latents(encoder: Encoder, source: LatentSource, variables, audio, key):
  """Latents (B, L, C) of `source` for audio (B, T); pure and jit-able with encoder, source static.

  BatchNorm runs on its running statistics; `key` draws the SIM samples (unused for the mean);
  gradients never reach the encoder.
  """
  outputs = encode(encoder, variables, audio, num_modules=source.num_modules,
                   sample_key=key if source.sample else None)
  out = outputs[-1]
  z = out['z'] if source.layer is None else out['layers'][source.layer]  # z: the mean or a sample
  return jax.lax.stop_gradient(z)


def latent_frames(trained: TrainedEncoder, source: LatentSource, num_samples: int) -> int:
  """Frames of the latents of one `num_samples`-sample item."""
  audio = jax.ShapeDtypeStruct((1, num_samples), jnp.float32)
  shape = jax.eval_shape(functools.partial(latents, trained.encoder, source), trained.variables, audio,
                         jax.random.PRNGKey(0))
  return shape.shape[1]
