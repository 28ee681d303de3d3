"""Shared defaults of the experiment configs in `configs/` (ml_collections).

Every `configs/<name>.py` starts from `base_config()` and changes what its recipe changes; the
sections are: data (see `sim_jax.data`), model, train, probe, decoder, analysis, wandb.
"""

import ml_collections
from ml_collections.config_dict import placeholder


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
  """Linear-probe settings (§5): see probe.py and sim_jax/probe/.

  The defaults run the original's probes: its README's pairing of bias, feature source and features
  ('auto') and each task's recipe (None = `sim_jax.probe.tasks.recipe`: learning rate, epochs, items
  per step, clipping, order). Every other value is a deliberate change, recorded in results.json.
  """
  return ml_collections.ConfigDict(dict(
      task='speakers' if dataset == 'librispeech' else 'syllables',  # speakers | phones | syllables | vowels
      # auto: as the original's bias flag picks it — bias: 'context' (the GRU), no bias: the last
      # Gaussian-head module; or context | module_<i> | layer_<j> (conv layer j of the stack)
      source='auto',
      # auto: as the original's README runs them — 'mean' for a probe with bias (deterministic=True),
      # 'sample' for a bias-free SIM probe (deterministic=False: a fresh draw every epoch); or mean | sample
      features='auto',
      bias=True,                  # the probe's bias (also picks the source under source='auto', as the original)
      standardize=False,          # True: z-score features with the training split's per-dim mean / std (the
                                  # original sees raw features); the saved weights are mapped back to raw scale
      num_epochs=placeholder(int),          # None: the task's recipe (50 syllables/vowels, 10 speakers/phones)
      learning_rate=placeholder(float),     # None: the task's recipe (Adam 1e-3; phones 1e-4)
      batch_size=placeholder(int),          # None: the task's recipe (items per step: 64 syllables/vowels, 8
                                            # speakers, 1 utterance for phones)
      gradient_clipping=placeholder(float),  # None: the task's recipe (1.0 speakers/phones, else off); 0 = off
      shuffle=placeholder(bool),            # None: the task's recipe (phones train in the split file's order)
      eval_every_epochs=1,        # test accuracy for the learning curve every n epochs; 0 = only at the end
      train_crops=0,              # cropping data (LibriSpeech): 0 = a fresh crop set every epoch (the original);
                                  # n = n crop sets drawn once and cycled ('mean' features: encoder runs n times)
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
