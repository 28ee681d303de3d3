"""SIM on the de Boer corpus — the paper's recipe (batch 64, KL weight 0.01, BatchNorm off).

  python train.py --config=configs/sim_deboer.py --workdir=workdirs/sim_deboer
  python probe.py --config=configs/sim_deboer.py --workdir=workdirs/sim_deboer --config.probe.task=syllables
  python decode.py --config=configs/sim_deboer.py --workdir=workdirs/sim_deboer
  python analyze.py --config=configs/sim_deboer.py --workdir=workdirs/sim_deboer

Data: `python -m sim_jax.data.download deboer --root data/` then --config.data.root=data/de_boer.
Expected: the InfoNCE of every module falls from ln 11 ≈ 2.40; the paper trains 1000 epochs
(10 steps each) — on a GPU, not this laptop recipe.
"""

from sim_jax.config import base_config


def get_config():
  """The experiment config."""
  config = base_config('deboer', 'sim')
  config.model.use_batch_norm = False
  return config
