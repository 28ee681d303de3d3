"""analyze.py end to end: a trained workdir in, `<workdir>/report/` out.

  report/results.json   every number, by section (see below), plus per-dimension / per-class details
  report/figures/*.png  the analysis figures
  report/index.html     the HTML report

Sections of results.json: run, summary, training, probes, weights, latents, entanglement,
disentanglement, decoder (and settings). Each is {'items': {name: {'values': {...}, 'numbers': {...},
'groups': [{'title', 'note', 'files': [{'path', 'type', 'label'}]}], 'details': {...}}}} with file paths relative to the
workdir, or, where a workdir lacks the inputs, {'missing': {'reason', 'commands'}} naming the
commands that would fill it. `values` holds the item's numbers under stable keys (what programs
read: the summary, `make reproduce`); `numbers` is the same values under the labels the HTML
report shows, which may be reworded freely. Training, probe and decoder sections are read from what
train.py, probe.py and decode.py wrote; probe weights, latents and entanglement are computed here, on
the original's data (`AnalysisData`, config.analysis): t-SNE and 3-D scatter on the syllable train
split (labels syllable and vowel; LibriSpeech: 20480-sample crops with speaker labels), histograms on
the word train split, total correlation on the word test split. SIM features are samples by default, as the original's;
mean features go through the probes' feature cache (`<workdir>/probes/cache/`, batch size
config.probe.extract_batch_size), so analysing after probing the same split costs no encoder pass.
"""

import dataclasses
import glob
import os
import time
from typing import Callable

import jax
import numpy as np

from sim_jax import data as data_lib
from sim_jax import io
from sim_jax import workdir as workdir_lib
from sim_jax.analysis import disentanglement, entanglement, latents, report, weights
from sim_jax.models import head_modules
from sim_jax.probe import (FeatureSource, Features, cached_features, extract_many, feature_source, make_task,
                           posterior_kl_source)
from sim_jax.workdir import TrainedEncoder

FIGURES = os.path.join(workdir_lib.REPORT, 'figures')  # inside the workdir
WEIGHT_TABLES = os.path.join(workdir_lib.REPORT, 'weights')  # the original's tables, one folder per probe
DISENTANGLEMENT_DIR = os.path.join(workdir_lib.REPORT, 'disentanglement')  # each item's matrices (npz)
# Label kinds used for the 3-D scatter, in order of preference (the original: vowel).
_SCATTER_LABELS = ('vowel', 'syllable', 'speaker')
# Probes worth running per dataset: (task, source, bias); '{module}' = the analysed module.
_PROBES = {
    'deboer': (('syllables', 'context', True), ('vowels', 'context', True),
               ('vowels', '{module}', False), ('syllables', '{module}', False)),
    'demo': (('speakers', 'context', True), ('vowels', 'context', True),
             ('vowels', '{module}', False), ('speakers', '{module}', False)),
    'librispeech': (('speakers', 'context', True), ('phones', 'context', True),
                    ('speakers', '{module}', False)),
    'folder': (('{label}', 'context', True), ('{label}', '{module}', False)),  # config.analysis.label's column
}


class AnalysisError(ValueError):
  """Settings or data the analysis cannot use."""


class Commands:
  """The shell commands that fill a workdir's sections (shown where a section is missing)."""

  def __init__(self, config_file: str, workdir: str, dataset: str, module: int, label: str = ''):
    self.base = f'--config={config_file} --workdir={workdir}'
    self.dataset = dataset
    self.module = module
    self.label = label

  def train(self) -> str:
    """The training command."""
    return f'python train.py {self.base}'

  def probes(self, bias: bool | None = None) -> list[str]:
    """The probe commands suggested for this dataset (with bias=False: only the bias-free ones)."""
    out = []
    for task, source, with_bias in _PROBES[self.dataset]:
      if bias is None or with_bias == bias:
        extra = '' if with_bias else ' --config.probe.bias=False'
        out.append(f'python probe.py {self.base} --config.probe.task={task.format(label=self.label)} '
                   f'--config.probe.source={source.format(module=f"module_{self.module}")}{extra}')
    return out

  def decoder(self) -> list[str]:
    """One decoder command per conv module up to the analysed one."""
    return [f'python decode.py {self.base} --config.decoder.module={m}' for m in range(self.module + 1)]


def default_config_file(trained_config) -> str:
  """configs/<kind>_<dataset>.py (configs/demo.py for the demo corpus): the guess used in hints."""
  dataset = trained_config.data.name
  return 'configs/demo.py' if dataset == 'demo' else f'configs/{trained_config.model.kind}_{dataset}.py'


def _file(path: str, label: str) -> dict:
  kind = 'wav' if path.endswith('.wav') else 'png' if path.endswith('.png') else 'data'
  return {'path': path, 'type': kind, 'label': label}


def _group(title: str, files: list[dict], note: str = '') -> dict:
  return {'title': title, 'note': note, 'files': files}


def _scalars(tree: dict, depth: int, prefix: str = '') -> dict:
  """Scalar leaves (numbers, text, booleans) of a nested dict down to `depth` levels of nesting, as
  {'a/b': value}; lists are skipped."""
  out = {}
  for key, value in tree.items():
    name = f'{prefix}{key}'
    if isinstance(value, dict) and depth > 0:
      out.update(_scalars(value, depth - 1, name + '/'))
    elif isinstance(value, (int, float, str, bool)) or value is None:
      out[name] = value
  return out


def _missing(reason: str, commands: list[str]) -> dict:
  return {'items': {}, 'missing': {'reason': reason, 'commands': commands}}


