"""Shared defaults of the experiment configs in `configs/` (ml_collections).

Every `configs/<name>.py` starts from `base_config()` and changes what its recipe changes; the
sections are: data (see `sim_jax.data`), model, train, probe, decoder, analysis, wandb.
"""

import ml_collections


def model_config(kind: str) -> ml_collections.ConfigDict:
  """Encoder settings; defaults are the original's (reference-semantics §1–2)."""
  return ml_collections.ConfigDict(dict(
      kind=kind,                  # 'sim' | 'gim' | 'cpc'
      cpc_variant='conventional',  # CPC only: 'conventional' | 'extra_layers'
      channels=512,               # cnn_hidden_dim
      gru_hidden=256,             # regressor_hidden_dim
      use_batch_norm=True,
      prediction_steps=10,        # K
      num_negatives=10,
      window=128,                 # positives come from a random window of this many frames
      kld_weight=0.01 if kind == 'sim' else 0.0,
      kl_reduction='sum_time',    # the original's: summed over time; 'mean': per frame and channel
      # precision policy (not in the original, which is float32 throughout):
      matmul_precision='highest',  # float32 matmuls everywhere ('default' lets a GPU use TF32, a TPU bf16 passes)
      compute_dtype='float32',    # 'bfloat16': activations and matmuls in bf16; parameters, optimizer state,
                                  # losses and BatchNorm statistics stay float32 (speed option for GPU/TPU)
      implementation='auto',      # 'auto': 'cpu' on the CPU backend, else 'plain'; see models/encoder.py
  ))


def train_config(dataset: str) -> ml_collections.ConfigDict:
  """Training-loop settings; the original's recipe (§3): Adam 2e-4, constant rate."""
  return ml_collections.ConfigDict(dict(
      num_epochs=100 if dataset == 'librispeech' else 1000,
      batch_size=8 if dataset == 'librispeech' else 64,  # global batch, sharded over devices
      learning_rate=2e-4,
      layerwise=False,            # True: one module at a time, in order (the original GIM's layer-wise mode)
      steps_per_epoch=-1,         # -1: the whole split; n: at most n steps (quick runs)
      eval_steps=-1,              # -1: the whole test split
      log_every_steps=50,         # metric fetch + NaN check + progress-bar update
      checkpoint_every_epochs=1,  # latest checkpoint (resume point)
      checkpoint_every_steps=0,   # >0: also mid-epoch (long LibriSpeech epochs)
      keep_every_epochs=10,       # also keep every n-th epoch (the original keeps every 10th)
      distributed=False,          # jax.distributed.initialize() for multi-host TPU/GPU
  ))


def probe_config(dataset: str) -> ml_collections.ConfigDict:
  """Linear-probe settings (§5): see probe.py and sim_jax/probe/."""
  return ml_collections.ConfigDict(dict(
      task='speakers' if dataset == 'librispeech' else 'syllables',  # speakers | phones | syllables | vowels
      source='context',           # context (GRU) | module_<i> (Gaussian-head module i) | layer_<j> (conv layer j of the stack)
      features='mean',            # mean (deterministic, cached) | sample (SIM: a fresh draw every epoch, as the original)
      bias=True,                  # the probe's bias (independent of the source; the original ties them)
      standardize=True,           # z-score features with the training split's per-dim mean / std (False: raw, as the original)
      num_epochs=50,              # the original's: 50 (syllables, vowels, speakers), 20 (phones)
      learning_rate=1e-3,         # Adam; the original's phone probe uses 1e-4 at one utterance per step
      batch_size=64,              # items (phones: utterances) per probe step
      gradient_clipping=0.0,      # max global gradient norm; 0 = off (the original's README: 1.0 for speakers/phones)
      eval_every_epochs=1,        # test accuracy for the learning curve every n epochs; 0 = only at the end
      train_crops=4,              # cropping data, 'mean' features: crop sets drawn once and cycled over epochs
      extract_batch_size=16,      # encoder batch size for feature extraction
      seed=0,                     # first seed; also fixes the crops
      seeds=1,                    # repeat with seeds seed..seed+seeds-1, report mean ± std
      checkpoint='best',          # encoder checkpoint: best | latest | <step>
  ))


