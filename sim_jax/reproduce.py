"""The paper's SIM-vs-GIM experiment on de Boer in one command, stage by stage, resumable.

  python reproduce.py --config=configs/reproduce.py --scale=smoke|cpu|paper [--betas=0,0.001,0.01,0.1]
      [--config.prediction_steps=12]

For every β (0 = GIM, configs/gim_deboer.py; β > 0 = SIM with that KL weight, configs/sim_deboer.py),
with the same seed and data order, `reproduce` runs in `<workdir>/<model>/`:
  train          the encoder (train.py's `train_and_evaluate`);
  probes         syllable and vowel probes on modules 0, 1, 2 and the context (probe.py's `run_probe`,
                 the config's probe recipe, `config.probe.seeds` seeds: mean ± std);
  concentration  the bias-free vowel probe on the last conv module and the concentration of its
                 weights (dimensions holding 50 % / 90 % of |w|, entropy; the original's
                 main_vowel_classifier_analysis.py reads this probe);
  decoder        decode.py's decoder of module 0 and the interpolation contribution score curve
                 (relative error after interpolating the n most different dimensions);
  interpolation  the decoder of the last conv module as the original's eval_decoder notebook had it
                 (module 2, MSE + mel loss, SIM samples) and the notebook's interpolation
                 concentration, the paper's figure (sim_jax/decoder/concentration.py);
  analysis       analyze.py's report, which also computes the total correlation (KDE + Gaussian);
  disentanglement  the report's Disentanglement section (MIG, DCI, SAP, modularity, active units per
                 module and kind of code on the syllables' consonant / vowel / position; computed by
                 the analysis stage's report, or here for a report made before the section existed).
Each stage writes `<model>/reproduce/<stage>.json` last, atomically; a rerun skips the stages that have
one (train and decoder also resume inside a stage). Every setting comes from the encoder config files
and their defaults; the scale (configs/reproduce.py) overrides only sizes: width, epochs, batch, steps,
probe seeds / epochs, decoder epochs, pairs and items (`--config.prediction_steps=12` trains with the
K of the original's logged run instead). Then `<workdir>/table.json`, `table.md` and `tradeoff.png` are
written, with the original's logged figures beside ours, and with several β values
`disentanglement_beta.png` (the disentanglement metrics against β).
"""

import functools
import json
import math
import os
import time

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from sim_jax import io  # noqa: E402
from sim_jax.config import load_config_file  # noqa: E402
from sim_jax.workdir import changed_settings  # noqa: E402

TASKS = ('syllables', 'vowels')
SOURCES = ('module_0', 'module_1', 'module_2', 'context')
CONCENTRATION_PROBE = ('vowels', 'module_2')  # bias-free, the last conv module: what the original analyses
STAGES = ('train', 'probes', 'concentration', 'decoder', 'interpolation', 'analysis', 'disentanglement')
# The decoder the eval_decoder notebook (fdenoodt/Smooth-InfoMax@d39935c) reads: the last conv module's
# (`forward_through_all_cnn_modules`), trained with its config's MSE + mel loss (config_code/sim_setup.py
# `decoder_loss=DecoderLoss.MSE_MEL`; the notebook prints "Loading decoder trained w/ loss: DecoderLoss.MSE_MEL").
NOTEBOOK_DECODER = {'module': 2, 'loss': 'mse+mel'}
# Collapse: every module's validation InfoNCE at least this share of chance, ln(1 + negatives), and
# (SIM) every module's KL below KL_COLLAPSED nats (the KL as the loss reports it: summed over time).
NCE_COLLAPSED_SHARE = 0.95
KL_COLLAPSED = 1.0
# The original's logged figures (de Boer, 512 channels, 1000 epochs, batch 64, K = 12, seed 2, test
# set 320 items with drop_last); accuracies are of the GRU context probes (bias on, §5.1), the
# interpolation concentration from its eval_decoder notebook (cells 3–4, reference-semantics §6.6).
ORIGINAL = {
    'setting': 'the original (de Boer, 512 channels, 1000 epochs, batch 64, K = 12, seed 2, 320 test '
               'items with drop_last; interpolation: its eval_decoder notebook — module 2, an MSE + mel '
               'decoder, all pairs of 128 test words, k = 16, 32, 64, 128)',
    'gim': {'syllables_context': 0.528, 'vowels_context': 0.966, 'interpolation': 0.867},
    'sim': {'syllables_context': 0.484, 'vowels_context': 0.950, 'interpolation': 0.541},
}


