"""The workdir: the interface between the stages, and the one door through which a stage reads it.

Layout (each stage writes its own part; every file is written atomically):
  config.json            the resolved config of the training run (`load_config` reads it)
  checkpoints/<step>/    the encoder's train state (`sim_jax.state.TrainState`, orbax): the
                         `train.keep_recent` newest (resume points) + every `keep_every_epochs`-th
                         epoch; `<step>.damaged`: one found damaged on resume, moved aside
  best/<step>/           train.select_best=True only: the lowest loss on the held-out training items
  heldout_items.json     train.select_best=True only: which training items were held out
  data_split.json        corpora split by settings (folder): which files trained and which test
  metrics.jsonl          per-fetch train metrics and per-epoch validation metrics; loss_curves.png
  probes/<name>/         probe.py: results.json, figures, weights.npz; probes/cache/: cached features
  decoder/module_<i>/    decode.py: the decoder's checkpoints, WAVs, figures, results.json
  report/                analyze.py: index.html, results.json, figures/
A training run writes config.json and checkpoints; `load_trained_encoder` gives any later stage
(or a user's script) the encoder of a checkpoint, with the config it was trained with.
"""

import dataclasses
import json
import os
import sys

import jax
import ml_collections

from sim_jax import io
from sim_jax.checkpoints import CheckpointError, Checkpoints, checkpoint_steps, read_checkpoint
from sim_jax.config import base_config
from sim_jax.data import default_data_config
from sim_jax.models import Encoder, make_encoder, module_specs
from sim_jax.state import create_train_state

CONFIG_FILE = 'config.json'
CHECKPOINTS = 'checkpoints'
BEST = 'best'
HELDOUT_FILE = 'heldout_items.json'
SPLIT_FILE = 'data_split.json'
METRICS_FILE = 'metrics.jsonl'
LOSS_CURVES = 'loss_curves.png'
PROBES = 'probes'
DECODER = 'decoder'
REPORT = 'report'

# Settings a resumed training run may change (prefixes of config keys): how long it runs and how
# often it logs and saves, where the data are read from, and the sections of the later stages. Any
# other difference from the workdir's config.json stops the resume (`record_settings`).
CHANGEABLE_ON_RESUME = ('train.num_epochs', 'train.checkpoint_every_', 'train.keep_every_epochs',
                        'train.keep_recent', 'train.log_every_steps', 'train.eval_steps',
                        'train.distributed', 'data.root', 'data.manifest', 'data.frame_labels',
                        'data.cache_dir', 'data.num_threads',
                        'data.decoded_cache', 'data.prefetch', 'data.on_bad_file', 'wandb.', 'probe.',
                        'decoder.', 'analysis.')


class WorkdirError(CheckpointError):
  """A folder that is not the workdir asked for, or settings that do not fit the run it holds."""


def probes_dir(workdir: str) -> str:
  """`<workdir>/probes`: one folder per probe, and `cache/` of extracted features."""
  return os.path.join(workdir, PROBES)


def feature_cache_dir(workdir: str) -> str:
  """`<workdir>/probes/cache`: features extracted once, shared by the probes and the analysis."""
  return os.path.join(workdir, PROBES, 'cache')


def decoder_dir(workdir: str, module: int) -> str:
  """`<workdir>/decoder/module_<i>`: everything the decoder stage writes for one module."""
  return os.path.join(workdir, DECODER, f'module_{module}')


def report_dir(workdir: str) -> str:
  """`<workdir>/report`: the analysis report."""
  return os.path.join(workdir, REPORT)


def training_checkpoints(workdir: str, keep_period_steps: int | None = None,
                         keep_recent: int = 2) -> Checkpoints:
  """The encoder checkpoints of a training workdir: `checkpoints/` and (with a validation loss) `best/`."""
  return Checkpoints(os.path.join(workdir, CHECKPOINTS), os.path.join(workdir, BEST),
                     keep_period_steps=keep_period_steps, keep_recent=keep_recent)