def _item(values: dict, labels: dict | None = None, groups: list | None = None,
          details: dict | None = None) -> dict:
  """A section item: `values` under stable keys, and the same under the report's `labels` (a key
  without a label is shown as itself)."""
  labels = labels or {}
  item = {'values': values, 'numbers': {labels.get(k, k): v for k, v in values.items()},
          'groups': groups or []}
  if details is not None:
    item['details'] = details
  return item


def training_section(workdir: str, commands: Commands) -> dict:
  """Loss curves and the last validation of `<workdir>/metrics.jsonl`."""
  records = io.read_jsonl(os.path.join(workdir, workdir_lib.METRICS_FILE))
  has_plot = os.path.exists(os.path.join(workdir, workdir_lib.LOSS_CURVES))
  if not records and not has_plot:
    return _missing('no metrics.jsonl or loss_curves.png in the workdir (an imported checkpoint?)',
                    [commands.train()])
  values, labels = ({'last_step': records[-1]['step']} if records else {}), {'last_step': 'last logged step'}
  val = [r for r in records if 'val/total' in r]
  if val:
    values['last_validation_step'] = val[-1]['step']
    labels['last_validation_step'] = 'last validation step'
    for key in ('total', 'nce', 'kld'):
      for i, v in enumerate(val[-1].get(f'val/{key}', [])):
        values[f'val/{key}/{i}'] = v
        labels[f'val/{key}/{i}'] = f'module {i} validation {key}'
  groups = [_group('', [_file(workdir_lib.LOSS_CURVES, 'per-module loss curves')])] if has_plot else []
  return {'items': {'': _item(values, labels, groups)}}


def _probe_dirs(workdir: str) -> list[str]:
  return sorted(os.path.dirname(p) for p in glob.glob(os.path.join(workdir_lib.probes_dir(workdir), '*',
                                                                    'results.json')))


def probes_section(workdir: str, commands: Commands) -> dict:
  """Every probe folder: the top-level numbers of its results.json and its figures."""
  items = {}
  for probe_dir in _probe_dirs(workdir):
    pngs = sorted(glob.glob(os.path.join(probe_dir, '*.png')))
    files = [_file(os.path.relpath(p, workdir), os.path.splitext(os.path.basename(p))[0]) for p in pngs]
    items[os.path.basename(probe_dir)] = _item(
        _scalars(io.read_json(os.path.join(probe_dir, 'results.json')), depth=0), groups=[_group('', files)])
  if not items:
    return _missing('no probe results in probes/', commands.probes())
  return {'items': items}


WEIGHT_LABELS = {'features': 'probe features', 'classes': 'classes', 'dims': 'dimensions',
                 'dims_50': 'mean dims holding 50 % of |w|', 'dims_90': 'mean dims holding 90 % of |w|',
                 'fraction_dims_90': 'fraction of dims for 90 %', 'entropy': 'mean entropy of |w| (nats)',
                 'normalized_entropy': 'normalised entropy (0–1)',
                 'effective_dims': 'effective dims exp(entropy)', 'top_dims': 'most important dims'}


def weights_section(workdir: str, commands: Commands) -> dict:
  """Probe-weight analysis of every bias-free probe (folders probes/*_nobias*/ with weights.npz), on
  raw-feature-scale weights, with the original's per-class rescaled tables (report/weights/<probe>/)."""
  items = {}
  for probe_dir in _probe_dirs(workdir):
    name = os.path.basename(probe_dir)
    if '_nobias' not in name or not os.path.exists(os.path.join(probe_dir, 'weights.npz')):
      continue
    result = weights.analyze_probe_weights(probe_dir, os.path.join(workdir, FIGURES),
                                           os.path.join(workdir, WEIGHT_TABLES))
    c = result['concentration']
    heatmap, cumulative = (os.path.relpath(p, workdir) for p in result['figures'])
    tables = [_file(os.path.relpath(p, workdir), 'per-class [−1, 1] table (dims × classes)')
              for p in result['tables']]
    values = {'features': ('standardised (weights mapped back to raw-feature scale)'
                           if result['standardized'] else 'raw'),
              'classes': c['num_classes'], 'dims': c['num_dims'], 'dims_50': c['mean_dims_for_50pct'],
              'dims_90': c['mean_dims_for_90pct'], 'fraction_dims_90': c['mean_frac_dims_for_90pct'],
              'entropy': c['mean_entropy'], 'normalized_entropy': c['mean_normalized_entropy'],
              'effective_dims': c['mean_effective_dims'],
              'top_dims': ', '.join(map(str, result['top_dims'][:8]))}
    items[name] = _item(values, WEIGHT_LABELS, groups=[
        _group('', [_file(heatmap, 'weights per class, sorted by importance'),
                    _file(cumulative, 'cumulative share of |w|')]),
        _group('The original\'s weight tables', tables,
               'each class min-max rescaled to [−1, 1], transposed to (dimensions, classes), '
               'as the original\'s main_*_analysis.py')],
        details={'class_names': result['class_names'], 'standardized': result['standardized'],
                 'concentration': c, 'top_dims': result['top_dims']})
  if not items:
    return _missing('no bias-free probe (probes/*_nobias*/weights.npz)', commands.probes(bias=False))
  return {'items': items}


