"""CPC on LibriSpeech train-clean-100: one end-to-end conv + GRU module, batch 8, BatchNorm on.

  python train.py --config=configs/cpc_librispeech.py --workdir=workdirs/cpc_librispeech
  python probe.py --config=configs/cpc_librispeech.py --workdir=workdirs/cpc_librispeech --config.probe.task=phones

Expected: the InfoNCE falls well below ln 11 ≈ 2.40 in the first epoch.
"""

from sim_jax.config import base_config


def get_config():
  """The experiment config."""
  config = base_config('librispeech', 'cpc')
  config.train.checkpoint_every_steps = 500
  return config
