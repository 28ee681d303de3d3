"""The probe tasks: which data, labels and evaluations each one uses, per corpus (reference-semantics §5).

  speakers   time-averaged features -> speaker. LibriSpeech: trained on random 20480-sample crops
             (as the original), evaluated on one crop per test utterance ('crops', the original's
             number) and on whole test utterances ('utterances'). Demo: its fixed-length words.
  phones     frame-wise features -> phone class (LibriSpeech: 41, demo: 7), labels aligned as the
             original (the last len(labels) frames of each utterance), trained on batches of padded,
             masked utterances, scored over all test frames. Needs a 10-ms (160-sample) feature rate.
  syllables  time-averaged features -> syllable (9) of the de Boer 'syllables' variant (or the demo's).
  vowels     the same items -> vowel (a / i / u).
On a folder corpus (`sim_jax.data.folder`) the tasks are its label columns instead: an item column
is probed as speakers (trained on crops, scored on crops and whole clips, its recipe), the column of
config.data.frame_labels as phones (frame-wise, whole clips, its recipe); '' = the first column.

`recipe(task, corpus)` gives each task's training recipe as the original runs it (its README
commands on top of config_code/sim_setup.py); the probe config's recipe keys default to None =
that recipe.
"""

import dataclasses

import numpy as np

import difflib

from sim_jax import data as data_lib
from sim_jax.data import FRAME_HOP, DataError, align_frame_labels
from sim_jax.models import fit_to_receptive_field
from sim_jax.probe.features import Features, FeatureSource, ProbeError
from sim_jax.probe.linear import ProbeData

TASKS = ('speakers', 'phones', 'syllables', 'vowels')
NUM_LIBRISPEECH_PHONES = 41


@dataclasses.dataclass(frozen=True)
class Task:
  """A probe task on one corpus.

  label: the label key in `Source.labels` ('phone': per-frame labels via `Source.frame_labels`).
  train_variant: the data variant trained on. evaluations: (name, test variant) pairs, the first
  is the headline number. frame_wise: one prediction per frame instead of per item.
  init: the probe's initialiser (the original's phone probe uses Xavier-normal weights).
  recipe: the task whose training recipe it runs ('' = its own; a folder corpus's columns run the
  speaker or the phone probe's).
  """

  name: str
  label: str
  train_variant: str
  evaluations: tuple[tuple[str, str], ...]
  frame_wise: bool = False
  init: str = 'torch'
  recipe: str = ''


# task -> corpus -> (train variant, evaluations)
_TABLE = {
    'speakers': {'librispeech': ('words', (('crops', 'words'), ('utterances', 'utterances'))),
                 'demo': ('words', (('items', 'words'),))},
    'phones': {'librispeech': ('utterances', (('frames', 'utterances'),)),
               'demo': ('words', (('frames', 'words'),))},
    'syllables': {'deboer': ('syllables', (('items', 'syllables'),)),
                  'demo': ('syllables', (('items', 'syllables'),))},
}
_TABLE['vowels'] = _TABLE['syllables']
_LABELS = {'speakers': 'speaker', 'phones': 'phone', 'syllables': 'syllable', 'vowels': 'vowel'}
_WHY = {'speakers': 'it needs several speakers', 'phones': 'it has no per-frame phone labels',
        'syllables': 'it has no single-syllable items', 'vowels': 'it has no single-syllable items'}


def make_task(name: str, corpus: str, data_config=None) -> Task:
  """The task `name` on `corpus` ('librispeech' | 'deboer' | 'demo'), or on a folder corpus a label
  column of `data_config`'s CSVs; a one-line error otherwise."""
  if corpus == 'folder':
    return _folder_task(name, data_config)
  if name not in TASKS:
    raise ProbeError(f'config.probe.task={name!r}: use one of {", ".join(TASKS)}')
  if corpus not in _TABLE[name]:
    serving = ', '.join(_TABLE[name])
    others = [t for t in TASKS if corpus in _TABLE[t]]
    raise ProbeError(f'config.probe.task={name!r} cannot run on the {corpus} corpus ({_WHY[name]}); '
                     f'it runs on {serving}; on {corpus} use task {" or ".join(others)}')
  variant, evaluations = _TABLE[name][corpus]
  frame_wise = name == 'phones'
  return Task(name, _LABELS[name], variant, evaluations, frame_wise,
              'xavier_normal' if frame_wise else 'torch')


def _folder_task(name: str, data_config) -> Task:
  """A label column of a folder corpus as a task ('' = its first column): item columns as speakers,
  the frame-label column as phones."""
  from sim_jax.data.folder import default_label, read_frame_columns
  manifest, frame_column = read_frame_columns(data_config)
  name = name or default_label(data_config)
  if name == frame_column:
    return dataclasses.replace(make_task('phones', 'librispeech'), name=name, label=name, recipe='phones')
  if name not in manifest.label_columns:
    columns = manifest.label_columns + ([frame_column] if frame_column else [])
    guess = difflib.get_close_matches(name, columns, n=1)
    raise ProbeError(f'config.probe.task={name!r} is not a label column of {manifest.csv_path or manifest.root} '
                     f'(its columns: {", ".join(columns) or "none"})'
                     + (f'; did you mean {guess[0]!r}?' if guess else ''))
  return dataclasses.replace(make_task('speakers', 'librispeech'), name=name, label=name, recipe='speakers')