def decoder_section(workdir: str, commands: Commands) -> dict:
  """Every decoder module folder: its results.json numbers and the files of its outputs.json."""
  items = {}
  for module_dir in sorted(glob.glob(os.path.join(workdir, workdir_lib.DECODER, 'module_*'))):
    manifest = os.path.join(module_dir, 'outputs.json')
    results = os.path.join(module_dir, 'results.json')
    if not os.path.exists(manifest) and not os.path.exists(results):
      continue
    prefix = os.path.relpath(module_dir, workdir)
    groups = []
    for section in (io.read_json(manifest).get('sections', []) if os.path.exists(manifest) else []):
      files = [_file(os.path.join(prefix, f['path']), f.get('label', f['path']))
               for f in section.get('files', [])]
      groups.append(_group(section.get('title', section.get('name', '')), files, section.get('note', '')))
    values = _scalars(io.read_json(results), depth=1) if os.path.exists(results) else {}
    items[os.path.basename(module_dir)] = _item(values, groups=groups)
  if not items:
    return _missing('no decoder outputs in decoder/', commands.decoder())
  return {'items': items}


def summary_section(results: dict) -> dict:
  """Headline numbers of the other sections: probe accuracy, weight concentration, total
  correlation, disentanglement of the analysed module's codes, KL to the prior, decoder SNR."""
  def values(section):
    return results[section].get('items', {}).get('', {}).get('values', {})

  out = {'kind': values('run').get('kind'), 'channels': values('run').get('channels')}
  labels = {}
  for name, probe in results['probes'].get('items', {}).items():
    out[f'probes/{name}/accuracy'] = probe['values'].get('accuracy')
    labels[f'probes/{name}/accuracy'] = f'{name}: accuracy'
  for name, weight in results['weights'].get('items', {}).items():
    out[f'weights/{name}/dims_90'] = weight['values']['dims_90']
    out[f'weights/{name}/normalized_entropy'] = weight['values']['normalized_entropy']
    labels[f'weights/{name}/dims_90'] = f'{name}: mean dims holding 90 % of |w|'
    labels[f'weights/{name}/normalized_entropy'] = f'{name}: normalised entropy of |w|'
  out['gaussian_excess_tc_per_dim'] = values('entanglement').get('gaussian_excess_tc_per_dim')
  labels['gaussian_excess_tc_per_dim'] = 'Gaussian TC excess per dim (nats)'
  kde = results['entanglement'].get('items', {}).get('', {}).get('details', {}).get('kde', [])
  if kde and 'standardized_null_tc_mean' in kde[-1]:
    row = kde[-1]
    out['kde_unit_variance_excess_tc'] = row['standardized_tc_mean'] - row['standardized_null_tc_mean']
    labels['kde_unit_variance_excess_tc'] = (f'KDE TC unit-variance minus shuffled, '
                                             f'{row.get("setting", row["channels"])}')
  analysed = values('run')
  for name, item in results['disentanglement'].get('items', {}).items():
    v = item['values']
    if v['module'] != analysed.get('module') or v['features'] != analysed.get('features'):
      continue
    for key in ('mig', 'dci_disentanglement', 'sap'):
      out[f'disentanglement/{key}'] = v[key]
      labels[f'disentanglement/{key}'] = f'{name}: {DISENTANGLEMENT_LABELS[key]}'
  out['mean_kl'] = values('latents').get('mean_kl')
  labels['mean_kl'] = 'mean KL(N(m, v) ‖ N(0, 1)) per dim'
  for name, module in results['decoder'].get('items', {}).items():
    out[f'decoder/{name}/snr_db'] = module['values'].get('reconstruction/snr_db')
    labels[f'decoder/{name}/snr_db'] = f'decoder {name}: SNR (dB)'
  return {'items': {'': _item({k: v for k, v in out.items() if v is not None}, labels)}}


def analysed_module(trained: TrainedEncoder, module: int) -> int:
  """The Gaussian-head module to analyse: `module`, or the last one for -1."""
  heads = head_modules(trained.encoder.specs)
  if module < 0:
    return heads[-1]
  if module not in heads:
    raise AnalysisError(f'config.analysis.module={module}: this {trained.config.model.kind} encoder '
                        f'has conv modules {heads} (or -1 for the last)')
  return module


@dataclasses.dataclass
class AnalysisData:
  """What the latent and entanglement analyses read (module: the analysed conv module).

  labels / label_names / context / pooled: the t-SNE and 3-D scatter items (config.analysis.tsne_split,
  syllables; LibriSpeech crops): their labels {name: (N,)}, time-averaged context (N, H) and module
  output (N, D). histogram: every frame (F, D) of the module on config.analysis.histogram_split (words).
  kde: the module's Features (frames, offsets) of every item of config.analysis.kde_split (words);
  kde_redraw(n): the frames of the n-th KDE estimate's fresh SIM draw of them (None: one draw for all).
  """

  class_names: dict           # {label: [class names]}
  label_names: list[str]      # labels with class names, e.g. ['syllable', 'vowel']
  labels: dict                # {label: (N,) int}
  context: np.ndarray         # (N, H)
  pooled: np.ndarray          # (N, D)
  histogram: np.ndarray       # (F, D)
  kde: Features
  kde_redraw: Callable[[int], np.ndarray] | None
  items: dict                 # items analysed per data set: {'t-SNE', 'histograms', 'total correlation'}
  features: str               # what was read: 'sample' (SIM draws) or 'mean'
  title: str                  # e.g. 'SIM module 2 (sample)'
  label: str = ''             # the label chosen (`analysis_label`, label_names[0]); '' = the original's choice


def effective_features(cfg, trained: TrainedEncoder) -> str:
  """'sample' when config.analysis.features asks for it and the encoder has Gaussian heads (SIM),
  else 'mean' (what GIM / CPC pass on in the original's get_latents)."""
  gaussian = any(s.gaussian for s in trained.encoder.specs)
  return 'sample' if cfg.features == 'sample' and gaussian else 'mean'


