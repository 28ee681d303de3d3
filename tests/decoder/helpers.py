"""Workdirs for the decoder tests: untrained narrow encoders (fabricated step-0 checkpoints)."""

import os

import jax

from sim_jax import io
from sim_jax.train.checkpoint import Checkpoints
from sim_jax.train.step import create_train_state
from tests.train.helpers import small_config


def decoder_config(name: str, channels: int = 32, **decoder):
  """configs/<name>.py, narrow, reading ../shared/data, with decoder settings `decoder`."""
  config = small_config(name, channels=channels)
  for key, value in decoder.items():
    config.decoder[key] = value
  return config


def untrained_workdir(config, workdir: str) -> str:
  """A training workdir holding config.json and the step-0 checkpoint of a fresh encoder."""
  _, state = create_train_state(config, jax.random.PRNGKey(config.seed))
  os.makedirs(workdir, exist_ok=True)
  io.write_json(os.path.join(workdir, 'config.json'), config.to_dict())
  checkpoints = Checkpoints(workdir)
  checkpoints.save(state)
  checkpoints.close()
  return workdir
