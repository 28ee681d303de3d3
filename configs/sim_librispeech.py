"""SIM on LibriSpeech train-clean-100 — the original README's recipe.

  python train.py --config=configs/sim_librispeech.py --workdir=workdirs/sim_librispeech
  python probe.py --config=configs/sim_librispeech.py --workdir=workdirs/sim_librispeech --config.probe.task=speakers
  python probe.py --config=configs/sim_librispeech.py --workdir=workdirs/sim_librispeech --config.probe.task=phones

Batch 8 of 20480-sample crops, 100 epochs, KL weight 0.001, BatchNorm on.
Data: `python -m sim_jax.data.download librispeech --root data/` then --config.data.root=data.
Expected: every module's InfoNCE falls well below ln 11 ≈ 2.40 within the first epoch (2853 steps).
"""

from sim_jax.config import base_config


def get_config():
  """The experiment config."""
  config = base_config('librispeech', 'sim')
  config.model.kld_weight = 0.001
  config.train.checkpoint_every_steps = 500
  return config
