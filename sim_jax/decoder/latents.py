"""Which latents a decoder reads: one conv module of a frozen encoder, its mean or a SIM sample.

SIM / GIM: conv module i (0, 1, 2) — 'mean' is its mean head, 'sample' a fresh draw from its
Gaussian (every earlier module then passes on a sample too, as the original's `get_latents`,
models/independent_module.py:52-61; its `LitDecoder.encode` runs `forward_through_module`,
decoder/lit_decoder.py:33-53, so a SIM decoder trains on samples). GIM and CPC have no Gaussian:
'sample' gives their mean, as `get_latents` does without `predict_distributions`.
CPC (one module): modules 0, 1, 2 are the conv layers that end at the frame rate of SIM modules
0, 1, 2 — for the extra-layers variant its layers 2, 5, 7, before the mean head, as the original's
`retrieve_correct_decoder_architecture` (config_code/config_classes.py:187-205); the conventional
variant has no layer at module 2's end, so module 2 is its mean head (`encoder_layer=-1`)
(reference-semantics §1.6, §6.1). BatchNorm is always in eval mode (the original lets it drift).

SIM draws are per item: item i of a batch gets the key `fold_in(key, index_i)` of the batch's key
and its item index, so the noise of an item depends on (seed, epoch, step, item) only — not on the
batch it shares or its row — and a rerun draws the same noise.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp

from sim_jax.models import Encoder, encode
from sim_jax.workdir import TrainedEncoder

NUM_DECODABLE = 3  # conv modules with a decoder architecture
# CPC conv layer whose output has the frame rate of SIM module 0 / 1 / 2, per variant (None: the head).
CPC_LAYERS = {'conventional': (1, 3, None), 'extra_layers': (2, 5, 7)}


class DecoderError(ValueError):
  """Bad decoder input: module index, latent kind, utterance name, or a mismatched checkpoint."""


@dataclasses.dataclass(frozen=True)
class LatentSource:
  """Where the decoded latents come from (hashable: a static argument of jitted steps).

  module: the conv module (0..2) decoded; width: its channels; sample: draw SIM samples (False for
  GIM / CPC, whose 'sample' is the mean);
  name: the probe-source name of these features (`probes/<task>_<name>/`);
  num_modules: encoder modules to run; layer: for CPC modules 0 / 1 the conv layer read, else None.
  """

  module: int
  width: int
  sample: bool
  name: str
  num_modules: int
  layer: int | None = None

  @property
  def features(self) -> str:
    """'sample' or 'mean': what the decoder actually reads (recorded in results.json)."""
    return 'sample' if self.sample else 'mean'


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
  sample = latents == 'sample' and model.kind == 'sim'
  if model.kind != 'cpc':
    return LatentSource(module, width, sample, f'module_{module}', module + 1)
  layer = CPC_LAYERS[model.cpc_variant][module]
  if layer is None:
    return LatentSource(module, width, sample, 'module_0', 1)
  return LatentSource(module, width, sample, f'layer_{layer}', 1, layer)


def draw_key(seed: int, *path: int):
  """The PRNG key of `seed` folded with each number of `path` in turn, e.g. (TRAIN, epoch, step)."""
  key = jax.random.PRNGKey(seed)
  for value in path:
    key = jax.random.fold_in(key, value)
  return key


# First element of a draw_key path: which SIM draws (training batches, test statistics, outputs).
TRAIN_DRAWS, TEST_DRAWS, OUTPUT_DRAWS = 0, 1, 2


def latents(encoder: Encoder, source: LatentSource, variables, audio, key, items):
  """Latents (B, L, C) of `source` for audio (B, T); pure and jit-able with encoder, source static.

  BatchNorm runs on its running statistics; gradients never reach the encoder. SIM samples of item
  b are drawn with `fold_in(key, items[b])` (items (B,) int: the items' indices), unused for the mean.
  """
  return latents_from_prefix(encoder, source, variables, latent_prefix(encoder, source, variables, audio),
                             key, items)


def latent_prefix(encoder: Encoder, source: LatentSource, variables, audio):
  """What `latents` computes before its first random draw, for audio (B, T): the latents themselves
  (B, L, C) for a mean; module 0's mean and standard deviation side by side (B, L_0, 2C) for SIM
  samples. A function of the audio alone, so it can be computed once per item (`decoder.train.latent_cache`)."""
  out = encode(encoder, variables, audio, num_modules=1 if source.sample else source.num_modules)[-1]
  if source.sample:
    return jax.lax.stop_gradient(jnp.concatenate([out['mu'], jnp.exp(0.5 * out['logvar'])], axis=-1))
  return jax.lax.stop_gradient(out['z'] if source.layer is None else out['layers'][source.layer])


def latents_from_prefix(encoder: Encoder, source: LatentSource, variables, prefix, key, items):
  """`latents` from its `latent_prefix` (B, ·, ·): a SIM sample of module 0 from its mean and
  standard deviation, passed through modules 1 .. `source.module` with their own draws (the draws of
  the whole pass, `encode`'s); a mean as it is."""
  if not source.sample:
    return prefix

  def one(prefix, item_key):  # prefix (L_0, 2C) -> (L, C)
    mu, std = jnp.split(prefix[None], 2, axis=-1)  # (1, L_0, C) each
    z = mu + std * jax.random.normal(jax.random.fold_in(item_key, 0), mu.shape)
    if source.num_modules > 1:
      z = encode(encoder, variables, z, first_module=1, num_modules=source.num_modules, sample_key=item_key)[-1]['z']
    return z[0]

  keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, items)  # one key per item
  return jax.lax.stop_gradient(jax.vmap(one)(prefix, keys))


def latent_frames(trained: TrainedEncoder, source: LatentSource, num_samples: int) -> int:
  """Frames of the latents of one `num_samples`-sample item."""
  audio = jax.ShapeDtypeStruct((1, num_samples), jnp.float32)
  shape = jax.eval_shape(functools.partial(latents, trained.encoder, source), trained.variables, audio,
                         jax.random.PRNGKey(0), jnp.zeros((1,), jnp.int32))
  return shape.shape[1]