def decoder_config(dataset: str) -> ml_collections.ConfigDict:
  """Decoder / traversal / contribution-score settings (§6): see decode.py."""
  deboer = dataset == 'deboer'
  return ml_collections.ConfigDict(dict(
      module=0,                   # conv module whose latents are decoded (0, 1, 2)
      latents='mean',             # mean | sample (SIM: a fresh draw per batch, as the original)
      loss='mse',                 # mse | stft | mel | mse+stft | mse+mel (the README runs use mse)
      num_epochs=200 if dataset != 'librispeech' else 50,
      learning_rate=2e-4,
      batch_size=64 if dataset != 'librispeech' else 8,
      steps_per_epoch=-1,         # -1: the whole training split; n: at most n steps (quick runs)
      eval_steps=-1,              # test batches per epoch; -1: the whole test split
      log_every_steps=10,         # train-loss records in metrics.jsonl
      seed=0,
      checkpoint='best',          # encoder checkpoint decoded: best | latest | <step>
      num_reconstructions=4,      # first test items written as original + reconstruction
      num_samples=4,              # SIM: latents drawn from N(0, I) and decoded
      interpolate_from='bagubi_1' if deboer else '',  # item name (test split, else train); '' = 1st test item
      interpolate_to='babadu_1' if deboer else '',    # '' = the 2nd test item
      interpolation_steps=10,     # steps from one item to the other, both ends included
      partial_dims=64,            # k: partial interpolation of the k dims differing most (capped at the width)
      sweep_dims='',              # comma-separated dims to sweep, e.g. '3,17'; '' = from the probe, see sweep_task
      sweep_task='speakers' if dataset == 'librispeech' else 'vowels',  # probe whose weights pick the sweep dims
      num_sweeps=3,               # dims swept when sweep_dims is '' (probe's largest weights, else largest std)
      sweep_steps=7,              # values per sweep, from -sweep_sigmas to +sweep_sigmas standard deviations
      sweep_sigmas=3.0,
      score_items=200,            # contribution score: test items used (all if fewer), as the original
      score_pairs=0,              # ordered pairs of them scored; 0 = all
  ))


def analysis_config() -> ml_collections.ConfigDict:
  """Interpretability-analysis settings (§7): see analyze.py and sim_jax/analysis/."""
  return ml_collections.ConfigDict(dict(
      module=-1,                  # Gaussian-head module analysed (latent figures, total correlation); -1 = the last (SIM/GIM 2, CPC 0)
      features='mean',            # mean | sample (SIM: the module passes on a fresh draw, as the original's get_latents)
      checkpoint='best',          # encoder checkpoint analysed: best | latest | <step>
      split='test',               # data split the features come from
      max_items=-1,               # -1: every item of the split; n: the first n (quick runs)
      tsne_per_class=100,         # at most this many points per class in the t-SNE (the original's 100)
      tsne_perplexity=0.0,        # 0: int(sqrt(N)), as the original
      tsne_max_iter=1000,
      histogram_dims=32,          # histograms of the first n dimensions (the original's 32)
      kde_channels=(10, 50, 100, 512),  # KDE total correlation: channel-subset sizes (capped at the width; -1 = all)
      kde_times=5,                # frames drawn per item (-1 = all)
      kde_max_signals=1000,       # samples per estimate (-1 = all: O(N^2), slow)
      kde_repeats=3,              # estimates per subset size (the original's 3)
      kde_bandwidth=0.1,          # the original's
      seed=0,
  ))


def wandb_config() -> ml_collections.ConfigDict:
  """Weights & Biases logging: off unless mode is 'online' or 'offline'."""
  return ml_collections.ConfigDict(dict(mode='disabled', project='sim-jax', entity='', name=''))


def base_config(dataset: str, kind: str) -> ml_collections.ConfigDict:
  """A complete experiment config for `dataset` (librispeech|deboer|demo) and `kind` (sim|gim|cpc)."""
  from sim_jax.data import default_data_config  # the data package owns its defaults
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.data = default_data_config(dataset)
  config.model = model_config(kind)
  config.train = train_config(dataset)
  config.probe = probe_config(dataset)
  config.decoder = decoder_config(dataset)
  config.analysis = analysis_config()
  config.wandb = wandb_config()
  return config


def load_config_file(path: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
  """`get_config()` of a config file, with dotted-key overrides ({'train.num_epochs': 3}).

  Unknown keys and files are one-line errors naming the file or key.
  """
  import importlib.util
  import os
  if not os.path.exists(path):
    raise FileNotFoundError(f'config file {path} does not exist (see configs/ for the choices)')
  spec = importlib.util.spec_from_file_location('sim_jax_user_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  for key, value in (overrides or {}).items():
    node = config
    *parents, leaf = key.split('.')
    for name in parents:
      node = node[name]
    if leaf not in node:
      raise KeyError(f'config {path}: no key {key!r}')
    node[leaf] = value
  return config
