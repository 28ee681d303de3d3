"""SIM on a folder of your own recordings — the LibriSpeech recipe (see README "Your own audio").

  python -m sim_jax.data.manifest my_audio            # what the folder holds; --write: a labels.csv skeleton
  python train.py --config=configs/sim_folder.py --workdir=workdirs/my_audio --config.data.root=my_audio
  python probe.py --config=configs/sim_folder.py --workdir=workdirs/my_audio --config.probe.task=speaker
  python probe.py --config=configs/sim_folder.py --workdir=workdirs/my_audio --config.probe.task=speaker \
      --config.probe.source=module_2 --config.probe.bias=False
  python decode.py --config=configs/sim_folder.py --workdir=workdirs/my_audio
  python analyze.py --config=configs/sim_folder.py --workdir=workdirs/my_audio --config.analysis.label=speaker

`my_audio/labels.csv`: a `path` column (relative to the CSV), label columns, optionally `split`
(train / test; else a seeded 20 % of the files, or of a column's values with --config.data.split_by=speaker);
without it every audio file is labelled by its parent folder (column `label`). Any format soundfile
reads, any rate and channel count: decoded once to 16-kHz mono into the cache. Frame-level labels:
--config.data.frame_labels=segments.csv (path,start,end,<label> in seconds) and probe task <label>.
Batch 8 of 20480-sample crops (a fresh crop every epoch), 100 epochs, KL weight 0.001, BatchNorm on.
Expected: every module's InfoNCE falls below ln 11 ≈ 2.40 once the folder holds hours of speech; a
few minutes of audio train a few epochs in minutes on a CPU.
"""

from sim_jax.config import base_config


def get_config():
  """The experiment config."""
  config = base_config('folder', 'sim')
  config.model.kld_weight = 0.001
  config.train.checkpoint_every_steps = 500
  return config
