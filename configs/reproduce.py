"""`make reproduce`: the paper's SIM-vs-GIM experiment on de Boer (sim_jax/reproduce.py), at three scales.

  python reproduce.py --config=configs/reproduce.py --scale=cpu --config.data_root=data/de_boer
  make reproduce SCALE=smoke|cpu|paper [BETAS="0 0.001 0.01 0.1"] [DATA=data/de_boer]

Each model's config is configs/gim_deboer.py (β = 0) or configs/sim_deboer.py (KL weight β): the
original's recipe and every later stage's defaults. A scale overrides sizes only — width, epochs,
batch, steps, probe seeds / epochs, decoder epochs, scored pairs, analysed items — as a partial
config merged into each model's config (override one with e.g. --config.scales.cpu.train.num_epochs=8).

  paper  the original's run: 512 channels, GRU 256, batch 64, 1000 epochs, decoder 200 epochs (a GPU job)
  cpu    512 channels, batch 8, 20 epochs (SIM at β = 0.01 learns at this width, not at 64); the
         sample probe trains on one draw of SIM samples per seed (train_crops=1); decoders
         1 epoch at batch 8, 200 scored pairs; KDE estimates capped at 2000 vectors (the original's
         (512, ∞, ∞) setting is 8192); 134 min on 2 idle cores: training 69, the evaluation stages 65
         (README, Reproducing the paper)
  smoke  16 channels, 2 steps, 2-epoch probes, tiny decoder: the CI test of the whole pipeline

Expected at `cpu` (table.md): neither model collapsed; context probes GIM 36 % / SIM 26 % on syllables,
87 % / 75 % on vowels (module 1: 37 / 34 and 94 / 94); interpolation (the notebook's, module 2) GIM 0.863 /
SIM 0.864 from a module-2 decoder that does not yet reconstruct after one epoch (SNR m2 ≈ −7 dB); contribution
m0 at n = 64 GIM 0.80 / SIM 0.78; Gaussian TC excess GIM ≈ 1300 / SIM ≈ 160 nats; MIG < 0.05 everywhere.
"""

import os

import ml_collections

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config():
  """The reproduce config: encoder config files, data location and the scales."""
  config = ml_collections.ConfigDict()
  config.sim_config = os.path.join(HERE, 'sim_deboer.py')  # β > 0 (its model.kld_weight is set to β)
  config.gim_config = os.path.join(HERE, 'gim_deboer.py')  # β = 0
  config.data_root = ''  # '' = the encoder configs' data.root; the folder holding reshuffledv2/
  # 0 = the encoder configs' K (10, the original's code); 12 = the K of the original's logged run and of
  # the eval_decoder notebook's model (trained before its commit 06da342 "k=10"): compare like with like
  config.prediction_steps = 0
  config.scales = ml_collections.ConfigDict(dict(
      paper=dict(probe=dict(seeds=3)),
      cpu=dict(  # 134 min on 2 idle cores in all (measured; README); the decoders at batch 8: one
          # epoch is 85 updates (11 at the recipe's batch 64, which fits: 3.1 GB)
          model=dict(channels=512),
          train=dict(batch_size=8, num_epochs=20),
          # a fresh draw of SIM samples every epoch is an encoder pass (~1 min) per epoch: 2.4 h for the
          # bias-free sample probe's 3 seeds × 50 epochs; one draw per seed, cycled, takes 3 min
          probe=dict(seeds=3, train_crops=1),
          decoder=dict(batch_size=8, num_epochs=1, score_pairs=200),
          # the KDE's (512, all frames, all items) setting fits 8192 vectors: ~25 min a model uncapped
          analysis=dict(kde_max_vectors=2000),
      ),
      smoke=dict(
          model=dict(channels=16, gru_hidden=8),
          train=dict(batch_size=8, num_epochs=1, steps_per_epoch=2, eval_steps=1),
          probe=dict(num_epochs=2, seeds=3),
          decoder=dict(num_epochs=1, steps_per_epoch=2, eval_steps=1, score_items=8, score_pairs=16),
          analysis=dict(max_items=64, batch_size=32, kde_batch_size=32, kde_max_vectors=256),
      ),
  ))
  return config