# The original's probe recipes (learning rate, epochs, items per step, gradient clipping, shuffled
# order). Original (fdenoodt/Smooth-InfoMax@e472aab): syllables / vowels — config_code/sim_setup.py:142-149
# (Adam 1e-3, 50 epochs, batch 64; no clipping); speakers — README.md:59-61 (batch 8, 10 epochs,
# clipping 1.0 over sim_setup.py:134-136's lr 1e-3); phones — linear_classifiers/
# logistic_regression_phones.py:220 (lr hard-coded 1e-4), :33 (one whole utterance per step, in the
# split file's order), README.md:61 (10 epochs, clipping 1.0). The demo corpus has no original
# recipe: it uses the syllable one.
_RECIPES = {
    'syllables': dict(learning_rate=1e-3, num_epochs=50, batch_size=64, gradient_clipping=0.0, shuffle=True),
    'speakers': dict(learning_rate=1e-3, num_epochs=10, batch_size=8, gradient_clipping=1.0, shuffle=True),
    'phones': dict(learning_rate=1e-4, num_epochs=10, batch_size=1, gradient_clipping=1.0, shuffle=False),
}
_RECIPES['vowels'] = _RECIPES['syllables']
RECIPE_KEYS = tuple(_RECIPES['syllables'])


def recipe(task: Task, corpus: str) -> dict:
  """The original's training recipe of `task` on `corpus` (keys RECIPE_KEYS); the demo corpus gets
  the syllable probe's."""
  return dict(_RECIPES[task.recipe or task.name] if corpus != 'demo' else _RECIPES['syllables'])


def check_source(task: Task, source: FeatureSource) -> None:
  """Frame-wise tasks need features at the 10-ms label rate."""
  if task.frame_wise and source.hop != FRAME_HOP:
    raise ProbeError(f'config.probe.source={source.name!r} has a frame every {source.hop} samples; '
                     f'the {task.name} labels come every {FRAME_HOP} (10 ms) — use source=context or '
                     'a module / layer at that rate')


def class_names(task: Task, data_source) -> list[str]:
  """The class names of the task's label on `data_source`."""
  names = data_source.class_names.get(task.label)
  if names is None and task.label == 'phone' and data_source.corpus == 'librispeech':
    names = [str(k) for k in range(NUM_LIBRISPEECH_PHONES)]
  if names is None:
    raise ProbeError(f'the {data_source.corpus} {data_source.variant} data has no {task.label!r} '
                     f'labels (it has {", ".join(data_source.labels) or "none"})')
  return list(names)


def probe_data(task: Task, data_source, features: Features) -> tuple[ProbeData, int]:
  """The task's labelled rows on `features` of `data_source`, and how many items lack labels.

  Items whose audio was broken (skipped while loading) and, for phones, utterances without an
  alignment get no labelled rows.
  """
  if not task.frame_wise:
    labels = np.where(features.valid, data_source.labels[task.label], -1)
    return ProbeData.pooled(features.pooled, labels), int(np.sum(~features.valid))
  offsets = features.offsets
  labels = np.full(int(offsets[-1]), -1, np.int32)
  unlabelled = 0
  for i in range(len(data_source)):
    try:
      frame_labels = data_source.frame_labels(i)
    except DataError:
      frame_labels = None
    if frame_labels is None or not features.valid[i]:
      unlabelled += 1
      continue
    labels[offsets[i]:offsets[i + 1]] = align_frame_labels(int(offsets[i + 1] - offsets[i]), frame_labels)
  return ProbeData(features.frames, labels, offsets), unlabelled


def make_sources(task: Task, data_config, specs) -> tuple[object, dict]:
  """The training source and {evaluation name: test source}, without clips shorter than the
  receptive field of the encoder of module `specs`."""
  train = fit_to_receptive_field(data_lib.make_source(data_config, 'train', task.train_variant), specs)
  tests = {}
  for name, variant in task.evaluations:
    tests[name] = fit_to_receptive_field(data_lib.make_source(data_config, 'test', variant), specs)
  return train, tests


def check_labels(task: Task, names: list[str], train_source, test_sources: dict) -> dict:
  """The test sources to score on: a label with fewer than two classes is a ProbeError; test items of
  classes without a training item are what each source's `without_classes` makes of them (a note by
  default, an error or a counted skip for a folder corpus's CSV labels)."""
  if len(names) < 2:
    raise ProbeError(f'{train_source.label_origin(task.label)}: {len(names)} class(es) '
                     f'({", ".join(names) or "none"}); a probe needs two or more — probe another label')
  return {name: test.without_classes(task.label, classes_without_training_items(task, train_source, test))
          for name, test in test_sources.items()}


def encoder_seen_test_items(data_config, test_source) -> int | None:
  """De Boer syllable (or other non-word) tests: how many test items were cut from word takes in the
  encoder's word training split (reference-semantics §4.2: the syllable split derives from an older
  word split, so the encoder has seen most syllable-test words); None for other corpora / variants."""
  if data_config.name != 'deboer' or test_source.variant == 'words':
    return None
  words = set(data_lib.make_source(data_config, 'train', 'words').names)
  takes = ['_'.join(name.split('_')[:2]) for name in test_source.names]  # 'bagigi_1_3_gi' -> 'bagigi_1'
  return sum(take in words for take in takes)


def classes_without_training_items(task: Task, train_source, test_source) -> list[int]:
  """Classes of an item-level task that occur in the test split but never in the training split
  (a probe cannot predict them; e.g. speakers of a partial LibriSpeech download). [] for frame-wise
  tasks, whose labels are per frame."""
  if task.frame_wise:
    return []
  train, test = train_source.labels[task.label], test_source.labels[task.label]  # (N,) each
  return sorted(set(test[test >= 0].tolist()) - set(train[train >= 0].tolist()))
