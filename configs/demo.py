"""SIM on the built-in demo corpus — no download; a smoke-test and teaching set, not a benchmark.

  python train.py --config=configs/demo.py --workdir=workdirs/demo
  python probe.py --config=configs/demo.py --workdir=workdirs/demo --config.probe.task=speakers
  python probe.py --config=configs/demo.py --workdir=workdirs/demo --config.probe.task=vowels
  python decode.py --config=configs/demo.py --workdir=workdirs/demo
  python analyze.py --config=configs/demo.py --workdir=workdirs/demo

Synthetic consonant–vowel "words" from several synthetic speakers (sim_jax/data/demo.py). A narrow
SIM (64 channels, GRU 32; KL weight 0.001, lr 1e-3) trains in a few minutes on 2 CPU cores. Expected: every module's InfoNCE
falls visibly below ln 11 ≈ 2.40 (see workdirs/demo/loss_curves.png).
"""

from sim_jax.config import base_config


def get_config():
  """The experiment config."""
  config = base_config('demo', 'sim')
  config.model.channels = 64
  config.model.gru_hidden = 32
  config.model.use_batch_norm = False
  # The LibriSpeech recipe's KL weight: with 0.01 (de Boer's, meant for 1000 epochs) the summed-over-time
  # KL pins the demo's short run near the prior and InfoNCE stays at chance.
  config.model.kld_weight = 0.001
  config.train.num_epochs = 5
  config.train.learning_rate = 1e-3  # faster than the paper's 2e-4, so the demo shows learning in minutes
  config.train.batch_size = 16
  config.train.log_every_steps = 10
  config.probe.task = 'speakers'
  config.probe.num_epochs = 30
  config.decoder.num_epochs = 20
  config.decoder.batch_size = 16
  return config