def _backfill(stored: dict, defaults: dict) -> dict:
  """`stored` with every key it lacks taken from `defaults`, section by section."""
  out = dict(stored)
  for key, value in defaults.items():
    if key not in out:
      out[key] = value
    elif isinstance(value, dict) and isinstance(out[key], dict):
      out[key] = _backfill(out[key], value)
  return out


def load_config(workdir: str) -> ml_collections.ConfigDict:
  """The resolved config a training run wrote to `<workdir>/config.json`.

  Keys that a config.json written by an earlier version lacks (settings added since) get today's
  defaults of its corpus and model kind, so every stage can read any setting directly.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    raise WorkdirError(f'{workdir}: no {CONFIG_FILE} — not a training workdir; train first: '
                       f'python train.py --config=configs/<name>.py --workdir={workdir}')
  stored = io.read_json(path)
  defaults = base_config(stored['data']['name'], stored['model']['kind']).to_dict()
  return ml_collections.ConfigDict(_backfill(stored, defaults))


# What says where the data are and which items they make (the split, the crops): a later stage (or a
# rerun) leaving one of these at its corpus default reads the training run's (`with_training_data_root`).
TRAINING_DATA_KEYS = ('root', 'manifest', 'frame_labels', 'test_fraction', 'split_by', 'split_seed',
                      'item_length', 'min_length', 'resampler')


def with_training_data_root(config: ml_collections.ConfigDict, trained_config) -> ml_collections.ConfigDict:
  """`config` with the training run's data location and items (`trained_config`, a workdir's
  config.json): each TRAINING_DATA_KEYS setting `config` leaves at its corpus default while the
  training run set it, when both name the same corpus. A rerun of train.py and the later stages then
  read the data the encoder was trained on — a folder corpus split the same way — without repeating
  the flags; one line on stderr names what was taken."""
  if config.data.name != trained_config.data.name:
    return config
  defaults = default_data_config(config.data.name)
  taken = [k for k in TRAINING_DATA_KEYS if k in config.data and k in trained_config.data
           and config.data[k] == defaults[k] and trained_config.data[k] != defaults[k]]
  if not taken:
    return config
  config = config.copy_and_resolve_references()
  for key in taken:
    config.data[key] = trained_config.data[key]
  print('data: ' + ', '.join(f'{k}={config.data[k]}' for k in taken) + " (the training run's config.data)",
        file=sys.stderr)
  return config


def record_split(workdir: str, record: dict, *, resuming: bool) -> None:
  """Write a corpus split computed from settings (`Source.split_record`: its settings and the names of
  each split) to `<workdir>/data_split.json`. A run `resuming` from its checkpoints must see the split
  it started with: another one (files added, removed or renamed) raises WorkdirError naming the first
  differences."""
  path = os.path.join(workdir, SPLIT_FILE)
  if resuming and os.path.exists(path):
    old = io.read_json(path)
    differ = sorted(set(old['train']) ^ set(record['train'])) + sorted(set(old['test']) ^ set(record['test']))
    if differ:
      raise WorkdirError(f'{workdir} was trained on another split of {record["manifest"] or record["root"]}: '
                         f'{len(differ)} file(s) moved, added or removed (first: {", ".join(differ[:3])}; '
                         f'see {path}); restore the folder as it was, or train in a new --workdir')
  io.write_json(path, record)


def _flat(tree: dict, prefix: str = '') -> dict:
  """{'a.b': leaf} of a nested dict, leaves as JSON has them (tuples become lists)."""
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = json.loads(json.dumps(value))
  return flat


def changed_settings(old: dict, new: dict, free: tuple[str, ...] = ()) -> list[str]:
  """'key=old (now new)' for each setting that differs between two nested settings dicts; keys starting
  with one of `free` may differ, and a key that only one side has (a setting added later) is not
  compared."""
  old, new = _flat(old), _flat(new)
  return [f'{k}={old[k]!r} (now {new[k]!r})' for k in sorted(old.keys() & new.keys())
          if old[k] != new[k] and not k.startswith(free)]


def record_settings(path: str, settings: dict, *, resuming: bool, free: tuple[str, ...] = (),
                    fix: str, holds: str = 'checkpoints') -> None:
  """Write the settings of a run to `path` (JSON); when `resuming` from the `holds` it made
  (checkpoints, or embed.py's feature files), first check they are the settings those were made
  with (`changed_settings`).

  A difference raises WorkdirError, one line naming each differing key with its old and new value,
  then `fix`; nothing is written.
  """
  if resuming and os.path.exists(path):
    changed = changed_settings(io.read_json(path), settings, free)
    if changed:
      raise WorkdirError(f'{os.path.dirname(path) or "."} holds {holds} made with '
                         f'{", ".join(changed)}; {fix}')
  io.write_json(path, settings)


@dataclasses.dataclass
class TrainedEncoder:
  """A trained encoder loaded from a workdir, ready for `sim_jax.models.encode`."""

  config: ml_collections.ConfigDict
  encoder: Encoder
  variables: dict   # {'params': ...[, 'batch_stats': ...]}
  step: int
  path: str


def _list_checkpoints(workdir: str) -> str:
  found = [f'{sub}/{step}' for sub in (CHECKPOINTS, BEST)
           for step in checkpoint_steps(os.path.join(workdir, sub))]
  return ', '.join(found) if found else 'none'


def parse_checkpoint(which, flag: str = 'checkpoint') -> str | int:
  """'latest', 'best' or a step number from a config value such as config.probe.checkpoint (`flag`
  names it in the error)."""
  which = str(which)
  if which in ('best', 'latest'):
    return which
  if which.isdigit():
    return int(which)
  raise WorkdirError(f"{flag}={which!r}: use 'best', 'latest' or a step number")


def load_trained_encoder(workdir: str, which: str | int = 'latest', flag: str = 'checkpoint'
                         ) -> TrainedEncoder:
  """Load the encoder of a training workdir: `which` is 'latest', 'best' or a step number (an int or
  its digits; `flag`, the config key it came from, names it in the error).

  'latest' is the last checkpoint, the original's choice (its downstream scripts load the last
  epoch's model, reference-semantics §3). 'best' exists only when training ran with
  train.select_best=True, and falls back to 'latest' otherwise. A missing or damaged checkpoint is a
  CheckpointError naming what exists.
  """
  which = parse_checkpoint(which, flag)
  config = load_config(workdir)
  _, target = create_train_state(config, jax.random.PRNGKey(0))
  folders = {'best': BEST, 'latest': CHECKPOINTS}
  sub = folders.get(which, CHECKPOINTS)
  if which == 'best' and not checkpoint_steps(os.path.join(workdir, BEST)):
    sub = CHECKPOINTS
  steps = checkpoint_steps(os.path.join(workdir, sub))
  step = (steps[-1] if steps else None) if which in folders else which
  if step is None or step not in steps:
    raise CheckpointError(f'{workdir}: no checkpoint {which!r}; found: {_list_checkpoints(workdir)}')
  state, problem = read_checkpoint(os.path.join(workdir, sub), step, target)
  path = os.path.join(workdir, sub, str(step))
  if problem:
    raise CheckpointError(f'checkpoint {path} is damaged ({problem}); load another (found: '
                          f'{_list_checkpoints(workdir)}) or train again')
  variables = {'params': state.params}
  if state.batch_stats:
    variables['batch_stats'] = state.batch_stats
  return TrainedEncoder(config, make_encoder(config.model, module_specs(config.model)), variables,
                        int(state.step), path)


def holds_a_run(workdir: str) -> list[str]:
  """The parts of a training run that `workdir` holds already (config.json, checkpoints/, best/)."""
  return [name for name in (CONFIG_FILE, CHECKPOINTS, BEST) if os.path.exists(os.path.join(workdir, name))]
