"""A probe run: frozen encoder -> (cached) features -> linear probe per seed -> results folder.

`run_probe(config, workdir)` reads the encoder from the training workdir (its own config.json and
checkpoint `config.probe.checkpoint`), the data from `config.data` and the probe settings from
`config.probe`, and writes `<workdir>/probes/<name>/` (see `probe_name` and `sim_jax.probe.results`).

Per epoch the probe trains on the training features in an order drawn from (seed, epoch). 'mean'
features are extracted once and cached; for cropping data (LibriSpeech speakers) `train_crops` crop
sets are drawn once and epoch e uses set e mod train_crops (the original draws new crops every epoch,
i.e. runs the encoder every epoch). 'sample' features are redrawn every epoch, with new crops, as the
original; the test features are one draw per seed.
"""

import os
import time

import jax
import numpy as np
from tqdm import tqdm

from sim_jax import io
from sim_jax.probe import results as results_lib
from sim_jax.probe.features import (ProbeError, cached_features, extract, feature_source)
from sim_jax.probe.linear import (ProbeSpec, feature_norm, identity_norm, init_probe, make_optimizer,
                                  make_train_step, predict, train_epoch)
from sim_jax.probe.tasks import (check_source, class_names, make_sources, make_task, probe_data)
from sim_jax.train.checkpoint import load_trained_encoder

TEST_SAMPLE_FOLD = 1 << 20  # folds the per-seed key for the test draw of sampled features


def probe_name(probe_config) -> str:
  """`<task>_<source>`, plus `_nobias` without a bias and `_sample` for sampled features."""
  name = f'{probe_config.task}_{probe_config.source}'
  if not probe_config.bias:
    name += '_nobias'
  if probe_config.features == 'sample':
    name += '_sample'
  return name


def _checkpoint(which) -> str | int:
  which = str(which)
  if which in ('best', 'latest'):
    return which
  if which.isdigit():
    return int(which)
  raise ProbeError(f"config.probe.checkpoint={which!r}: use 'best', 'latest' or a step number")


def _check_settings(cfg) -> None:
  for key in ('num_epochs', 'batch_size', 'extract_batch_size', 'seeds', 'train_crops'):
    if int(cfg[key]) < 1:
      raise ProbeError(f'config.probe.{key}={cfg[key]} must be at least 1')
  if not cfg.learning_rate > 0:
    raise ProbeError(f'config.probe.learning_rate={cfg.learning_rate} must be positive')
  if cfg.gradient_clipping < 0:
    raise ProbeError(f'config.probe.gradient_clipping={cfg.gradient_clipping} must be ≥ 0 (0 = off)')


def _check_labelled(task, datas: dict, sources: dict) -> None:
  for name, data in datas.items():
    if not len(data.trainable_items()):
      src = sources[name]
      raise ProbeError(f'no labelled {task.label} targets in the {src.corpus} {src.split} split '
                       f'({src.variant}, {len(src)} items) used for {name!r}: nothing to '
                       f'{"train on" if name == "train" else "score"}')


class _FeatureProvider:
  """Training and test features of one run, cached ('mean') or drawn per epoch / seed ('sample')."""

  def __init__(self, config, workdir, trained, source, task, train_source, test_sources):
    cfg = config.probe
    self.cfg, self.config, self.trained, self.source, self.task = cfg, config, trained, source, task
    self.train_source, self.test_sources = train_source, test_sources
    self.cache_dir = os.path.join(workdir, 'probes', 'cache')
    crops = callable(getattr(train_source, 'crop_starts', None))
    self.crop_sets = min(cfg.train_crops, cfg.num_epochs) if crops else 1
    self.seconds = 0.0
    self._train, self._test = {}, {}
    self.unlabelled = {}

  def _features(self, data_source, epoch: int, key):
    tick = time.perf_counter()
    common = dict(batch_size=self.cfg.extract_batch_size, epoch=epoch, seed=self.cfg.seed,
                  frames=self.task.frame_wise)
    if self.source.sample:
      feats = extract(self.trained, self.source, data_source, key=key,
                      desc=f'{self.source.name} samples ({data_source.split})', **common)
    else:
      feats = cached_features(self.cache_dir, self.trained, self.source, data_source,
                              data_config=self.config.data, **common)
    data, missing = probe_data(self.task, data_source, feats)
    self.seconds += time.perf_counter() - tick
    return data, missing

  def train(self, seed: int, epoch: int):
    """ProbeData of the training split for this epoch."""
    if self.source.sample:
      data, self.unlabelled['train'] = self._features(
          self.train_source, epoch, jax.random.fold_in(jax.random.PRNGKey(seed), epoch))
      return data
    crop_set = epoch % self.crop_sets
    if crop_set not in self._train:
      self._train[crop_set], self.unlabelled['train'] = self._features(self.train_source, crop_set, None)
    return self._train[crop_set]

  def test(self, seed: int) -> dict:
    """{evaluation name: ProbeData} of the test split(s) for this seed."""
    out = {}
    key = jax.random.fold_in(jax.random.PRNGKey(seed), TEST_SAMPLE_FOLD) if self.source.sample else None
    for name, data_source in self.test_sources.items():
      if self.source.sample or name not in self._test:
        self._test[name], self.unlabelled[name] = self._features(data_source, 0, key)
      out[name] = self._test[name]
    return out


