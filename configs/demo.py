"""SIM on the built-in demo corpus — no download; a smoke-test and teaching set, not a benchmark.

  python train.py --config=configs/demo.py --workdir=workdirs/demo
  python probe.py --config=configs/demo.py --workdir=workdirs/demo --config.probe.task=speakers
  python probe.py --config=configs/demo.py --workdir=workdirs/demo --config.probe.task=vowels
  python decode.py --config=configs/demo.py --workdir=workdirs/demo
  python analyze.py --config=configs/demo.py --workdir=workdirs/demo

Synthetic consonant–vowel "words" from several synthetic speakers (sim_jax/data/demo.py). A narrow
SIM (64 channels, GRU 32; KL weight 0.001, lr 3e-3, 20 epochs of 40 steps) trains in about 3 minutes on
2 CPU cores. Expected: InfoNCE sits near ln 11 ≈ 2.40 for about five epochs — the sampled latents start
as almost pure noise (mean ≈ 0.03 against a standard deviation ≈ 1) — then falls on every module to
about 1.4 / 1.0 / 1.0 / 0.8 (validation, epoch 20; see workdirs/demo/loss_curves.png). Linear probes on
module 2's mean (raw features, as the original) then reach speakers 0.68 (chance 0.125), vowels 0.84
(chance 0.33), where the same probes on the encoder at initialisation stay at chance (its features vary
by ~1e-4 around a large offset; --config.probe.standardize=True lifts them to 0.60 / 0.74);
tests/probe/test_demo.py measures this.
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
  config.train.num_epochs = 20
  config.train.learning_rate = 3e-3  # faster than the paper's 2e-4, so the demo learns in minutes
  config.train.batch_size = 16
  config.train.log_every_steps = 10
  config.probe.task = 'speakers'
  config.probe.source = 'module_2'  # the last Gaussian module (mean features)
  config.probe.num_epochs = 30
  config.decoder.num_epochs = 5  # the module-0 decoder runs at ~15 items/s here: about 4 minutes
  config.decoder.batch_size = 16
  config.decoder.score_pairs = 2000  # of the 25,440 ordered pairs of the 160 test items: ~1 min, not ~16
  # Quicker than the original's analysis for the demo: every KDE total-correlation estimate on at most 2000
  # vectors (the all-frames setting has 8192 here: ~4 min of its ~5 for the whole analysis on 2 cores).
  config.analysis.kde_max_vectors = 2000
  return config