def loader_items(num_items: int, batch_size: int, drop_last: bool, rng: np.random.Generator,
                 what: str) -> np.ndarray:
  """Sorted indices of the items a shuffled loader of `batch_size` yields in one epoch: a random
  floor(N / B)·B of them when `drop_last` (the original's loaders, data/get_dataloader.py:26-40),
  else all."""
  if not drop_last:
    return np.arange(num_items)
  keep = num_items // batch_size * batch_size
  if keep == 0:
    raise AnalysisError(f'{what}: {num_items} items, fewer than one batch of config.analysis.batch_size='
                        f'{batch_size} (lower it, or set config.analysis.drop_last=False)')
  return np.sort(rng.choice(num_items, keep, replace=False))


def item_frames(feats: Features, items: np.ndarray) -> np.ndarray:
  """The frames (F', D) of `items` of Features with frames and offsets."""
  rows = np.concatenate([np.arange(feats.offsets[i], feats.offsets[i + 1]) for i in items])
  return np.asarray(feats.frames[rows])


def _split_source(config, split: str, variant: str, rng: np.random.Generator):
  """Split `split` of the corpus (a random config.analysis.max_items of it when set)."""
  source = data_lib.make_source(config.data, split, variant)
  if 0 <= config.analysis.max_items < len(source):
    keep = np.sort(rng.choice(len(source), config.analysis.max_items, replace=False))
    source = data_lib.Subset(source, keep, source.split)
  return source


def _features(config, trained: TrainedEncoder, workdir: str, feature: FeatureSource, source, frames: bool,
              stream: int, draw: int = 0) -> Features:
  """Features `feature` of every item of `source` (see `_features_many`)."""
  return _features_many(config, trained, workdir, [feature], source, frames, stream, draw)[0]


def _features_many(config, trained: TrainedEncoder, workdir: str, features: list[FeatureSource], source,
                   frames: bool, stream: int, draw: int = 0) -> list[Features]:
  """Features of every item of `source` for each of `features` (all means or all samples), from one
  encoder pass: deterministic ones through the probes' cache, SIM samples drawn afresh (PRNG key:
  config.analysis.seed folded with `stream`, one per data set, and then with `draw` when it is not 0:
  further draws of the same set)."""
  cfg = config.analysis
  common = dict(batch_size=config.probe.extract_batch_size, epoch=0, seed=cfg.seed, frames=frames)
  if features[0].sample:
    key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), stream)
    names = ', '.join(f.name for f in features)
    return extract_many(trained, features, source, key=jax.random.fold_in(key, draw) if draw else key,
                        desc=f'{names} features ({source.split} {source.variant}'
                             f'{f", draw {draw + 1}" if draw else ""})', **common)
  return [cached_features(workdir_lib.feature_cache_dir(workdir), trained, feature, source,
                          data_config=config.data, also=features, **common) for feature in features]


def analysis_label(config) -> str:
  """The label the report colours and chooses by: config.analysis.label; on a folder corpus, where it
  is '', the probe task's column; else '' (the original's choices: vowels for the 3-D scatter)."""
  if config.analysis.label or config.data.name != 'folder':
    return config.analysis.label
  return make_task(config.probe.task, config.data.name, config.data).label


def load_analysis_data(config, trained: TrainedEncoder, workdir: str, module: int) -> AnalysisData:
  """The three data sets of the analyses (see AnalysisData) and their features."""
  cfg = config.analysis
  rng = np.random.default_rng(cfg.seed)
  features = effective_features(cfg, trained)
  labelled_variant = data_lib.LABELLED_VARIANT[config.data.name]
  labelled = _split_source(config, cfg.tsne_split, labelled_variant, rng)
  chosen = loader_items(len(labelled), cfg.batch_size, cfg.drop_last, rng,
                        f'{config.data.name} {cfg.tsne_split} {labelled_variant}')
  label_names = [k for k in labelled.labels if k in labelled.class_names]
  label = analysis_label(config)
  if label:
    if label not in label_names:
      raise AnalysisError(f'config.analysis.label={label!r}: the {config.data.name} {labelled_variant} items have '
                          f'the labels {", ".join(label_names) or "none"}')
    label_names = [label] + [k for k in label_names if k != label]
  if label_names:  # items without the first label are left out; labels some of the rest lack are not drawn
    chosen = chosen[labelled.labels[label_names[0]][chosen] >= 0]
    label_names = [k for k in label_names if np.all(labelled.labels[k][chosen] >= 0)]
  if len(chosen) < 3:
    raise AnalysisError(f'{config.data.name} {cfg.tsne_split} split: {len(chosen)} labelled items; the analysis '
                        'needs at least 3 (config.analysis.max_items)')
  module_feature = feature_source(trained, f'module_{module}', features)
  context = _features(config, trained, workdir, feature_source(trained, 'context', features), labelled, False,
                      0).pooled[chosen]
  pooled = _features(config, trained, workdir, module_feature, labelled, False, 1).pooled[chosen]
  words = _split_source(config, cfg.histogram_split, 'words', rng)
  histogram_items = loader_items(len(words), cfg.batch_size, cfg.drop_last, rng,
                                 f'{config.data.name} {cfg.histogram_split} words')
  histogram = item_frames(_features(config, trained, workdir, module_feature, words, True, 2), histogram_items)
  kde_source = _split_source(config, cfg.kde_split, 'words', rng)
  kde = _features(config, trained, workdir, module_feature, kde_source, True, 3)

  def kde_redraw(n: int) -> np.ndarray:  # the original re-encodes its test loader for each estimate
    return np.asarray(_features(config, trained, workdir, module_feature, kde_source, True, 3, n).frames)

  return AnalysisData(
      labelled.class_names, label_names, {k: labelled.labels[k][chosen] for k in label_names}, context,
      pooled, histogram, kde, kde_redraw if features == 'sample' and cfg.kde_redraw else None,
      {'t-SNE': len(chosen), 'histograms': len(histogram_items), 'total correlation': len(kde_source)},
      features, f'{trained.config.model.kind.upper()} module {module} ({features})', label)


