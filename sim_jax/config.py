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
      # precision policy (not in the original, which is float32 throughout):
      matmul_precision='highest',  # float32 matmuls everywhere ('default' lets a GPU use TF32, a TPU bf16 passes)
      compute_dtype='float32',    # 'bfloat16': activations and matmuls in bf16; parameters, optimizer state,
                                  # losses and BatchNorm statistics stay float32 (speed option for GPU/TPU)
      implementation='auto',      # 'auto': 'cpu' on the CPU backend, else 'plain'; see models/encoder.py
  ))


def _crops(dataset: str) -> bool:
  """Whether the corpus trains on crops of longer clips: LibriSpeech and a folder of your own get its
  recipe, the de Boer words and the demo the de Boer one."""
  return dataset in ('librispeech', 'folder')


def train_config(dataset: str) -> ml_collections.ConfigDict:
  """Training-loop settings; the original's recipe (§3): Adam 2e-4, constant rate."""
  return ml_collections.ConfigDict(dict(
      num_epochs=100 if _crops(dataset) else 1000,
      batch_size=8 if _crops(dataset) else 64,  # global batch, sharded over devices
      learning_rate=2e-4,
      layerwise=False,            # True: one module at a time, in order (the original GIM's layer-wise mode)
      steps_per_epoch=-1,         # -1: the whole split; n: at most n steps (quick runs)
      eval_steps=-1,              # -1: the whole test split
      log_every_steps=50,         # metric fetch + NaN check + progress-bar update
      checkpoint_every_epochs=1,  # latest checkpoint (resume point)
      checkpoint_every_steps=0,   # >0: also mid-epoch (long LibriSpeech epochs)
      keep_every_epochs=10,       # also keep every n-th epoch (the original keeps every 10th)
      keep_recent=2,              # newest checkpoints kept (a damaged one falls back to the next)
      select_best=False,          # True: keep best/, chosen on held-out training items (opt-in)
      validation_fraction=0.1,    # select_best only: seeded fraction of the training split held out for it
      distributed=False,          # jax.distributed.initialize() for multi-host TPU/GPU
  ))


def probe_config(dataset: str) -> ml_collections.ConfigDict:
  """Linear-probe settings (§5): see probe.py and sim_jax/probe/.

  The defaults run the original's probes: its README's pairing of bias, feature source and features
  ('auto') and each task's recipe (None = `sim_jax.probe.tasks.recipe`: learning rate, epochs, items
  per step, clipping, order). Every other value is a deliberate change, recorded in results.json.
  """
  tasks = {'librispeech': 'speakers', 'folder': ''}
  return ml_collections.ConfigDict(dict(
      # speakers | phones | syllables | vowels; folder: a label column of its CSV ('' = the first one), or
      # the label column of config.data.frame_labels (frame-wise)
      task=tasks.get(dataset, 'syllables'),
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
      drop_last=True,             # whole training batches only, as the original's loaders (drop_last=True): the
                                  # last partial batch of each epoch's order is left out; False: it trains too
      eval_every_epochs=1,        # test accuracy for the learning curve every n epochs; 0 = only at the end
      train_crops=0,              # cropping data (LibriSpeech) and 'sample' features: 0 = a fresh crop set / draw
                                  # every epoch (the original); n = n sets drawn once (per seed) and cycled
      extract_batch_size=16,      # encoder batch size for feature extraction
      seed=0,                     # first seed; also fixes the crops
      seeds=1,                    # repeat with seeds seed..seed+seeds-1, report mean ± std
      checkpoint='latest',        # encoder checkpoint: latest (the original's last epoch) | best | <step>
  ))