def model_name(beta: float) -> str:
  """'gim' for β = 0, else 'sim_beta<β>' (the folder and table name of the model)."""
  return 'gim' if beta == 0 else f'sim_beta{beta:g}'


def experiment_config(config, scale: str, beta: float) -> ml_collections.ConfigDict:
  """The experiment config of one β: the encoder config file (GIM for β = 0, else SIM with KL weight
  β), updated with the scale's size overrides (config.scales.<scale>) and the data location."""
  if scale not in config.scales:
    raise ValueError(f'--scale={scale}: not one of {", ".join(sorted(config.scales))} '
                     '(the scales of configs/reproduce.py)')
  if beta < 0:
    raise ValueError(f'--betas: β={beta:g} is negative; use 0 (GIM) or a positive KL weight')
  model = load_config_file(config.gim_config if beta == 0 else config.sim_config)
  model.lock()  # an override naming no key of the encoder config is an error, not a new key
  try:
    model.update(config.scales[scale])
  except (KeyError, TypeError) as e:
    reason = str(e.args[0] if e.args else e).splitlines()[0]
    raise ValueError(f'configs/reproduce.py scales.{scale}: {reason}') from None
  if config.data_root:
    model.data.root = config.data_root
  if config.prediction_steps:
    model.model.prediction_steps = int(config.prediction_steps)
  if beta > 0:
    model.model.kld_weight = float(beta)
  return model


# The config sections of the later stages that each stage reads; the others are left out of its
# settings, so changing, say, the decoder's settings redoes the decoder, not the training or probes.
LATER_SECTIONS = ('probe', 'decoder', 'analysis')
STAGE_READS = {'train': (), 'probes': ('probe',), 'concentration': ('probe',), 'decoder': ('decoder',),
               'interpolation': ('decoder',), 'analysis': ('probe', 'decoder', 'analysis'),
               'disentanglement': ('probe', 'analysis')}


def stage_settings(settings: dict, stage: str) -> dict:
  """What a stage's result depends on, from the model's config as JSON has it (`settings`): all of
  it less the data's location and the sections of later stages that this stage does not read."""
  settings = json.loads(json.dumps(settings))
  settings['data'].pop('root', None)
  for section in LATER_SECTIONS:
    if section not in STAGE_READS[stage]:
      settings.pop(section, None)
  return settings


def run_stage(model_dir: str, stage: str, label: str, config, fn) -> dict:
  """`fn()` unless `<model_dir>/reproduce/<stage>.json` exists; writes it (with the minutes taken and
  the settings) last and atomically, and prints one progress line either way. A record made with
  other settings stops the run, naming them (a setting the record predates is not compared).
  Returns the stage's record."""
  path = os.path.join(model_dir, 'reproduce', f'{stage}.json')
  settings = stage_settings(config.to_dict(), stage)
  if os.path.exists(path):
    record = io.read_json(path)
    changed = changed_settings(stage_settings(record['settings'], stage), settings)
    if changed:
      raise ValueError(f'{path} was made with other settings than this run\'s ({", ".join(changed)}); '
                       f'use another --workdir, or delete {path} to redo this stage')
    print(f'[reproduce] {label}: {stage} done before ({record["minutes"]:.1f} min), skipped', flush=True)
    return record
  print(f'[reproduce] {label}: {stage} ...', flush=True)
  started = time.time()
  record = fn()
  record.update(minutes=(time.time() - started) / 60, settings=settings)
  io.write_json(path, record)
  print(f'[reproduce] {label}: {stage} done in {record["minutes"]:.1f} min', flush=True)
  return record


def last_validation(workdir: str) -> dict:
  """The last validation record of `<workdir>/metrics.jsonl`: {'step', 'nce', 'kld'} per module."""
  val = [r for r in io.read_jsonl(os.path.join(workdir, 'metrics.jsonl')) if 'val/nce' in r]
  if not val:
    raise ValueError(f'{workdir}/metrics.jsonl has no validation record; delete {workdir} and rerun')
  return {'step': val[-1]['step'], 'nce': val[-1]['val/nce'], 'kld': val[-1]['val/kld']}


