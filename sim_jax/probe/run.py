"""A probe run: frozen encoder -> (cached) features -> linear probe per seed -> results folder.

`run_probe(config, workdir)` reads the encoder from the training workdir (its own config.json and
checkpoint `config.probe.checkpoint`), the data from `config.data` and the probe settings from
`config.probe`, and writes `<workdir>/probes/<name>/` (see `probe_name` and `sim_jax.probe.results`).

By default a probe is the original's (reference-semantics §5): source and features paired with the
bias as its README runs them, raw features, and the task's recipe (`tasks.recipe`). `settings(...)`
resolves the config into the effective settings, which name the output folder and are recorded in
results.json together with the keys that differ from the original's recipe.

Per epoch the probe trains on the training features in an order drawn from (seed, epoch) (phones:
the split file's order, as the original). 'mean' features are extracted once and cached; for
cropping data (LibriSpeech speakers) every epoch gets a fresh crop set, as the original
(`train_crops=n` draws n sets once and cycles them: n encoder passes instead of one per epoch).
'sample' features are redrawn every epoch, with new crops, as the original (`train_crops=n`: n draws
per seed, cycled); the test features are one draw per seed.

Training sees whole batches only (`drop_last`, as the original's loaders): a different few items sit
each epoch out. Differences from the original kept by default, because its behaviour is a bug (§9):
test accuracy is over every test item (frame), not a mean of per-batch accuracies over a shuffled,
drop_last subset (320 of the 360 de Boer syllables).
"""

import os
import time
from typing import NamedTuple

import jax
import numpy as np
from tqdm import tqdm

from sim_jax import data as data_lib
from sim_jax import io
from sim_jax import workdir as workdir_lib
from sim_jax.probe import results as results_lib
from sim_jax.probe.features import ProbeError, cached_features, extract, feature_source, resolve_source
from sim_jax.probe.linear import (ProbeSpec, feature_norm, identity_norm, init_probe, make_optimizer,
                                  make_train_step, predict, train_epoch)
from sim_jax.progress import progress_bar
from sim_jax.probe.tasks import (RECIPE_KEYS, check_labels, check_source, class_names,
                                 classes_without_training_items, encoder_seen_test_items, make_sources, make_task,
                                 probe_data, recipe)

TEST_SAMPLE_FOLD = 1 << 20  # folds the per-seed key for the test draw of sampled features


def probe_name(settings) -> str:
  """`<task>_<source>`, plus `_nobias` without a bias, `_sample` for sampled features and `_std` for
  standardised ones; `settings` are the effective ones (`settings(...)`)."""
  name = f'{settings.task}_{settings.source}'
  if not settings.bias:
    name += '_nobias'
  if settings.features == 'sample':
    name += '_sample'
  if settings.standardize:
    name += '_std'
  return name


def settings(probe_config, task, corpus: str, trained) -> tuple[object, list[str]]:
  """The effective probe settings of `probe_config` (a copy: 'auto' source / features and the recipe
  keys left None resolved, as the original runs `task` on `corpus`), and the keys where they differ
  from the original's probe."""
  cfg = probe_config.copy_and_resolve_references()
  cfg.task = task.name  # a folder corpus's '' is its first label column
  cfg.source, cfg.features = resolve_source(trained, cfg.source, cfg.features, bool(cfg.bias))
  original = recipe(task, corpus)
  for key in RECIPE_KEYS:
    if cfg[key] is None:
      cfg[key] = original[key]
  _check_settings(cfg)
  auto_source, auto_features = resolve_source(trained, 'auto', 'auto', bool(cfg.bias))
  changed = [f'{key}={cfg[key]!r} (original: {original[key]!r})' for key in RECIPE_KEYS
             if cfg[key] != original[key]]
  if cfg.source != auto_source:
    changed.append(f'source={cfg.source!r} with bias={bool(cfg.bias)} (original: {auto_source!r})')
  if cfg.features != auto_features:
    changed.append(f'features={cfg.features!r} (original: {auto_features!r})')
  if cfg.standardize:
    changed.append('standardize=True (original: raw features)')
  if task.name == 'phones' and not cfg.bias:  # the original's phone probe reads no bias flag
    changed.append('bias=False (original: the phone probe always has a bias and reads the GRU context, '
                   'logistic_regression_phones.py:207-210)')
  if not cfg.drop_last:
    changed.append('drop_last=False (original: the last partial training batch is dropped)')
  if cfg.train_crops and cfg.features == 'sample':
    changed.append(f'train_crops={cfg.train_crops} (original: fresh samples every epoch)')
  elif cfg.train_crops and task.train_variant == 'words' and corpus in data_lib.CROPPED:
    changed.append(f'train_crops={cfg.train_crops} (original: a fresh crop every epoch)')
  return cfg, changed


