"""GIM on the de Boer corpus — the SIM recipe with means only (KL weight 0), BatchNorm off.

  python train.py --config=configs/gim_deboer.py --workdir=workdirs/gim_deboer
  python probe.py --config=configs/gim_deboer.py --workdir=workdirs/gim_deboer --config.probe.task=syllables
  python decode.py --config=configs/gim_deboer.py --workdir=workdirs/gim_deboer
  python analyze.py --config=configs/gim_deboer.py --workdir=workdirs/gim_deboer

Data: `python -m sim_jax.data.download deboer --root data/` then --config.data.root=data/de_boer.
Expected: the InfoNCE of every module falls from ln 11 ≈ 2.40; the paper trains 1000 epochs
(10 steps each) — on a GPU, not this laptop recipe.
"""

from sim_jax.config import base_config


def get_config():
  """The experiment config."""
  config = base_config('deboer', 'gim')
  config.model.use_batch_norm = False
  return config