def latents_section(data: AnalysisData, cfg, workdir: str) -> dict:
  """t-SNE of the context (fitted on every item, at most tsne_per_class plotted per class), 3-D
  scatter of the most informative channels, histograms and per-dimension statistics."""
  rng = np.random.default_rng(cfg.seed)
  labels = data.labels
  path = lambda name: os.path.join(workdir, FIGURES, name)  # noqa: E731
  primary = data.label_names[0]
  started = time.time()
  embedding = latents.tsne(data.context, cfg.tsne_perplexity, cfg.tsne_max_iter, cfg.seed)
  tsne_seconds = time.time() - started
  shown = latents.per_class_subset(labels[primary], cfg.tsne_per_class, rng)
  latents.plot_tsne(embedding[shown], {k: labels[k][shown] for k in data.label_names}, data.class_names,
                    path('tsne_context.png'), f't-SNE of the time-averaged context, fitted on '
                    f'{len(embedding)} {cfg.tsne_split} items, {len(shown)} shown')

  scatter_label = data.label or next((k for k in _SCATTER_LABELS if k in data.label_names), primary)
  y = labels[scatter_label]
  channels, f_stat = latents.informative_channels(data.pooled, y, 3)
  scattered = latents.per_class_subset(y, max(1000 // len(data.class_names[scatter_label]), 1), rng)
  latents.plot_scatter3d(data.pooled[scattered][:, channels], y[scattered],
                         data.class_names[scatter_label], channels, path('scatter3d.png'),
                         f'{data.title}, time-averaged: the 3 channels with the largest F for {scatter_label}')

  frames = data.histogram  # (F, D)
  stats = latents.dimension_stats(frames)
  dims = np.arange(min(cfg.histogram_dims, frames.shape[1]))
  latents.plot_histograms(frames, dims, path('histograms.png'),
                          f'{data.title}, {cfg.histogram_split} words: every frame, N(0, 1) in red',
                          cfg.histogram_range)
  latents.plot_dimension_stats(stats, path('dimension_stats.png'), f'{data.title}: per-dimension statistics')
  figure = lambda name, label: _file(os.path.join(FIGURES, name), label)  # noqa: E731
  values = {'tsne_items': len(embedding), 'tsne_shown': len(shown),
            'tsne_perplexity': latents.tsne_perplexity(len(embedding), cfg.tsne_perplexity),
            'tsne_seconds': tsne_seconds, 'histogram_items': data.items['histograms'],
            'frames': stats['num_frames'], 'dims': stats['num_dims'],
            'scatter_channels': ', '.join(map(str, channels)),
            'scatter_f': ', '.join(f'{f_stat[c]:.3g}' for c in channels), 'mean_kl': stats['mean_kl'],
            'median_kl': stats['median_kl'], 'low_variance_dims': stats['low_variance_dims'],
            'mean_abs_mean': stats['mean_abs_mean'], 'mean_var': stats['mean_var']}
  labels = {'tsne_items': 't-SNE items (fitted)', 'tsne_shown': 't-SNE points shown',
            'tsne_perplexity': 't-SNE perplexity', 'tsne_seconds': 't-SNE seconds',
            'histogram_items': 'histogram items', 'dims': 'dimensions',
            'scatter_channels': f'3-D scatter channels (largest F for {scatter_label})',
            'scatter_f': '3-D scatter F values', 'mean_kl': 'mean KL(N(m, v) ‖ N(0, 1)) per dim',
            'median_kl': 'median KL per dim', 'low_variance_dims': 'dims with variance < 0.01',
            'mean_abs_mean': 'mean |mean| over dims', 'mean_var': 'mean variance over dims'}
  return {'items': {'': _item(values, labels, groups=[
      _group('t-SNE', [figure('tsne_context.png', 't-SNE, time-averaged GRU context')]),
      _group('3-D scatter', [figure('scatter3d.png', '3 most informative channels')]),
      _group('Per-dimension distributions', [
          figure('histograms.png', 'histograms of the first dimensions'),
          figure('dimension_stats.png', 'mean, variance, KL per dimension')],
             note=f'histograms of dims 0–{len(dims) - 1}, {cfg.histogram_split} words')],
      details={'scatter_label': scatter_label, 'scatter_channels': channels, 'f_statistic': f_stat,
               'mean': stats['mean'], 'var': stats['var'], 'kl': stats['kl']})}}


def entanglement_section(data: AnalysisData, cfg, workdir: str) -> dict:
  """Gaussian total correlation over all dims and the original's KDE estimate at each setting."""
  started = time.time()
  frames = np.asarray(data.kde.frames)  # (F, D)
  gaussian = entanglement.gaussian_tc_summary(frames, cfg.seed)
  kde = entanglement.kde_tc_table(frames, data.kde.offsets, [tuple(s) for s in cfg.kde_settings],
                                  cfg.kde_repeats, cfg.kde_bandwidth, cfg.kde_batch_size, cfg.drop_last,
                                  cfg.kde_max_vectors, cfg.seed, data.kde_redraw)
  entanglement.plot_kde_table(kde, os.path.join(workdir, FIGURES, 'total_correlation.png'),
                              f'{data.title}, {cfg.kde_split} words: KDE total correlation')
  values = {'gaussian_tc': gaussian['tc'], 'gaussian_null_tc': gaussian['null_tc'],
            'gaussian_excess_tc': gaussian['excess_tc'],
            'gaussian_excess_tc_per_dim': gaussian['excess_tc_per_dim'],
            'gaussian_dims_frames': f'{gaussian["dims"]} / {gaussian["samples"]}'}
  labels = {'gaussian_tc': 'Gaussian TC, all dims (nats)', 'gaussian_null_tc': 'Gaussian TC of shuffled data (bias)',
            'gaussian_excess_tc': 'Gaussian TC excess over shuffled',
            'gaussian_excess_tc_per_dim': 'Gaussian TC excess per dim',
            'gaussian_dims_frames': 'Gaussian TC dims / frames', 'seconds': 'seconds'}
  for k, row in enumerate(kde):
    c = row['setting']
    for key, label, value in (
        ('tc', f'KDE TC, {c}', f'{row["tc_mean"]:.4g} ± {row["tc_std"]:.2g}'),
        ('samples', f'KDE TC samples, {c}',
         f'{row["samples"]} vectors of {row["items"]} items' + (' (capped)' if row['capped'] else '')),
        ('null_tc', f'KDE TC of shuffled, {c}', row['null_tc_mean']),
        ('unit_variance_tc', f'KDE TC unit-variance, {c}',
         f'{row["standardized_tc_mean"]:.4g} ± {row["standardized_tc_std"]:.2g}'),
        ('unit_variance_null_tc', f'KDE TC unit-variance of shuffled, {c}', row['standardized_null_tc_mean']),
        ('gaussian_tc', f'Gaussian TC same samples, {c}', row['gaussian_tc_mean'])):
      values[f'kde/{k}/{key}'] = value
      labels[f'kde/{k}/{key}'] = label
  values['seconds'] = time.time() - started
  note = (f'{data.items["total correlation"]} {cfg.kde_split} items in batches of {cfg.kde_batch_size}'
          f'{" (whole batches only)" if cfg.drop_last else ""}; bandwidth {cfg.kde_bandwidth}, '
          f'{cfg.kde_repeats} repeats' + (f'; at most {cfg.kde_max_vectors} vectors per estimate'
                                          if cfg.kde_max_vectors > 0 else '')
          + ('; a fresh SIM draw per estimate' if data.kde_redraw else ''))
  return {'items': {'': _item(values, labels, groups=[
      _group('', [_file(os.path.join(FIGURES, 'total_correlation.png'), 'KDE TC per setting')], note)],
      details={'gaussian': gaussian, 'kde': kde})}}


DISENTANGLEMENT_LABELS = {
    'module': 'module', 'features': 'codes', 'items': 'items (train / test)', 'dims': 'dimensions',
    'factors': 'factors', 'mig': 'MIG', 'dci_disentanglement': 'DCI disentanglement',
    'dci_disentanglement_std': 'DCI disentanglement, std over seeds', 'dci_completeness': 'DCI completeness',
    'dci_completeness_std': 'DCI completeness, std over seeds',
    'dci_informativeness': 'DCI informativeness (test accuracy)',
    'dci_informativeness_std': 'DCI informativeness, std over seeds', 'sap': 'SAP', 'modularity': 'modularity',
    'active_units': f'active units (Var of the mean > {disentanglement.ACTIVE_UNIT_THRESHOLD:g})',
    'collapsed_dims': f'collapsed dims (KL < {disentanglement.COLLAPSED_KL:g} nats)',
    'mean_posterior_kl': 'mean KL(q(z|x) ‖ N(0, 1)) per dim and frame',
    'seconds': 'seconds (the first row also holds the encoder passes of every row)'}


def _disentanglement_codes(config, trained: TrainedEncoder, workdir: str, modules: list[int],
                           sources: dict) -> dict:
  """{module: {'mean' | 'sample' | 'kl': {split: (N, C)}, 'valid': {split: (N,) bool}}} of `modules` on
  `sources` {split: Source}: time-averaged means (through the probes' cache), and for a SIM module
  time-averaged samples and the posterior's per-dimension KL to N(0, 1). Every module comes from the
  same encoder passes: one for the means and KLs, one for the samples, per split."""
  wanted = {}  # (module, kind) -> FeatureSource
  for module in modules:
    wanted[module, 'mean'] = feature_source(trained, f'module_{module}', 'mean')
    if trained.encoder.specs[module].gaussian:
      wanted[module, 'sample'] = feature_source(trained, f'module_{module}', 'sample')
      wanted[module, 'kl'] = posterior_kl_source(trained, module)
  out = {module: {'valid': {}} for module in modules}
  for s, (split, source) in enumerate(sources.items()):
    valid = {module: np.ones(len(source), bool) for module in modules}
    for sample in (False, True):
      keys = [k for k, f in wanted.items() if f.sample == sample]
      if not keys:
        continue
      got = _features_many(config, trained, workdir, [wanted[k] for k in keys], source, False, 4 + s)
      for (module, kind), f in zip(keys, got):
        out[module].setdefault(kind, {})[split] = np.asarray(f.pooled, np.float64)
        valid[module] &= f.valid
    for module in modules:
      out[module]['valid'][split] = valid[module]
  return out


def disentanglement_section(config, trained: TrainedEncoder, workdir: str) -> dict:
  """MIG, DCI, SAP, modularity, the mutual-information map, active units and (SIM) the posterior's KL
  per dimension of every Gaussian-head module in config.analysis.disentanglement_modules, against the
  item labels of the labelled items of both splits (`data.LABELLED_VARIANT`; `select_factors` picks the
  factors). Codes are time-averaged per item, as the probes read them: means, and for SIM samples too
  (one item per module and kind of code). DCI's classifiers and SAP's are fitted on the train split
  and scored on the test split, once per probe seed for DCI; the MI-based metrics use both splits."""
  cfg = config.analysis
  variant = data_lib.LABELLED_VARIANT[config.data.name]
  rng = np.random.default_rng(cfg.seed)  # the t-SNE's draw: the same train items under max_items
  sources = {split: _split_source(config, split, variant, rng) for split in ('train', 'test')}
  train, test = sources['train'], sources['test']
  labels = {k: np.concatenate([train.labels[k], test.labels[k]]) for k in train.labels if k in test.labels}
  try:
    names, left_out = disentanglement.select_factors(labels, train.class_names, tuple(cfg.disentanglement_factors))
  except ValueError as e:
    raise AnalysisError(str(e)) from None
  if not names:
    return _missing(f'the {config.data.name} {variant} items have no labels to use as factors '
                    f'({", ".join(f"{k}: {why}" for k, why in left_out.items()) or "no labels"})', [])
  heads = head_modules(trained.encoder.specs)
  modules = list(cfg.disentanglement_modules) or heads
  seeds = [config.probe.seed + s for s in range(config.probe.seeds)]
  figures = os.path.join(workdir, FIGURES)
  data_dir = os.path.join(workdir, DISENTANGLEMENT_DIR)
  os.makedirs(data_dir, exist_ok=True)
  items = {}
  started = time.time()
  all_codes = _disentanglement_codes(config, trained, workdir, modules, sources)
  for module in modules:
    codes = all_codes[module]
    valid = {split: v & disentanglement.labelled_rows(sources[split].labels, names)
             for split, v in codes.pop('valid').items()}
    kl = codes.pop('kl', None)
    factors = {split: np.stack([sources[split].labels[k] for k in names], 1)[valid[split]] for split in sources}
    for kind, by_split in codes.items():
      train_codes, test_codes = (by_split[split][valid[split]] for split in ('train', 'test'))
      r = disentanglement.scores(train_codes, factors['train'], test_codes, factors['test'], seeds,
                                 cfg.disentanglement_bins, cfg.disentanglement_trees)
      name = f'module_{module} {kind}'
      title = f'{trained.config.model.kind.upper()} module {module}, time-averaged {kind}s'
      stem = f'disentanglement_module_{module}_{kind}'
      disentanglement.plot_mutual_information(r['normalized_mi'], names, os.path.join(figures, stem + '.png'),
                                              f'{title}: I(z_i; v) / H(v)')
      values = {'module': module, 'features': kind, 'items': f'{len(train_codes)} / {len(test_codes)}',
                'dims': train_codes.shape[1], 'factors': ', '.join(names)}
      values.update({k: r[k] for k in ('mig', 'dci_disentanglement', 'dci_disentanglement_std',
                                       'dci_completeness', 'dci_completeness_std', 'dci_informativeness',
                                       'dci_informativeness_std', 'sap', 'modularity')})
      labels = dict(DISENTANGLEMENT_LABELS)
      for f, factor in enumerate(names):
        for key, label, per_factor in (('mig', 'MIG', r['mig_per_factor']), ('sap', 'SAP', r['sap_per_factor']),
                                       ('informativeness', 'DCI test accuracy',
                                        r['informativeness_per_factor'])):
          values[f'{key}/{factor}'] = float(per_factor[f])
          labels[f'{key}/{factor}'] = f'{label}, {factor}'
      arrays = {k: r[k] for k in ('mi', 'normalized_mi', 'importance', 'sap_matrix', 'factor_entropy')}
      files = [_file(os.path.join(FIGURES, stem + '.png'), 'I(z_i; v) / H(v), dims grouped by factor')]
      if kind == 'mean':
        units = disentanglement.active_units(np.concatenate([train_codes, test_codes]))
        values['active_units'] = units['active_units']
        arrays['variance'] = units['variance']
        if kl is not None:
          per_dim = np.concatenate([kl[split][valid[split]] for split in sources]).mean(axis=0)  # (C,)
          values.update(collapsed_dims=int((per_dim < disentanglement.COLLAPSED_KL).sum()),
                        mean_posterior_kl=float(per_dim.mean()))
          arrays['posterior_kl'] = per_dim
        posterior = f'posterior_module_{module}.png'
        disentanglement.plot_posterior(arrays.get('posterior_kl'), units['variance'],
                                       os.path.join(figures, posterior), f'{title}: per dimension')
        files.append(_file(os.path.join(FIGURES, posterior), 'active units' + (' and KL to N(0, 1)'
                                                                               if kl is not None else '')))
      matrices = os.path.join(DISENTANGLEMENT_DIR, stem + '.npz')
      io.save_npz(os.path.join(workdir, matrices), factors=np.array(names), **arrays)
      files.append(_file(matrices, 'MI, importance and SAP matrices (npz)'))
      values['seconds'] = time.time() - started
      started = time.time()
      items[name] = _item(values, labels, groups=[_group('', files, (
          f'{len(names)} factors ({", ".join(f"{k}: {len(train.class_names[k])} classes" for k in names)})'
          + ''.join(f'; {k} left out ({why})' for k, why in left_out.items())
          + f'; {cfg.disentanglement_bins} equal-count bins per dimension; DCI: {len(seeds)} seed(s) of '
          f'{cfg.disentanglement_trees} trees per factor'))],
          details={'factors': names, 'left_out': left_out, 'seeds': seeds, 'per_seed': r['seeds'],
                   'mig_top_dims': r['mig_top_dims'], 'sap_top_dims': r['sap_top_dims']})
  return {'items': items}


def _check_settings(cfg, trained: TrainedEncoder) -> None:
  heads = head_modules(trained.encoder.specs)
  for module in cfg.disentanglement_modules:
    if module not in heads:
      raise AnalysisError(f'config.analysis.disentanglement_modules: {module!r} is not a conv module of this '
                          f'{trained.config.model.kind} encoder (it has {heads}; () = all of them)')
  if cfg.disentanglement_bins < 2 or cfg.disentanglement_trees < 1:
    raise AnalysisError(f'config.analysis.disentanglement_bins={cfg.disentanglement_bins} and '
                        f'disentanglement_trees={cfg.disentanglement_trees}: use at least 2 bins and 1 tree')
  if cfg.features not in ('mean', 'sample'):
    raise AnalysisError(f"config.analysis.features={cfg.features!r}: use 'mean' or 'sample'")
  for key in ('tsne_split', 'histogram_split', 'kde_split'):
    if cfg[key] not in ('train', 'test'):
      raise AnalysisError(f"config.analysis.{key}={cfg[key]!r}: use 'train' or 'test'")
  for setting in cfg.kde_settings:
    if len(setting) != 3 or any(not isinstance(v, int) or v == 0 or v < -1 for v in setting):
      raise AnalysisError(f'config.analysis.kde_settings: {setting!r} is not a (channels, frames per '
                          'item, audio items) triple of positive integers or -1 (all)')


RUN_LABELS = {'gru_hidden': 'GRU hidden', 'encoder_step': 'encoder step', 'module': 'analysed module',
              'tsne_items': 't-SNE / 3-D scatter items', 'histogram_items': 'histogram items',
              'kde_items': 'total-correlation items'}


def analyze(config, workdir: str, config_file: str | None = None, reuse: bool = False) -> dict:
  """Analyse the encoder of `workdir` with `config`'s data and analysis sections (None: the
  workdir's own config.json). With `reuse`, the run / latents / entanglement / disentanglement
  sections of an earlier report/results.json are kept (a report made before the disentanglement
  section existed gets it computed) and only the sections read from other stages are refreshed.

  Writes report/results.json, report/figures/ and report/index.html; returns the results.
  """
  config = config if config is not None else workdir_lib.load_config(workdir)
  cfg = config.analysis
  report_dir = workdir_lib.report_dir(workdir)
  results_path = os.path.join(report_dir, 'results.json')
  os.makedirs(os.path.join(workdir, FIGURES), exist_ok=True)
  earlier = io.read_json(results_path) if reuse and os.path.exists(results_path) else None
  trained = None
  if earlier is not None and 'values' in earlier['run']['items']['']:
    results = {k: v for k, v in earlier.items()
               if k in ('run', 'latents', 'entanglement', 'disentanglement', 'settings')}
    module = results['run']['items']['']['values']['module']
    trained_config = workdir_lib.load_config(workdir)
  else:
    trained = _load_encoder(config, workdir)
    config = workdir_lib.with_training_data_root(config, trained.config)
    trained_config = trained.config
    module = analysed_module(trained, cfg.module)
    data = load_analysis_data(config, trained, workdir, module)
    model = trained.config.model
    labelled = 'crops' if config.data.name in data_lib.CROPPED else 'syllables'
    run = {'workdir': os.path.abspath(workdir), 'kind': model.kind, 'dataset': trained.config.data.name,
           'channels': model.channels, 'gru_hidden': model.gru_hidden,
           'checkpoint': os.path.relpath(trained.path, workdir), 'encoder_step': trained.step,
           'module': module, 'features': data.features,
           'tsne_items': f'{data.items["t-SNE"]} {cfg.tsne_split} {labelled}',
           'histogram_items': f'{data.items["histograms"]} {cfg.histogram_split} words',
           'kde_items': f'{data.items["total correlation"]} {cfg.kde_split} words',
           'labels': ', '.join(data.label_names)}
    results = {
        'run': {'items': {'': _item(run, RUN_LABELS)}},
        'latents': latents_section(data, cfg, workdir),
        'entanglement': entanglement_section(data, cfg, workdir),
        'settings': {**cfg.to_dict(), 'effective': {
            'encoder_checkpoint': os.path.relpath(trained.path, workdir), 'encoder_step': trained.step,
            'module': module, 'features': data.features, 'items': data.items}}}
  if 'disentanglement' not in results:
    if trained is None:
      trained = _load_encoder(config, workdir)
      config = workdir_lib.with_training_data_root(config, trained.config)
    results['disentanglement'] = disentanglement_section(config, trained, workdir)
  results['run']['name'] = os.path.basename(os.path.abspath(workdir))
  label = results['run']['items']['']['values']['labels'].split(', ')[0]
  commands = Commands(config_file or default_config_file(trained_config), workdir, config.data.name, module, label)
  results.update(training=training_section(workdir, commands), probes=probes_section(workdir, commands),
                 weights=weights_section(workdir, commands), decoder=decoder_section(workdir, commands))
  results['summary'] = summary_section(results)
  io.write_json(results_path, results)
  report.render_report([(workdir, results)], report_dir)
  return results


def _load_encoder(config, workdir: str) -> TrainedEncoder:
  """The encoder config.analysis.checkpoint names, after the analysis settings are checked."""
  trained = workdir_lib.load_trained_encoder(workdir, config.analysis.checkpoint, 'config.analysis.checkpoint')
  _check_settings(config.analysis, trained)
  return trained


def compare(workdirs: list[str], results: list[dict], out_dir: str) -> str:
  """Write the side-by-side report of analysed workdirs into `out_dir`; returns the page's path."""
  path = report.render_report(list(zip(workdirs, results)), out_dir)
  io.write_json(os.path.join(out_dir, 'results.json'),
                {os.path.abspath(w): r for w, r in zip(workdirs, results)})
  return path