def _check_settings(cfg) -> None:
  for key in ('num_epochs', 'batch_size', 'extract_batch_size', 'seeds'):
    if int(cfg[key]) < 1:
      raise ProbeError(f'config.probe.{key}={cfg[key]} must be at least 1')
  if cfg.train_crops < 0:
    raise ProbeError(f'config.probe.train_crops={cfg.train_crops} must be ≥ 0 (0 = a fresh crop set every epoch)')
  if not cfg.learning_rate > 0:
    raise ProbeError(f'config.probe.learning_rate={cfg.learning_rate} must be positive')
  if cfg.gradient_clipping < 0:
    raise ProbeError(f'config.probe.gradient_clipping={cfg.gradient_clipping} must be ≥ 0 (0 = off)')


class _FeatureProvider:
  """Labelled training and test features of one run: cached ('mean') or drawn anew ('sample').

  `seconds` totals the time spent getting features; `unlabelled` counts, per split, the items
  without targets (broken files; for phones, utterances without an alignment); `class_counts` the
  targets per class of each split's first draw.
  """

  def __init__(self, cfg, data_config, workdir, trained, source, task, train_source, test_sources, num_classes,
               also=()):
    self.cfg, self.data_config = cfg, data_config
    self.trained, self.source, self.task, self.also = trained, source, task, also
    self.train_source, self.test_sources = train_source, test_sources
    self.cache_dir = workdir_lib.feature_cache_dir(workdir)
    crops = callable(getattr(train_source, 'crop_starts', None))
    sets = self.cfg.train_crops or self.cfg.num_epochs
    self.crop_sets = min(sets, self.cfg.num_epochs) if crops else 1
    self.seconds = 0.0
    self.unlabelled = {}
    self.class_counts = {}
    self.num_classes = num_classes
    self._cached = {}

  def _get(self, name: str, data_source, epoch: int, key):
    tick = time.perf_counter()
    common = dict(batch_size=self.cfg.extract_batch_size, epoch=epoch, seed=self.cfg.seed,
                  frames=self.task.frame_wise)
    if self.source.sample:
      feats = extract(self.trained, self.source, data_source, key=key,
                      desc=f'{self.source.name} samples ({data_source.split})', **common)
    else:
      feats = cached_features(self.cache_dir, self.trained, self.source, data_source,
                              data_config=self.data_config, also=self.also, **common)
    data, self.unlabelled[name] = probe_data(self.task, data_source, feats)
    if name not in self.class_counts:
      targets = data.labels[data.labels >= 0]
      self.class_counts[name] = np.bincount(targets, minlength=self.num_classes).tolist()
    self.seconds += time.perf_counter() - tick
    if not len(data.trainable_items()):
      raise ProbeError(f'no labelled {self.task.label} targets in the {data_source.corpus} '
                       f'{data_source.split} split ({data_source.variant}, {len(data_source)} items) '
                       f'used for {name!r}: nothing to {"train on" if name == "train" else "score"}')
    return data

  def train(self, seed: int, epoch: int):
    """ProbeData of the training split for this epoch."""
    if self.source.sample:  # a fresh draw per epoch, or `train_crops` draws per seed, cycled
      draw = epoch % self.cfg.train_crops if self.cfg.train_crops else epoch
      if ('train', seed, draw) not in self._cached:
        key = jax.random.fold_in(jax.random.PRNGKey(seed), draw)
        data = self._get('train', self.train_source, draw, key)
        if not self.cfg.train_crops:
          return data
        self._cached['train', seed, draw] = data
      return self._cached['train', seed, draw]
    crop_set = epoch % self.crop_sets
    if ('train', crop_set) not in self._cached:
      self._cached['train', crop_set] = self._get('train', self.train_source, crop_set, None)
    return self._cached['train', crop_set]

  def test(self, seed: int) -> dict:
    """{evaluation name: ProbeData} of the test split(s) for this seed."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), TEST_SAMPLE_FOLD) if self.source.sample else None
    out = {}
    for name, data_source in self.test_sources.items():
      if self.source.sample or name not in self._cached:
        self._cached[name] = self._get(name, data_source, 0, key)
      out[name] = self._cached[name]
    return out


class _Run(NamedTuple):
  """One seed's probe: parameters, feature norm, per-epoch records, test scores, training seconds."""

  params: dict
  norm: object
  history: list
  scores: dict
  seconds: float