def run_probe(config, workdir: str) -> dict:
  """Train and evaluate the probe `config.probe` on the encoder of `workdir`; returns results.json."""
  cfg = config.probe
  _check_settings(cfg)
  trained = load_trained_encoder(workdir, _checkpoint(cfg.checkpoint))
  source = feature_source(trained, cfg.source, cfg.features)
  task = make_task(cfg.task, config.data.name)
  check_source(task, source)
  train_source, test_sources = make_sources(task, config.data)
  names = class_names(task, train_source)
  out_dir = os.path.join(workdir, 'probes', probe_name(cfg))
  os.makedirs(out_dir, exist_ok=True)
  provider = _FeatureProvider(config, workdir, trained, source, task, train_source, test_sources)
  headline = task.evaluations[0][0]
  spec = ProbeSpec(source.dim, len(names), bias=bool(cfg.bias), init=task.init)
  tx = make_optimizer(cfg.learning_rate, cfg.gradient_clipping)
  train_step = make_train_step(tx)
  log = io.MetricLog(os.path.join(out_dir, 'metrics.jsonl'), config.wandb, config.to_dict(),
                     wandb_dir=out_dir)
  log.truncate(-1)  # a rerun replaces the previous run's records
  seeds = list(range(cfg.seed, cfg.seed + cfg.seeds))
  histories, scores, first_params = [], {name: [] for name in test_sources}, None
  train_seconds, epochs_run = 0.0, 0
  bar = tqdm(total=len(seeds) * cfg.num_epochs, desc=f'probe {probe_name(cfg)}', unit='epoch',
             dynamic_ncols=True)
  try:
    for s_index, seed in enumerate(seeds):
      params = init_probe(jax.random.PRNGKey(seed), spec)
      opt_state = tx.init(params)
      tests = provider.test(seed)
      history = []
      for epoch in range(cfg.num_epochs):
        data = provider.train(seed, epoch)
        if epoch == 0:
          if s_index == 0:
            _check_labelled(task, {'train': data, **tests}, {'train': train_source, **test_sources})
          norm = feature_norm(data) if cfg.standardize else identity_norm(source.dim)
        tick = time.perf_counter()
        params, opt_state, train = train_epoch(train_step, params, opt_state, norm, data,
                                               data.trainable_items(), cfg.batch_size, [seed, epoch])
        record = {'seed': seed, 'epoch': epoch + 1, 'train/loss': train['loss'],
                  'train/accuracy': train['accuracy']}
        last = epoch + 1 == cfg.num_epochs
        if last or (cfg.eval_every_epochs > 0 and (epoch + 1) % cfg.eval_every_epochs == 0):
          loss, targets, preds = predict(params, norm, tests[headline], cfg.batch_size)
          record.update({'test/loss': loss, 'test/accuracy': float(np.mean(targets == preds))})
        train_seconds += time.perf_counter() - tick
        epochs_run += 1
        history.append(record)
        log.write(s_index * cfg.num_epochs + epoch + 1, **record)
        bar.update(1)
        bar.set_postfix_str(f"loss {train['loss']:.3f}" +
                            (f" test acc {record['test/accuracy']:.3f}" if 'test/accuracy' in record else ''))
      histories.append(history)
      for name, test_data in tests.items():
        loss, targets, preds = predict(params, norm, test_data, cfg.batch_size)
        scores[name].append(results_lib.score(targets, preds, loss, len(names)))
      if first_params is None:
        first_params, first_norm = jax.device_get(params), norm
  finally:
    bar.close()
    log.close()

  evaluations = {name: results_lib.summarize(per_seed, len(names), len(test_sources[name]))
                 for name, per_seed in scores.items()}
  top = evaluations[headline]
  title = f'{task.name} probe on {source.name} ({cfg.features}{", no bias" if not cfg.bias else ""})'
  result = {
      'task': task.name, 'source': source.name, 'features': cfg.features, 'bias': bool(cfg.bias),
      'accuracy': top['accuracy'], 'accuracy_std': top['accuracy_std'], 'loss': top['loss'],
      'chance': top['chance'], 'majority': top['majority'], 'num_classes': len(names),
      'num_test_items': top['num_test_items'], 'num_test_targets': top['num_test_targets'],
      'evaluation': headline, 'num_seeds': len(seeds),
      'evaluations': {name: {k: v for k, v in e.items() if k not in ('per_class_accuracy', 'support')}
                      for name, e in evaluations.items()},
      'checkpoint': {'path': trained.path, 'step': trained.step},
      'encoder': {'kind': trained.config.model.kind, 'feature_dim': source.dim,
                  'frame_hop_samples': source.hop},
      'data': {'corpus': config.data.name, 'train_variant': task.train_variant,
               'train_items': len(train_source), 'train_items_unlabelled': provider.unlabelled.get('train', 0),
               'train_crop_sets': provider.crop_sets},
      'timing': {'features_seconds': provider.seconds,
                 'seconds_per_epoch': train_seconds / max(epochs_run, 1)},
      'settings': {**cfg.to_dict(), 'init': task.init},
      'class_names': names,
      'per_class_accuracy': {name: e['per_class_accuracy'] for name, e in evaluations.items()},
      'support': {name: e['support'] for name, e in evaluations.items()},
  }
  results_lib.save_weights(os.path.join(out_dir, 'weights.npz'), first_params, first_norm, names)
  results_lib.plot_confusion(scores[headline][0]['confusion'], names,
                             f'{title}\naccuracy {scores[headline][0]["accuracy"]:.3f} (seed {seeds[0]})',
                             os.path.join(out_dir, 'confusion.png'))
  results_lib.plot_learning_curves(histories, top['chance'], title,
                                   os.path.join(out_dir, 'learning_curve.png'))
  io.write_json(os.path.join(out_dir, 'results.json'), result)
  return result
