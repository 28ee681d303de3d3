"""GIM on LibriSpeech train-clean-100 — the SIM recipe with means only (KL weight 0).

  python train.py --config=configs/gim_librispeech.py --workdir=workdirs/gim_librispeech
  python probe.py --config=configs/gim_librispeech.py --workdir=workdirs/gim_librispeech --config.probe.task=speakers
  python probe.py --config=configs/gim_librispeech.py --workdir=workdirs/gim_librispeech --config.probe.task=phones

Batch 8 of 20480-sample crops, 100 epochs, BatchNorm on.
Data: `python -m sim_jax.data.download librispeech --root data/` then --config.data.root=data.
Expected: every module's InfoNCE falls well below ln 11 ≈ 2.40 within the first epoch (2853 steps).
"""

from sim_jax.config import base_config


def get_config():
  """The experiment config."""
  config = base_config('librispeech', 'gim')
  config.train.checkpoint_every_steps = 500
  return config