def _fit(cfg, provider, spec: ProbeSpec, seed: int, headline: str, log, step_offset: int, bar) -> _Run:
  """Train and score one probe (seed `seed`), logging every epoch."""
  tx = make_optimizer(cfg.learning_rate, cfg.gradient_clipping)
  train_step = make_train_step(tx)
  params = init_probe(jax.random.PRNGKey(seed), spec)
  opt_state = tx.init(params)
  tests = provider.test(seed)
  history, seconds = [], 0.0
  for epoch in range(cfg.num_epochs):
    data = provider.train(seed, epoch)
    if epoch == 0:
      norm = feature_norm(data) if cfg.standardize else identity_norm(spec.dim)
    tick = time.perf_counter()
    params, opt_state, train = train_epoch(train_step, params, opt_state, norm, data,
                                           data.trainable_items(), cfg.batch_size,
                                           [seed, epoch] if cfg.shuffle else None, bool(cfg.drop_last))
    record = {'seed': seed, 'epoch': epoch + 1, 'train/loss': train['loss'],
              'train/accuracy': train['accuracy']}
    if epoch + 1 == cfg.num_epochs or (cfg.eval_every_epochs > 0 and (epoch + 1) % cfg.eval_every_epochs == 0):
      loss, targets, preds = predict(params, norm, tests[headline], cfg.batch_size)
      record.update({'test/loss': loss, 'test/accuracy': float(np.mean(targets == preds))})
    seconds += time.perf_counter() - tick
    history.append(record)
    log.write(step_offset + epoch + 1, **record)
    bar.update(1)
    bar.set_postfix_str(f"loss {train['loss']:.3f}" +
                        (f" test acc {record['test/accuracy']:.3f}" if 'test/accuracy' in record else ''))
  scores = {}
  for name, test_data in tests.items():
    loss, targets, preds = predict(params, norm, test_data, cfg.batch_size)
    scores[name] = results_lib.score(targets, preds, loss, spec.num_classes)
  return _Run(jax.device_get(params), norm, history, scores, seconds)