def collapsed(validation: dict, num_negatives: int, kind: str) -> bool:
  """True when every module's InfoNCE is near chance, ln(1 + negatives), and (SIM) every KL near 0:
  the encoder sits at the prior and predicts nothing."""
  chance = math.log(1 + num_negatives)
  at_chance = min(validation['nce']) >= NCE_COLLAPSED_SHARE * chance
  return at_chance and (kind != 'sim' or max(validation['kld']) < KL_COLLAPSED)


def train_stage(config, workdir: str) -> dict:
  """Train (or resume) the encoder; the last validation and whether it collapsed."""
  from sim_jax.train.loop import train_and_evaluate
  train_and_evaluate(config, workdir)
  validation = last_validation(workdir)
  return {'validation': validation,
          'collapsed': collapsed(validation, config.model.num_negatives, config.model.kind)}


def probe_config(config, task: str, source: str, bias: bool | None = None) -> ml_collections.ConfigDict:
  """A copy of `config` with probe task / source (and bias) set; the rest is the config's recipe."""
  config = ml_collections.ConfigDict(config.to_dict())
  config.probe.task, config.probe.source = task, source
  if bias is not None:
    config.probe.bias = bias
  return config


def probes_stage(config, workdir: str) -> dict:
  """Syllable and vowel probes on every module and the context: accuracy mean ± std over seeds."""
  from sim_jax.probe import run_probe
  out = {}
  for task in TASKS:
    for source in SOURCES:
      r = run_probe(probe_config(config, task, source), workdir, cache_also=SOURCES)  # one encoder pass
      out[f'{task}_{source}'] = {'mean': r['accuracy'], 'std': r['accuracy_std'],
                                 'seeds': r['evaluations'][r['evaluation']]['per_seed_accuracy'],
                                 'chance': r['chance'], 'checkpoint_step': r['checkpoint']['step']}
  return {'probes': out}


def concentration_stage(config, workdir: str) -> dict:
  """The bias-free vowel probe on the last conv module and how concentrated its weights are."""
  from sim_jax.analysis.weights import concentration, load_probe_weights
  from sim_jax.probe import run_probe
  config = probe_config(config, *CONCENTRATION_PROBE, bias=False)
  r = run_probe(config, workdir)
  weights, _, _ = load_probe_weights(os.path.join(workdir, 'probes', r['name'], 'weights.npz'))
  c = concentration(weights)
  return {'probe': r['name'], 'features': r['features'], 'accuracy': r['accuracy'], 'dims': c['num_dims'],
          'dims_50': c['mean_dims_for_50pct'], 'dims_90': c['mean_dims_for_90pct'],
          'entropy': c['mean_entropy'], 'normalized_entropy': c['mean_normalized_entropy']}


