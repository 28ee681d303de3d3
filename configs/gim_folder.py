"""GIM on a folder of your own recordings — the SIM folder recipe with means only (KL weight 0).

  python -m sim_jax.data.manifest my_audio
  python train.py --config=configs/gim_folder.py --workdir=workdirs/my_audio_gim --config.data.root=my_audio
  python probe.py --config=configs/gim_folder.py --workdir=workdirs/my_audio_gim --config.probe.task=speaker
  python decode.py --config=configs/gim_folder.py --workdir=workdirs/my_audio_gim
  python analyze.py --config=configs/gim_folder.py --workdir=workdirs/my_audio_gim
  python analyze.py --workdirs workdirs/my_audio workdirs/my_audio_gim     # beside the SIM run

The folder and its CSV as in configs/sim_folder.py; the split is a function of the files and
data.split_seed, so the SIM and GIM runs of one folder train and test on the same files.
Batch 8 of 20480-sample crops, 100 epochs, BatchNorm on.
"""

from sim_jax.config import base_config


def get_config():
  """The experiment config."""
  config = base_config('folder', 'gim')
  config.train.checkpoint_every_steps = 500
  return config