def run_probe(config, workdir: str, cache_also: tuple[str, ...] = ()) -> dict:
  """Train and evaluate the probe `config.probe` on the encoder of `workdir`; returns results.json.

  `cache_also`: names of further feature sources (as config.probe.source) that later probes on the
  same data will read; their mean features are cached in the same encoder passes as this probe's,
  when this probe's features are deterministic and not cached yet."""
  trained = workdir_lib.load_trained_encoder(workdir, config.probe.checkpoint, 'config.probe.checkpoint')
  config = workdir_lib.with_training_data_root(config, trained.config)
  task = make_task(config.probe.task, config.data.name, config.data)
  cfg, changed = settings(config.probe, task, config.data.name, trained)
  source = feature_source(trained, cfg.source, cfg.features)
  check_source(task, source)
  train_source, test_sources = make_sources(task, config.data, trained.encoder.specs)
  names = class_names(task, train_source)
  test_sources = check_labels(task, names, train_source, test_sources)
  name = probe_name(cfg)
  out_dir = os.path.join(workdir_lib.probes_dir(workdir), name)
  os.makedirs(out_dir, exist_ok=True)
  also = tuple(feature_source(trained, n, 'mean') for n in cache_also)
  provider = _FeatureProvider(cfg, config.data, workdir, trained, source, task, train_source, test_sources,
                              len(names), also)
  headline = task.evaluations[0][0]
  spec = ProbeSpec(source.dim, len(names), bias=bool(cfg.bias), init=task.init)
  seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
  log = io.MetricLog(os.path.join(out_dir, 'metrics.jsonl'), config.wandb, config.to_dict(),
                     wandb_dir=out_dir)
  log.truncate(-1)  # a rerun replaces the previous run's records
  runs = []
  try:
    with progress_bar(total=len(seeds) * cfg.num_epochs, desc=f'probe {name}', unit='epoch',
                      dynamic_ncols=True) as bar:
      for i, seed in enumerate(seeds):
        runs.append(_fit(cfg, provider, spec, seed, headline, log, i * cfg.num_epochs, bar))
  finally:
    log.close()

  unseen = [names[c] for c in classes_without_training_items(task, train_source, test_sources[headline])]
  if unseen:
    tqdm.write(f'note: {len(unseen)} test classes have no training item, so the probe cannot predict '
               f'them: {", ".join(unseen[:5])}{", ..." if len(unseen) > 5 else ""}')
  seen = encoder_seen_test_items(config.data, test_sources[headline]) if (
      trained.step > 0 and trained.config.data.name == config.data.name) else None  # trained here
  if seen:
    tqdm.write(f'note: {seen} of {len(test_sources[headline])} test items were cut from words the encoder '
               f'trained on (the original\'s syllable split predates its word split)')
  first = runs[0]
  evaluations = {e: results_lib.summarize([r.scores[e] for r in runs], len(names), len(test_sources[e]))
                 for e in test_sources}
  top = evaluations[headline]
  result = {
      'name': name, 'task': task.name, 'source': source.name, 'features': cfg.features,
      'bias': bool(cfg.bias), 'standardized': bool(cfg.standardize),
      'accuracy': top['accuracy'], 'accuracy_std': top['accuracy_std'], 'loss': top['loss'],
      'chance': top['chance'], 'majority': top['majority'], 'num_classes': len(names),
      'num_test_items': top['num_test_items'], 'num_test_targets': top['num_test_targets'],
      'evaluation': headline, 'num_seeds': len(seeds),
      'evaluations': {e: {k: v for k, v in s.items() if k not in ('per_class_accuracy', 'support')}
                      for e, s in evaluations.items()},
      'checkpoint': {'path': trained.path, 'step': trained.step},
      'encoder': {'kind': trained.config.model.kind, 'feature_dim': source.dim,
                  'frame_hop_samples': source.hop},
      'data': {'corpus': config.data.name, 'train_variant': task.train_variant,
               'train_items': len(train_source),
               'train_items_unlabelled': provider.unlabelled.get('train', 0),
               'train_crop_sets': provider.crop_sets, 'test_classes_without_training_items': unseen,
               'test_items_from_encoder_training_words': seen},
      'timing': {'features_seconds': provider.seconds,
                 'seconds_per_epoch': sum(r.seconds for r in runs) / (len(seeds) * cfg.num_epochs)},
      'settings': {**cfg.to_dict(), 'init': task.init},  # effective: 'auto' and the recipe resolved
      'differs_from_original': changed,
      'label': task.label, 'label_origin': train_source.label_origin(task.label),
      'class_names': names,
      'class_counts': provider.class_counts,  # targets per class of the first draw of each split
      'per_class_accuracy': {e: s['per_class_accuracy'] for e, s in evaluations.items()},
      'support': {e: s['support'] for e, s in evaluations.items()},
  }
  title = (f'{task.name} probe on {source.name} ({cfg.features}{", no bias" if not cfg.bias else ""}'
           f'{", standardised" if cfg.standardize else ""})')
  results_lib.save_weights(os.path.join(out_dir, 'weights.npz'), first.params, first.norm, names,
                           standardized=bool(cfg.standardize))
  results_lib.plot_confusion(first.scores[headline]['confusion'], names,
                             f'{title}\naccuracy {first.scores[headline]["accuracy"]:.3f} (seed {seeds[0]})',
                             os.path.join(out_dir, 'confusion.png'))
  results_lib.plot_learning_curves([r.history for r in runs], top['chance'], title,
                                   os.path.join(out_dir, 'learning_curve.png'))
  io.write_json(os.path.join(out_dir, 'results.json'), result)
  return result
