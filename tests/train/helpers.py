"""Small configs for training tests: narrow models on the real shared data or the demo corpus."""

import os

from sim_jax.config import load_config_file
from tests.conftest import DATA, REPO

ROOTS = {'deboer': os.path.join(DATA, 'de_boer'), 'librispeech': os.path.join(DATA, 'librispeech_mini')}


def small_config(name: str, *, channels: int = 16, batch_size: int = 4, steps: int = 2,
                 epochs: int = 1, **overrides):
  """configs/<name>.py with a narrow model and a few steps per epoch, reading ../shared/data."""
  config = load_config_file(os.path.join(REPO, 'configs', f'{name}.py'))
  if config.data.name in ROOTS:
    config.data.root = ROOTS[config.data.name]
  config.model.channels = channels
  config.model.gru_hidden = max(channels // 2, 4)
  config.train.batch_size = batch_size
  config.train.steps_per_epoch = steps
  config.train.eval_steps = 1
  config.train.num_epochs = epochs
  config.train.log_every_steps = 1
  for key, value in overrides.items():
    section, leaf = key.split('__')
    config[section][leaf] = value
  return config