def decoder_config(dataset: str) -> ml_collections.ConfigDict:
  """Decoder / traversal / contribution-score settings (§6): see decode.py."""
  deboer = dataset == 'deboer'
  return ml_collections.ConfigDict(dict(
      module=0,                   # conv module whose latents are decoded (0, 1, 2)
      latents='sample',           # sample: SIM trains on a fresh draw per step and item, as the original's README
                                  # runs (LitDecoder.encode → get_latents; GIM / CPC: their mean, as the original);
                                  # mean: decode the mean head (an option, not the original's)
      loss='mse',                 # mse | stft | mel | fft | mse+stft | mse+mel | mse+fft (the README runs use mse)
      num_epochs=50 if _crops(dataset) else 200,
      learning_rate=2e-4,
      # every corpus: the original's decoder loaders read batch_size_multiGPU, 64 when its config is built
      # (config_code/config_classes.py:47, data/get_dataloader.py:97-110); its README's LibriSpeech
      # `decoder_config.dataset.batch_size=8` sets a field they never read
      batch_size=64,
      steps_per_epoch=-1,         # -1: the whole training split; n: at most n steps (quick runs)
      eval_steps=-1,              # test batches per epoch; -1: the whole test split
      log_every_steps=10,         # train-loss records in metrics.jsonl
      # GB of memory for each split's frozen-encoder work done once (decoder.train.latent_cache: module 0's
      # Gaussian for SIM samples, else the latents) where items are the same every epoch (de Boer, demo;
      # 1.8 GB for de Boer's module 0); 0 = rerun the encoder every step, as the original
      latent_cache_gb=4.0,
      seed=0,
      checkpoint='latest',        # encoder checkpoint decoded: latest (the original's) | best | <step>
      num_reconstructions=4,      # first test items written as original + reconstruction
      num_samples=4,              # SIM: latents drawn from N(0, I) and decoded
      interpolate_from='bagubi_1' if deboer else '',  # item name (test split, else train); '' = 1st test item
      interpolate_to='babadu_1' if deboer else '',    # '' = the 2nd test item
      interpolation_steps=10,     # steps from one item to the other, both ends included
      partial_dims=64,            # k: partial interpolation of the k dims differing most (capped at the width)
      sweep_dims='',              # comma-separated dims to sweep, e.g. '3,17'; '' = from the probe, see sweep_task
      # the probe task whose weights pick the sweep dims; folder: '' = config.probe.task (or its first column)
      sweep_task={'librispeech': 'speakers', 'folder': ''}.get(dataset, 'vowels'),
      num_sweeps=3,               # dims swept when sweep_dims is '' (probe's largest weights, else largest std)
      sweep_steps=7,              # values per sweep, from -sweep_sigmas to +sweep_sigmas standard deviations
      sweep_sigmas=3.0,
      # the original's decoder test loader (batch 64, shuffle off, drop_last): the contribution score and the
      # notebook's concentration read the test items of whole batches, the first floor(N/64)·64 (de Boer:
      # 128 of 171); 0 = every test item
      test_loader_batch=64,
      score_items=200,            # at most this many of those items, drawn at random (all if fewer), as the original
      score_pairs=0,              # ordered pairs of them scored, by both measures; 0 = all; n = a random n
      # also the eval_decoder notebook's interpolation concentration, the paper's figure (decoder/concentration.py:
      # mean absolute error, k = 16, 32, 64, 128 of 512 dims) on the same items and pairs: 4 decodes a pair
      notebook_concentration=True,
  ))


