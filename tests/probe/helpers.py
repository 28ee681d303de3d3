"""Encoders and workdirs for the probe tests: tiny untrained models (fabricated checkpoints)."""

import os

import jax
import jax.numpy as jnp

from sim_jax import io
from sim_jax.models import make_encoder, module_specs
from sim_jax.state import create_train_state
from sim_jax.workdir import TrainedEncoder, training_checkpoints
from tests.train.helpers import small_config


def tiny_trained(name: str = 'sim_deboer', channels: int = 8, seed: int = 0, **overrides) -> TrainedEncoder:
  """An untrained encoder of configs/<name>.py (narrow), as `load_trained_encoder` returns it;
  `overrides` as `small_config`'s (section__key=value)."""
  config = small_config(name, channels=channels, **overrides)
  encoder = make_encoder(config.model, module_specs(config.model))
  # parameter shapes (and flax's per-parameter draws) do not depend on the input length
  variables = encoder.init(jax.random.PRNGKey(seed), jnp.zeros((1, 2048)), True)
  variables = {k: v for k, v in variables.items() if v}
  return TrainedEncoder(config, encoder, variables, 0, f'/nowhere/{name}/{seed}')


def fabricate_workdir(config, workdir: str, seed: int | None = None) -> str:
  """A training workdir holding the encoder of `config` at initialisation (step 0)."""
  _, state = create_train_state(config, jax.random.PRNGKey(config.seed if seed is None else seed))
  os.makedirs(workdir, exist_ok=True)
  io.write_json(os.path.join(workdir, 'config.json'), config.to_dict())
  checkpoints = training_checkpoints(workdir)
  checkpoints.save(state)
  checkpoints.close()
  return workdir