def score_summary(ks, relative, width: int) -> dict:
  """The curve's two numbers: the relative error at n = width / 8 (interpolated in log2 n when the
  curve has no such point) and the area under the curve over log2 n, divided by the log2 range
  (a mean relative error in [0, ~1]; lower: the information sits in fewer dimensions)."""
  logs = np.log2(np.asarray(ks, np.float64))
  relative = np.asarray(relative, np.float64)
  n = max(width // 8, int(ks[0]))
  auc = float(np.sum(np.diff(logs) * (relative[1:] + relative[:-1]) / 2) / (logs[-1] - logs[0]))
  return {'n': n, 'relative_at_n': float(np.interp(math.log2(n), logs, relative)), 'auc_log2': auc}


def decoder_stage(config, workdir: str) -> dict:
  """decode.py's decoder and the interpolation contribution score curve (the notebook's figure is
  the interpolation stage's, on the last conv module: not computed here)."""
  from sim_jax.decoder.run import run
  config = ml_collections.ConfigDict(config.to_dict())
  config.decoder.notebook_concentration = False
  r = run(config, workdir)
  score = r['contribution_score']
  return {'module': r['module'], 'k': score['k'], 'relative': score['relative'],
          'num_pairs': score['num_pairs'], 'num_items': score['num_items'],
          'encoder_step': r['encoder_step'], 'decoder_step': r['decoder_step'],
          'test_mse': r['reconstruction']['test_mse'], 'snr_db': r['reconstruction']['snr_db'],
          **score_summary(score['k'], score['relative'], config.model.channels)}


def interpolation_stage(config, workdir: str) -> dict:
  """The notebook's decoder (NOTEBOOK_DECODER) and its interpolation concentration, the paper's
  figure; the same decoder's contribution score curve beside it."""
  from sim_jax.decoder.run import run
  config = ml_collections.ConfigDict(config.to_dict())
  config.decoder.update(NOTEBOOK_DECODER, notebook_concentration=True)
  r = run(config, workdir)
  notebook, score = r['interpolation_concentration'], r['contribution_score']
  return {'module': r['module'], 'loss': r['loss'], 'latents': r['latents'],
          **{k: notebook[k] for k in ('concentration', 'distance', 'max_distance', 'k', 'distance_per_k',
                                      'num_pairs', 'num_items')},
          'contribution': {'k': score['k'], 'relative': score['relative']},
          'encoder_step': r['encoder_step'], 'decoder_step': r['decoder_step'],
          'test_mse': r['reconstruction']['test_mse'], 'snr_db': r['reconstruction']['snr_db']}


def analysis_stage(config, workdir: str) -> dict:
  """analyze.py's report; its total correlation (Gaussian over all dims, KDE on channel subsets)."""
  from sim_jax.analysis.run import analyze
  results = analyze(config, workdir)
  details = results['entanglement']['items']['']['details']
  gaussian = details['gaussian']
  kde = [{k: row[k] for k in ('setting', 'channels', 'times', 'max_items', 'items', 'samples', 'capped',
                               'tc_mean', 'tc_std', 'standardized_tc_mean')}
         for row in details['kde']]
  run = results['run']['items']['']['values']
  return {'report': os.path.join(workdir, 'report', 'index.html'),
          'analysed_module': run['module'], 'encoder_step': run['encoder_step'],
          'total_correlation': {'gaussian': gaussian['tc'], 'gaussian_excess': gaussian['excess_tc'],
                                'gaussian_dims': gaussian['dims'], 'kde': kde}}


# The disentanglement metrics of table.json, per module and kind of code; DCI's are mean ± std over
# the probe seeds (its classifiers are trained once per seed), the others are deterministic.
DISENTANGLEMENT_METRICS = ('mig', 'dci_disentanglement', 'dci_completeness', 'dci_informativeness', 'sap',
                           'modularity')


def disentanglement_stage(config, workdir: str) -> dict:
  """The Disentanglement section of analyze.py's report, per module and kind of code (GIM: means;
  SIM: means and samples): {'factors', 'modules': {'module_<i>': {codes: metrics}}}."""
  from sim_jax.analysis.run import analyze
  section = analyze(config, workdir, reuse=True)['disentanglement']
  if 'missing' in section:
    raise ValueError(f'{workdir}: no disentanglement section ({section["missing"]["reason"]})')
  modules = {}
  for item in section['items'].values():
    v, per_seed = item['values'], item['details']['per_seed']
    entry = {k: ({'mean': v[k], 'std': v[f'{k}_std'], 'seeds': per_seed[k]} if k in per_seed else v[k])
             for k in DISENTANGLEMENT_METRICS}
    entry.update({k: v[k] for k in ('dims', 'active_units', 'collapsed_dims', 'mean_posterior_kl') if k in v})
    modules.setdefault(f'module_{v["module"]}', {})[v['features']] = entry
  return {'factors': next(iter(section['items'].values()))['details']['factors'], 'modules': modules}


STAGE_FUNCTIONS = {'train': train_stage, 'probes': probes_stage, 'concentration': concentration_stage,
                   'decoder': decoder_stage, 'interpolation': interpolation_stage, 'analysis': analysis_stage,
                   'disentanglement': disentanglement_stage}


def table_entry(config, beta: float, workdir: str, records: dict) -> dict:
  """One model's row of table.json from its stage records."""
  m, t = config.model, config.train
  return {
      'model': m.kind, 'name': model_name(beta), 'beta': beta, 'channels': m.channels,
      'epochs': t.num_epochs, 'workdir': os.path.abspath(workdir),
      'checkpoint_step': records['probes']['probes'][f'{TASKS[0]}_{SOURCES[-1]}']['checkpoint_step'],
      'collapsed': records['train']['collapsed'], 'validation': records['train']['validation'],
      'probes': {k: {x: v[x] for x in ('mean', 'std', 'seeds', 'chance')}
                 for k, v in records['probes']['probes'].items()},
      'concentration': {'interpolation': records['interpolation']['concentration'],
                        'interpolation_module': records['interpolation']['module'],
                        'interpolation_pairs': records['interpolation']['num_pairs'],
                        'interpolation_k': records['interpolation']['k'],
                        'interpolation_distance_per_k': records['interpolation']['distance_per_k'],
                        'interpolation_snr_db': records['interpolation']['snr_db'],
                        'contribution_module': records['decoder']['module'],
                        'contribution_at_n': records['decoder']['relative_at_n'],
                        'contribution_n': records['decoder']['n'],
                        'contribution_auc_log2': records['decoder']['auc_log2'],
                        'contribution_curve': {'k': records['decoder']['k'],
                                               'relative': records['decoder']['relative']},
                        'dims_50': records['concentration']['dims_50'],
                        'dims_90': records['concentration']['dims_90'],
                        'entropy': records['concentration']['entropy'],
                        'normalized_entropy': records['concentration']['normalized_entropy']},
      'total_correlation': records['analysis']['total_correlation'],
      'disentanglement': {k: records['disentanglement'][k] for k in ('factors', 'modules')},
      'minutes': {s: records[s]['minutes'] for s in STAGES},
      'settings': {'kld_weight': m.kld_weight, 'gru_hidden': m.gru_hidden,
                   'prediction_steps': m.prediction_steps, 'batch_size': t.batch_size,
                   'learning_rate': t.learning_rate, 'steps_per_epoch': t.steps_per_epoch,
                   'seed': config.seed, 'probe': config.probe.to_dict(),
                   'decoder': {k: config.decoder[k] for k in ('module', 'latents', 'loss', 'num_epochs',
                                                              'steps_per_epoch', 'test_loader_batch',
                                                              'score_items', 'score_pairs', 'checkpoint')},
                   'notebook_decoder': NOTEBOOK_DECODER,
                   'analysis': config.analysis.to_dict()},
      'report': records['analysis']['report'],
  }


def _pm(probe: dict) -> str:
  return f'{100 * probe["mean"]:.1f} ± {100 * probe["std"]:.1f}'


def table_markdown(table: dict) -> str:
  """table.md: our figures per model, the original's beside them, where each comes from."""
  models = table['models']
  lines = [f'# SIM vs GIM on de Boer — scale `{table["scale"]}`', '',
           f'Workdir `{table["workdir"]}`; {table["minutes"]:.0f} min of stages in all (each stage\'s minutes '
           f'as first run: below). Probe accuracy in % '
           f'(mean ± std over seeds; chance: syllables 11.1, vowels 33.3); interpolation: the original\'s '
           f'eval_decoder notebook figure on module 2 (mean |decoder error| after swapping the k = 1/32 … '
           f'1/4 of the width most different dimensions, over its error with none swapped; lower: more '
           f'concentrated); SNR m2: that decoder\'s reconstruction SNR on the test items (at ≤ 0 dB it does '
           f'not yet reconstruct, and its interpolation figure cannot tell models apart); contribution '
           f'(module 0): the contribution score\'s relative MSE after '
           f'swapping the n = width/8 most different dimensions, AUC: its mean over log2 n; dims 90 %: '
           f'dimensions holding 90 % of the bias-free vowel probe\'s |w| (module 2), entropy of |w| in nats.',
           '',
           '| model | β | ch | epochs | collapsed | val InfoNCE | val KL | syll. context | vowels context '
           '| interpolation | SNR m2 (dB) | contribution m0 (n) | AUC m0 | dims 90 % | entropy '
           '| Gaussian TC excess | KDE TC (ch) |',
           '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
  for e in models:
    c, tc, v = e['concentration'], e['total_correlation'], e['validation']
    kde = f'{tc["kde"][-1]["tc_mean"]:.3g} ({tc["kde"][-1]["channels"]})' if tc['kde'] else '—'
    lines.append(
        f'| {e["name"]} | {e["beta"]:g} | {e["channels"]} | {e["epochs"]} | '
        f'{"**yes**" if e["collapsed"] else "no"} | {" / ".join(f"{x:.2f}" for x in v["nce"])} | '
        f'{" / ".join(f"{x:.3g}" for x in v["kld"])} | {_pm(e["probes"]["syllables_context"])} | '
        f'{_pm(e["probes"]["vowels_context"])} | {c["interpolation"]:.3f} | {c["interpolation_snr_db"]:.1f} | '
        f'{c["contribution_at_n"]:.3f} ({c["contribution_n"]}) | '
        f'{c["contribution_auc_log2"]:.3f} | {c["dims_90"]:.1f} | {c["entropy"]:.2f} | '
        f'{tc["gaussian_excess"]:.3g} | {kde} |')
  for kind in ('gim', 'sim'):
    o = ORIGINAL[kind]
    lines.append(f'| original {kind.upper()} | {0 if kind == "gim" else 0.01:g} | 512 | 1000 | | | | '
                 f'{100 * o["syllables_context"]:.1f} | {100 * o["vowels_context"]:.1f} | '
                 f'{o["interpolation"]:.3f} | | | | | | | |')
  lines += ['', f'Original rows: {ORIGINAL["setting"]}. Collapsed: every module\'s validation InfoNCE '
            f'≥ {NCE_COLLAPSED_SHARE:g} · ln(1 + negatives) and (SIM) every KL < {KL_COLLAPSED:g} — '
            'such a row is not SIM\'s result.', '', '## Probes on every module (accuracy %, mean ± std)', '',
            '| model | ' + ' | '.join(f'{t} {s}' for t in TASKS for s in SOURCES) + ' |',
            '|---|' + '---|' * (len(TASKS) * len(SOURCES))]
  for e in models:
    lines.append(f'| {e["name"]} | ' + ' | '.join(_pm(e['probes'][f'{t}_{s}']) for t in TASKS
                                                   for s in SOURCES) + ' |')
  lines += ['', '## Minutes per stage', '', '| model | ' + ' | '.join(STAGES) + ' |',
            '|---|' + '---|' * len(STAGES)]
  for e in models:
    lines.append(f'| {e["name"]} | ' + ' | '.join(f'{e["minutes"][s]:.1f}' for s in STAGES) + ' |')
  lines += disentanglement_markdown(models)
  lines += ['', 'Each model\'s workdir, checkpoint step and settings: table.json; its report: '
            '`<model>/report/index.html`.', '']
  return '\n'.join(lines)


def _metric(value) -> str:
  """A table cell: 'mean ± std' of a seeded metric, the number of a deterministic one, '—' for None."""
  if isinstance(value, dict):
    return '—' if value['mean'] is None else f'{value["mean"]:.3f} ± {value["std"]:.3f}'
  return '—' if value is None else f'{value:.3f}'


def disentanglement_markdown(models: list[dict]) -> list[str]:
  """table.md's disentanglement table: one row per model, module and kind of code."""
  factors = ', '.join(models[0]['disentanglement']['factors'])
  lines = ['', f'## Disentanglement against the syllables\' factors ({factors})', '',
           'Time-averaged codes of every syllable (train and test splits; SIM: means and samples). MIG, '
           'SAP, modularity: one number; DCI: mean ± std over the probe seeds (tree classifiers fitted on '
           'the train split, scored on the test split; informativeness = their test accuracy). All in '
           '[0, 1], higher = more disentangled. Active units: dims whose mean varies across items '
           '(variance > 0.01); collapsed: SIM dims with KL(q ‖ N(0, 1)) < 0.01 nats per frame.', '',
           '| model | module | codes | MIG | DCI D | DCI C | DCI I | SAP | modularity | active units | collapsed |',
           '|---|---|---|---|---|---|---|---|---|---|---|']
  for e in models:
    for module, kinds in e['disentanglement']['modules'].items():
      for kind, m in kinds.items():
        units = f'{m["active_units"]} / {m["dims"]}' if 'active_units' in m else ''
        lines.append(f'| {e["name"]} | {module.split("_")[1]} | {kind} | '
                     + ' | '.join(_metric(m[k]) for k in DISENTANGLEMENT_METRICS)
                     + f' | {units} | {m.get("collapsed_dims", "")} |')
  return lines


def plot_disentanglement_beta(table: dict, path: str) -> None:
  """MIG, DCI disentanglement, SAP and the share of active units against β (symlog axis: 0 = GIM),
  one line per module and kind of code."""
  models = sorted(table['models'], key=lambda e: e['beta'])
  betas = [e['beta'] for e in models]
  panels = (('mig', 'MIG'), ('dci_disentanglement', 'DCI disentanglement'), ('sap', 'SAP'),
            ('active_units', 'active units / dims'))
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
  series = sorted({(module, kind) for e in models for module, kinds in e['disentanglement']['modules'].items()
                   for kind in kinds})
  for ax, (key, label) in zip(axes, panels):
    for module, kind in series:
      points = []
      for e in models:
        m = e['disentanglement']['modules'].get(module, {}).get(kind)
        if m is None or key not in m:
          continue
        value = m[key]['mean'] if isinstance(m[key], dict) else m[key]
        points.append((e['beta'], value / m['dims'] if key == 'active_units' else value))
      if points:
        ax.plot(*zip(*points), 'o-' if kind == 'mean' else 's--', label=f'{module} {kind}', ms=4)
    ax.set_xscale('symlog', linthresh=min([b for b in betas if b > 0], default=1.0))
    ax.set_xlabel('β (KL weight; 0 = GIM)')
    ax.set_title(label, fontsize=10)
  axes[0].legend(fontsize=7)
  fig.suptitle(f'disentanglement against β — scale {table["scale"]}')
  fig.tight_layout()
  io.save_figure(fig, path)


def plot_tradeoff(table: dict, path: str) -> None:
  """Probe accuracy (context, syllables and vowels) against interpolation concentration, one point
  per model (the β values joined in order when there are more than two), the original's marked."""
  models = sorted(table['models'], key=lambda e: e['beta'])
  fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
  for ax, task in zip(axes, TASKS):
    key = f'{task}_context'
    x = [e['concentration']['interpolation'] for e in models]
    y = [100 * e['probes'][key]['mean'] for e in models]
    err = [100 * e['probes'][key]['std'] for e in models]
    if len(models) > 2:
      ax.plot(x, y, '-', color='0.6', zorder=1)
    for e, xi, yi, ei in zip(models, x, y, err):
      color = 'tab:blue' if e['model'] == 'gim' else 'tab:red'
      ax.errorbar(xi, yi, yerr=ei, fmt='o', color=color, zorder=2)
      ax.annotate(f'{e["name"]}{" (collapsed)" if e["collapsed"] else ""}', (xi, yi),
                  textcoords='offset points', xytext=(5, 5), fontsize=8)
    for kind, color in (('gim', 'tab:blue'), ('sim', 'tab:red')):
      o = ORIGINAL[kind]
      ax.plot(o['interpolation'], 100 * o[key], marker='*', markersize=14, markerfacecolor='none',
              markeredgecolor=color, linestyle='none', label=f'original {kind.upper()} (512 ch, 1000 epochs)')
    ax.axhline(100 * models[0]['probes'][key]['chance'], color='0.8', linestyle=':', label='chance')
    ax.set_xlabel('interpolation concentration (eval_decoder notebook)\nlower: more concentrated')
    ax.set_ylabel(f'{task} accuracy, context probe (%)')
    ax.set_title(task)
    ax.legend(fontsize=7, loc='best')
  fig.suptitle(f'accuracy vs concentration — scale {table["scale"]} (ours: dots; original: stars)')
  fig.tight_layout()
  io.save_figure(fig, path)


def reproduce(config, scale: str, betas: list[float], workdir: str) -> dict:
  """Run (or resume) every stage for every β in `workdir`, then write table.json, table.md and
  tradeoff.png there; returns the table."""
  if not betas:
    raise ValueError('--betas: give at least one β (0 = GIM)')
  started = time.time()
  configs = {b: experiment_config(config, scale, b) for b in betas}  # every config error before any work
  entries = []
  for beta, model in configs.items():
    name = model_name(beta)
    model_dir = os.path.join(workdir, name)
    label = f'{name} (β={beta:g}, {model.model.channels} ch, {model.train.num_epochs} epochs)'
    records = {}
    for stage in STAGES:
      records[stage] = run_stage(model_dir, stage, label, model,
                                 functools.partial(STAGE_FUNCTIONS[stage], model, model_dir))
    entries.append(table_entry(model, beta, model_dir, records))
  table = {'scale': scale, 'workdir': os.path.abspath(workdir), 'original': ORIGINAL,
           'minutes': sum(sum(e['minutes'].values()) for e in entries),
           'this_run_minutes': (time.time() - started) / 60, 'models': entries}
  io.write_json(os.path.join(workdir, 'table.json'), table)
  io.write_text(os.path.join(workdir, 'table.md'), table_markdown(table))
  plot_tradeoff(table, os.path.join(workdir, 'tradeoff.png'))
  if len(entries) > 1:
    plot_disentanglement_beta(table, os.path.join(workdir, 'disentanglement_beta.png'))
  return table