def analysis_config() -> ml_collections.ConfigDict:
  """Interpretability-analysis settings (§7): see analyze.py and sim_jax/analysis/.

  Defaults are the original's post-hoc scripts (post_hoc_analysis/interpretability/
  main_lat_space.py, main_total_correlation.py): SIM samples; t-SNE fitted on every syllable TRAIN
  item of whole 128-item batches; histograms of the last conv module on the word TRAIN split,
  unclipped; KDE total correlation on the word TEST split in whole 64-item batches, counting audio
  items, at the original's six settings. LibriSpeech (no syllables): crops with speaker labels.
  """
  return ml_collections.ConfigDict(dict(
      # Gaussian-head module analysed (latent figures, total correlation); -1 = the last (SIM/GIM 2, CPC 0)
      module=-1,
      features='sample',          # sample: SIM modules pass on a fresh draw, as the original's get_latents (GIM / CPC:
                                  # their mean, as the original); mean: the mean heads (an option, not the original's)
      checkpoint='latest',        # encoder checkpoint analysed: latest (the original's) | best | <step>
      max_items=-1,               # -1: every item of each split; n: a random n before encoding (quick runs)
      # the label that colours the t-SNE first, picks the 3-D scatter's channels and the probes the report
      # suggests; '' = the original's (vowel, else syllable, else speaker); folder: '' = the probe's task column
      label='',
      drop_last=True,             # only whole loader batches, as the original's loaders (a random floor(N/B)·B items);
                                  # False: every item (an option)
      # t-SNE, 3-D scatter, histograms: the original's post-hoc loader batch (main_lat_space.py:91)
      batch_size=128,
      tsne_split='train',         # the original's: the syllable train split (de Boer / demo; LibriSpeech: crops)
      tsne_per_class=100,         # points PLOTTED per class (the original's 100); the t-SNE is fitted on all items
      tsne_perplexity=0.0,        # 0: int(sqrt(N)), as the original
      tsne_max_iter=1000,
      histogram_split='train',    # the original's: the word train split (reshuffledv2), last conv module
      histogram_dims=32,          # histograms of the first n dimensions (the original's 32)
      histogram_range=0.0,        # 0: bins over each dimension's data, unclipped (the original);
                                  # r: bins over ±r, clipped
      kde_split='test',           # the original's: the test loader of the speaker probe's dataset (de Boer words)
      kde_batch_size=64,          # that loader's batch (config_code/sim_setup.py:103-110): items come in whole batches
      # KDE total correlation settings (channels, frames per item, audio items), -1 = all (∞), each kde_repeats
      # times: the original's six (main_total_correlation.py:159-161). Cost: the (512, -1, -1) one fits a KDE on
      # every frame of every test item, O(N²·512): on de Boer 128 items × 64 frames = 8192 vectors, one estimate
      # takes ~2 min on 2 CPU cores, and a setting runs 4 (raw, shuffled, unit-variance, unit-variance shuffled)
      # × kde_repeats of them: ~25 min; the other five take seconds. kde_max_vectors caps it for quick runs.
      kde_settings=((10, 5, 1000), (50, 5, 1000), (100, 5, 1000), (512, 5, 1000), (512, 5, -1), (512, -1, -1)),
      kde_max_vectors=0,          # 0: no cap (the original); n: at most n random vectors per estimate (quick runs)
      kde_repeats=3,              # estimates per setting (the original's 3)
      kde_redraw=True,            # SIM samples drawn afresh for every estimate, as the original re-encodes its test
                                  # loader each time (one encoder pass of the split per estimate); False: one draw
      kde_bandwidth=0.1,          # the original's
      # Disentanglement against the items' known factors (not in the original; sim_jax/analysis/disentanglement.py):
      # MIG, DCI, SAP, modularity, the MI map, active units and SIM's per-dimension KL, on the labelled items of
      # both splits (de Boer / demo syllables, LibriSpeech crops), time-averaged per item, means and SIM samples
      disentanglement_modules=(),  # conv modules measured; () = every one (SIM / GIM 0, 1, 2; CPC 0)
      disentanglement_factors=(),  # item labels used as factors; () = every label with class names except those
                                   # with one class among the items and products of others (de Boer's syllable)
      disentanglement_bins=20,     # MIG / modularity / MI map: equal-count bins per dimension
      disentanglement_trees=30,    # DCI: trees per factor, fitted once per probe seed (config.probe.seed, .seeds)
      seed=0,
  ))


def wandb_config() -> ml_collections.ConfigDict:
  """Weights & Biases logging: off unless mode is 'online' or 'offline'."""
  return ml_collections.ConfigDict(dict(mode='disabled', project='sim-jax', entity='', name=''))


def base_config(dataset: str, kind: str) -> ml_collections.ConfigDict:
  """A complete experiment config for `dataset` (librispeech|deboer|demo|folder) and `kind` (sim|gim|cpc)."""
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
