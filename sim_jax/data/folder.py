"""Your own recordings as a corpus: any folder of audio files, labelled by a CSV or by its sub-folders.

Layout: `config.data.root` is a folder; `config.data.manifest` a CSV (default `<root>/labels.csv`
when there is one) whose `path` column names each file relative to the CSV's folder (absolute paths
work too), whose optional `split` column says `train` or `test`, and whose every other column is a
categorical label (an empty cell: no label). Without a CSV every audio file under root is an item,
labelled by its parent folder's name (column `label`), as image folders are. Rows are numbered as a
spreadsheet shows them: the header is row 1.

Split: the CSV's split column, else a seeded `data.test_fraction` of the files (or, with
`data.split_by=<column>`, of that column's values, so no value is in both splits): the files (values)
are ordered by a hash of (data.split_seed, name) and the first round(n · fraction) are the test
split, so a split depends on nothing else and adding files moves few others. Training writes it to
the workdir (`sim_jax.workdir.SPLIT_FILE`).

Audio: every file soundfile decodes, at any rate and channel count (`audio.load_audio_file`: mixed
down to mono, resampled to 16 kHz by `data.resampler`, damage checked), is decoded once into the
cache folder, `{cache}/folder/<key>.npy` (16-kHz float32) with `<key>.json` (what was read, or why
it could not be), keyed by the file's resolved path, size and mtime and the resampler: an edited
file is read again. Both are written atomically, the JSON last. Variants: 'words' — crops of
`data.item_length` samples drawn as `ClipSource` draws them (a fresh crop every epoch; a shorter clip
zero-padded and counted); 'utterances' — whole clips. `data.min_length` drops shorter clips.

Frame labels (`data.frame_labels`): a second CSV `path,start,end,<label>` of segments in seconds;
10-ms frame j gets the label of the segment holding its centre, (j + 0.5) · 10 ms (none: no label).
The label column's name is the frame-wise probe task's.
"""

import concurrent.futures
import csv
import dataclasses
import hashlib
import io as text_io
import os
import re
import sys
from typing import NamedTuple

import numpy as np
import soundfile as sf
from tqdm import tqdm

from sim_jax import io
from sim_jax.data.audio import FRAME_HOP, SAMPLE_RATE, load_audio_file
from sim_jax.data.cache import fingerprint, load_json_cache, resolve_cache_dir, save_json_cache, warn_damaged_cache
from sim_jax.data.errors import BadFiles, DataError
from sim_jax.data.resample import RESAMPLERS
from sim_jax.data.source import ClipSource
from sim_jax.progress import progress_bar

MANIFEST_FILE = 'labels.csv'
PATH_COLUMN, SPLIT_COLUMN = 'path', 'split'
FOLDER_COLUMN = 'label'  # the label of a folder without a CSV: each file's parent folder
SEGMENT_COLUMNS = ('path', 'start', 'end')  # the frame-label CSV's, before its label column
_COLUMN_NAME = re.compile(r'^[A-Za-z0-9_.-]+$')  # label columns name probe tasks and their folders
_CACHE_VERSION = 1
_summarised: set = set()
# Batch fields beside the labels (`sim_jax.data.pipeline.batches`): no label column may take their name.
BATCH_FIELDS = ('audio', 'index', 'mask', 'valid', 'length')
# File name endings of the formats libsndfile reads ('raw' has no header to read, so it is left out).
AUDIO_EXTENSIONS = frozenset({f.lower() for f in sf.available_formats()} - {'raw'}
                             | {'aif', 'aifc', 'oga', 'opus', 'wave'})


class ManifestItem(NamedTuple):
  """One file of a folder corpus.

  path: absolute; name: the path relative to the CSV's folder (or to root), '/'-separated, as written
  in the CSV; labels: {column: value} ('' = no label); split: 'train' | 'test' from the CSV's split
  column, else None; row: its CSV row (the header is row 1), None without a CSV.
  """

  path: str
  name: str
  labels: dict[str, str]
  split: str | None
  row: int | None = None


@dataclasses.dataclass
class Manifest:
  """What a folder holds: csv_path (None without a CSV), its label columns and its items."""

  root: str
  csv_path: str | None
  label_columns: list[str]
  items: list[ManifestItem]

  def where(self, item: ManifestItem) -> str:
    """'<csv> row <n>: <name>' (or the file's path without a CSV), for messages about an item."""
    return f'{self.csv_path} row {item.row}: {item.name}' if item.row is not None else item.path

  def classes(self, column: str) -> list[str]:
    """The sorted distinct non-empty values of a label column over every item (both splits)."""
    return sorted({item.labels[column] for item in self.items if item.labels[column]})


def read_manifest(root: str, manifest: str = '') -> Manifest:
  """The items of the folder `root`: from the CSV `manifest` (default `<root>/labels.csv` when it
  exists) or, without one, every audio file under root labelled by its parent folder.

  Files are not opened here (a missing one is found when it is read). A malformed CSV raises a
  one-line DataError naming the CSV, the row, the column and the fix.
  """
  if not root:
    raise DataError('config.data.root is empty: set it to the folder of your recordings, '
                    '--config.data.root=DIR (see python -m sim_jax.data.manifest DIR)')
  if not os.path.isdir(root):
    raise DataError(f'config.data.root={root} is not a folder; set --config.data.root to the folder of '
                    'your recordings')
  root = os.path.abspath(root)
  if manifest:
    if not os.path.isfile(manifest):
      raise DataError(f'config.data.manifest={manifest} does not exist; give the CSV of your files '
                      f"(a 'path' column and label columns), or '' for {os.path.join(root, MANIFEST_FILE)}")
    return _read_csv(root, os.path.abspath(manifest))
  default = os.path.join(root, MANIFEST_FILE)
  if os.path.isfile(default):
    return _read_csv(root, default)
  return _scan(root)


def _csv_rows(path: str) -> list[tuple[int, list[str]]]:
  """(row number, stripped cells) of every non-blank row of a UTF-8 CSV (a byte-order mark is fine)."""
  with open(path, 'rb') as f:
    raw = f.read()
  try:
    text = raw.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    row = raw[:e.start].count(b'\n') + 1
    raise DataError(f'{path} row {row}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the CSV as UTF-8, '
                    f'e.g. iconv -f latin1 -t utf-8 {os.path.basename(path)} > fixed.csv') from None
  reader = csv.reader(text_io.StringIO(text, newline=''))
  rows = []
  try:
    for cells in reader:
      cells = [c.strip() for c in cells]
      if any(cells):
        rows.append((reader.line_num, cells))
  except csv.Error as e:
    raise DataError(f'{path} row {reader.line_num}: {e}; fix the quoting of that row') from None
  return rows


def _header(path: str, cells: list[str], required: tuple[str, ...]) -> list[str]:
  """The checked column names of a CSV's first row: each of `required` present, none empty or twice."""
  for column in required:
    if column not in cells:
      near = [c for c in cells if c.lower() == column]
      hint = (f'rename column {near[0]!r} to {column!r}' if near else
              f'the first row must name the columns, e.g. {",".join(required)},speaker')
      raise DataError(f'{path} row 1: no {column!r} column (its columns: {", ".join(cells) or "none"}); {hint}')
  for k, name in enumerate(cells):
    if not name:
      raise DataError(f'{path} row 1: column {k + 1} has no name; name every column in the first row')
    if name in cells[:k]:
      raise DataError(f'{path} row 1: two columns are named {name!r}; give each column its own name')
  return cells


def _check_column_name(path: str, column: str) -> None:
  """A label column's name must be usable as a probe task and a folder name, and not a batch field."""
  if not _COLUMN_NAME.match(column):
    raise DataError(f'{path} row 1: column name {column!r} names a probe task and its folder; use letters, '
                    'digits, _ - and . only')
  if column in BATCH_FIELDS:
    raise DataError(f'{path} row 1: a label column may not be named {column!r} (a batch field of its own: '
                    f'{", ".join(BATCH_FIELDS)}); rename it')


def resolve_path(base: str, cell: str) -> tuple[str, str]:
  """(absolute normalised path, '/'-separated name) of a CSV `path` cell relative to folder `base`."""
  name = os.path.normpath(cell).replace(os.sep, '/')
  return os.path.normpath(os.path.join(base, cell)), name


def _read_csv(root: str, path: str) -> Manifest:
  rows = _csv_rows(path)
  if not rows:
    raise DataError(f'{path} is empty; its first row must name the columns, e.g. path,speaker, then one '
                    'row per file')
  (_, header), body = rows[0], rows[1:]
  columns = _header(path, header, (PATH_COLUMN,))
  labels = [c for c in columns if c not in (PATH_COLUMN, SPLIT_COLUMN)]
  for column in labels:
    _check_column_name(path, column)
  if not body:
    raise DataError(f'{path} has no rows below its header; add one row per file')
  base = os.path.dirname(path)
  items, seen = [], {}
  for row, cells in body:
    if len(cells) != len(columns):
      raise DataError(f'{path} row {row}: {len(cells)} fields, the header names {len(columns)} '
                      f'({",".join(columns)}); give every row one field per column (quote a comma in a value)')
    values = dict(zip(columns, cells))
    if not values[PATH_COLUMN]:
      raise DataError(f'{path} row {row}, column {PATH_COLUMN}: empty; name the file (relative to '
                      f'{base}) or delete the row')
    file, name = resolve_path(base, values[PATH_COLUMN])
    if file in seen:
      raise DataError(f'{path} rows {seen[file]} and {row} both name {name}; keep one row per file')
    seen[file] = row
    split = None
    if SPLIT_COLUMN in values:
      split = values[SPLIT_COLUMN].lower()
      if split not in ('train', 'test'):
        raise DataError(f'{path} row {row}, column {SPLIT_COLUMN}: {values[SPLIT_COLUMN]!r} is not train '
                        'or test; write train or test, or drop the split column to split by '
                        'config.data.test_fraction')
    items.append(ManifestItem(file, name, {c: values[c] for c in labels}, split, row))
  return Manifest(root, path, labels, items)


def _scan(root: str) -> Manifest:
  """Every audio file under `root` (hidden files and folders left out), sorted by name, labelled by
  its parent folder (files directly in root: no label; no sub-folders: no label column)."""
  items = []
  for folder, dirs, files in os.walk(root):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    for file in sorted(files):
      if file.startswith('.') or os.path.splitext(file)[1][1:].lower() not in AUDIO_EXTENSIONS:
        continue
      path = os.path.join(folder, file)
      label = '' if folder == root else os.path.basename(folder)
      items.append(ManifestItem(path, os.path.relpath(path, root).replace(os.sep, '/'),
                                {FOLDER_COLUMN: label}, None))
  if not items:
    raise DataError(f'{root} holds no audio files ({", ".join(sorted(AUDIO_EXTENSIONS))}) and no '
                    f'{MANIFEST_FILE}; put your recordings there, or give their CSV with '
                    '--config.data.manifest=CSV')
  items.sort(key=lambda item: item.name)
  if not any(item.labels[FOLDER_COLUMN] for item in items):
    return Manifest(root, None, [], [item._replace(labels={}) for item in items])
  return Manifest(root, None, [FOLDER_COLUMN], items)


def _group_order(seed: int, name: str) -> bytes:
  return hashlib.sha256(f'{seed}\0{name}'.encode()).digest()


def assign_splits(manifest: Manifest, test_fraction: float, split_by: str = '', seed: int = 0) -> list[str]:
  """'train' or 'test' for each item: the CSV's split column, else the seeded split of the module
  docstring (by file, or by the values of column `split_by`; an item without a value is a group of
  its own). Both splits get at least one file; a one-sided split column is a DataError."""
  where = manifest.csv_path or manifest.root
  given = [item.split for item in manifest.items]
  if given[0] is not None:
    for split in ('train', 'test'):
      if split not in given:
        raise DataError(f'{where}: no row has {SPLIT_COLUMN}={split}, so the {split} split is empty; mark '
                        f'some rows {split}, or drop the {SPLIT_COLUMN} column to split by '
                        'config.data.test_fraction')
    return given
  if not 0 < test_fraction < 1:
    raise DataError(f'config.data.test_fraction={test_fraction}: use a fraction in (0, 1) (or give '
                    f'{where} a {SPLIT_COLUMN} column)')
  if split_by and split_by not in manifest.label_columns:
    raise DataError(f'config.data.split_by={split_by!r} is not a label column of {where} (its label '
                    f'columns: {", ".join(manifest.label_columns) or "none"})')
  groups = [(item.labels[split_by] or f'\0{item.name}') if split_by else item.name for item in manifest.items]
  order = sorted(set(groups), key=lambda g: _group_order(seed, g))
  if len(order) < 2:
    what = f'{split_by} value' if split_by else 'file'
    raise DataError(f'{where}: one {what} only ({order[0].lstrip(chr(0))}), nothing to split into train '
                    f'and test; add files{", or split by another column" if split_by else ""}')
  count = min(max(int(round(len(order) * test_fraction)), 1), len(order) - 1)
  test = set(order[:count])
  return ['test' if g in test else 'train' for g in groups]


class FrameLabels:
  """The segments of a frame-label CSV `path,start,end,<label>` (seconds), checked against the items
  of a manifest: {item name: [(start, end, class index, row)]}, its label column and classes."""

  def __init__(self, path: str, manifest: Manifest):
    """Reads and checks the CSV; every problem is a DataError naming its row and column."""
    if not os.path.isfile(path):
      raise DataError(f'config.data.frame_labels={path} does not exist; give a CSV path,start,end,<label> '
                      'of segments in seconds, or leave it empty')
    self.path = os.path.abspath(path)
    rows = _csv_rows(self.path)
    if not rows:
      raise DataError(f'{self.path} is empty; its first row must be path,start,end,<label>')
    header = _header(self.path, rows[0][1], SEGMENT_COLUMNS)
    extra = [c for c in header if c not in SEGMENT_COLUMNS]
    if len(extra) != 1:
      raise DataError(f'{self.path} row 1: columns {",".join(header)}; a frame-label CSV has path, start, end '
                      'and one label column (its name is the probe task), e.g. path,start,end,phone')
    self.column = extra[0]
    _check_column_name(self.path, self.column)
    if self.column in manifest.label_columns:
      raise DataError(f'{self.path} row 1: label column {self.column!r} is also an item label column of '
                      f'{manifest.csv_path}; rename one of them')
    by_path = {item.path: item for item in manifest.items}
    base = os.path.dirname(self.path)
    parsed = []
    for row, cells in rows[1:]:
      if len(cells) != len(header):
        raise DataError(f'{self.path} row {row}: {len(cells)} fields, the header names {len(header)}; give '
                        'every row path,start,end,label')
      values = dict(zip(header, cells))
      file, name = resolve_path(base, values['path'])
      if file not in by_path:
        raise DataError(f'{self.path} row {row}: {name} is not a file of {manifest.csv_path or manifest.root}; '
                        'fix its path (relative to this CSV\'s folder) or delete the row')
      times = []
      for column in ('start', 'end'):
        try:
          times.append(float(values[column]))
        except ValueError:
          raise DataError(f'{self.path} row {row}, column {column}: {values[column]!r} is not a number of '
                          'seconds') from None
      start, end = times
      if not 0 <= start < end:
        raise DataError(f'{self.path} row {row}: start {start} s, end {end} s; a segment needs 0 <= start < end')
      if not values[self.column]:
        raise DataError(f'{self.path} row {row}, column {self.column}: empty; label the segment or delete the row')
      parsed.append((by_path[file].name, start, end, values[self.column], row))
    if not parsed:
      raise DataError(f'{self.path} has no rows below its header; add one row per segment')
    self.classes = sorted({p[3] for p in parsed})
    index = {c: k for k, c in enumerate(self.classes)}
    self.segments: dict[str, list] = {}
    for name, start, end, label, row in sorted(parsed, key=lambda p: (p[0], p[1])):
      held = self.segments.setdefault(name, [])
      if held and start < held[-1][1]:
        raise DataError(f'{self.path} rows {held[-1][3]} and {row}: segments of {name} overlap '
                        f'({held[-1][0]}–{held[-1][1]} s and {start}–{end} s); one label per moment')
      held.append((start, end, index[label], row))

  def check_length(self, name: str, samples: int) -> None:
    """A segment starting after the end of its clip (`samples` at 16 kHz) is a DataError."""
    seconds = samples / SAMPLE_RATE
    for start, _, _, row in self.segments.get(name, ()):
      if start >= seconds:
        raise DataError(f'{self.path} row {row}: the segment starts at {start} s, after the end of {name} '
                        f'({seconds:.3f} s); fix its times')

  def frames(self, name: str, samples: int) -> np.ndarray:
    """(samples // 160,) int32 per-10-ms labels of item `name`: the class of the segment holding each
    frame's centre, -1 where none does; an item without segments is a DataError."""
    if name not in self.segments:
      raise DataError(f'{self.path} has no segments of {name}')
    centres = (np.arange(samples // FRAME_HOP) + 0.5) * (FRAME_HOP / SAMPLE_RATE)  # (F,) seconds
    out = np.full(len(centres), -1, np.int32)
    for start, end, label, _ in self.segments[name]:
      out[(centres >= start) & (centres < end)] = label
    return out


def read_frame_columns(data_config) -> tuple[Manifest, str | None]:
  """The manifest of config.data and the label column of its frame-label CSV (None without one)."""
  manifest = read_manifest(data_config.root, data_config.manifest)
  path = data_config.get('frame_labels', '')
  return manifest, (FrameLabels(path, manifest).column if path else None)


def default_label(data_config) -> str:
  """The label a folder corpus is probed and analysed by when none is named: its first label column
  (else its frame-label column); a DataError if it has none."""
  manifest, frame_column = read_frame_columns(data_config)
  columns = manifest.label_columns + ([frame_column] if frame_column else [])
  if not columns:
    raise DataError(f'{manifest.csv_path or manifest.root} has no label column (files directly in the folder, '
                    f'no {MANIFEST_FILE}); label them: python -m sim_jax.data.manifest {manifest.root} --write')
  return columns[0]


def _entry_paths(path: str, cache_dir: str, resampler: str) -> tuple[str, str]:
  """(audio .npy, metadata .json) of a file's cache entry, keyed by its resolved path, size, mtime."""
  real = os.path.realpath(path)
  st = os.stat(real)
  key = fingerprint(_CACHE_VERSION, real, st.st_size, st.st_mtime_ns, resampler, SAMPLE_RATE)
  base = os.path.join(cache_dir, 'folder', key[:2], key)
  return base + '.npy', base + '.json'


def cached_audio(path: str, cache_dir: str, resampler: str, rebuild: bool = False) -> dict | str:
  """A file's cache entry — {'file': its .npy, 'samples': at 16 kHz, 'sample_rate', 'channels',
  'frames', 'format'} — read, or decoded and written now (`rebuild`: in any case); or the problem
  string that decoding it gave (cached too)."""
  if not os.path.isfile(path):
    return 'no such file (fix its path, or delete its row)'
  npy, meta_path = _entry_paths(path, cache_dir, resampler)
  meta = None if rebuild else load_json_cache(meta_path)
  if meta is not None and 'problem' in meta:
    return meta['problem']
  if meta is not None:
    size = os.path.getsize(npy) if os.path.exists(npy) else None
    if size == meta['bytes']:
      return dict(meta, file=npy)
    warn_damaged_cache(npy, f'{size} bytes, its entry expects {meta["bytes"]}' if size is not None else 'missing')
  decoded = load_audio_file(path, resampler)
  if isinstance(decoded, str):
    save_json_cache(meta_path, {'problem': decoded})
    return decoded
  audio, info = decoded
  buffer = text_io.BytesIO()
  np.save(buffer, audio)
  io.write_bytes(npy, buffer.getvalue())
  meta = dict(info, samples=len(audio), bytes=len(buffer.getvalue()))
  save_json_cache(meta_path, meta)
  return dict(meta, file=npy)


def build_cache(paths: list[str], cache_dir: str, resampler: str, num_threads: int, desc: str) -> list:
  """`cached_audio` of every path, on `num_threads` threads, with a progress bar while decoding."""
  todo = [p for p in paths if os.path.isfile(p) and not os.path.exists(_entry_paths(p, cache_dir, resampler)[1])]
  with concurrent.futures.ThreadPoolExecutor(max(num_threads, 1)) as pool, \
      progress_bar(total=len(paths), desc=desc, unit='file', disable=len(todo) < 20 or None) as bar:
    entries = []
    for entry in pool.map(lambda p: cached_audio(p, cache_dir, resampler), paths):
      entries.append(entry)
      bar.update()
  return entries


class FolderSource(ClipSource):
  """One split of a folder corpus (see the module docstring): crops ('words') or whole clips."""

  corpus = 'folder'

  def __init__(self, data_config, split: str, variant: str):
    """Reads the manifest, splits it, decodes (or finds in the cache) the split's files and reports
    bad ones through data.on_bad_file."""
    self.manifest = manifest = read_manifest(data_config.root, data_config.manifest)
    resampler = data_config.resampler
    if resampler not in RESAMPLERS:
      raise ValueError(f"config.data.resampler={resampler!r} is not one of {', '.join(RESAMPLERS)}")
    item_length, min_length = int(data_config.item_length), int(data_config.min_length)
    if item_length < FRAME_HOP:
      raise ValueError(f'config.data.item_length={item_length}: use at least {FRAME_HOP} samples (the default '
                       'is 20480, 1.28 s)')
    self.cache_dir = resolve_cache_dir(data_config.cache_dir)
    splits = assign_splits(manifest, float(data_config.test_fraction), data_config.split_by,
                           int(data_config.split_seed))
    self.split_record = {'manifest': manifest.csv_path, 'root': manifest.root,
                         'test_fraction': float(data_config.test_fraction), 'split_by': data_config.split_by,
                         'split_seed': int(data_config.split_seed),
                         **{s: [item.name for item, t in zip(manifest.items, splits) if t == s]
                            for s in ('train', 'test')}}
    items = [item for item, s in zip(manifest.items, splits) if s == split]
    where = manifest.csv_path or manifest.root
    num_threads = int(data_config.num_threads)
    self.bad = BadFiles(data_config.on_bad_file, f'folder {split} split ({where})')
    entries = build_cache([item.path for item in items], self.cache_dir, resampler, num_threads,
                          f'folder {split}: decoding to 16 kHz (once)')
    kept, short = [], 0
    for item, entry in zip(items, entries):
      if isinstance(entry, str):
        self.bad.report(manifest.where(item), entry)
      elif entry['samples'] < min_length:
        short += 1
      else:
        kept.append((item, entry))
    self.bad.summary(len(items))
    if not kept:
      raise DataError(f'{where}: none of the {len(items)} files of the {split} split is usable '
                      f'({len(self.bad.skipped)} bad, {short} shorter than config.data.min_length={min_length})')
    self._items = [item for item, _ in kept]
    self._entries = [entry for _, entry in kept]
    self.paths = [item.path for item in self._items]
    self.lengths = np.array([e['samples'] for e in self._entries], np.int64)  # (N,) at 16 kHz
    self._resampler = resampler
    labels, class_names = {}, {}
    for column in manifest.label_columns:
      class_names[column] = manifest.classes(column)
      index = {c: k for k, c in enumerate(class_names[column])}
      labels[column] = [index.get(item.labels[column], -1) for item in self._items]
    self.frame_label_file = None
    if data_config.frame_labels:
      self.frame_label_file = FrameLabels(data_config.frame_labels, manifest)
      for item, entry in kept:
        self.frame_label_file.check_length(item.name, entry['samples'])
      class_names[self.frame_label_file.column] = self.frame_label_file.classes
    super().__init__(split=split, variant=variant, names=[item.name for item in self._items],
                     item_length=item_length if variant == 'words' else None, labels=labels,
                     class_names=class_names, skipped=self.bad.skipped, crop_length=item_length,
                     num_threads=num_threads)
    self._summarise(where, len(items), short, min_length)

  def _summarise(self, where: str, listed: int, short: int, min_length: int) -> None:
    """One line on stderr (once per split and variant): clips, formats, what was converted."""
    key = (where, self.split, self.variant, len(self), tuple(self.lengths[:8]))
    if key in _summarised:
      return
    _summarised.add(key)
    formats = {}
    for entry in self._entries:
      formats[entry['format']] = formats.get(entry['format'], 0) + 1
    counts = {'resampled to 16 kHz': sum(e['sample_rate'] != SAMPLE_RATE for e in self._entries),
              'mixed down to mono': sum(e['channels'] > 1 for e in self._entries),
              f'shorter than a crop of {self.crop_length} samples (zero-padded)':
                  int(np.sum(self.lengths < self.crop_length)) if self.item_length is not None else 0,
              f'shorter than config.data.min_length={min_length} left out': short,
              'bad files skipped': len(self.skipped)}
    notes = [', '.join(f'{n} {f}' for f, n in sorted(formats.items()))]
    notes += [f'{n} {what}' for what, n in counts.items() if n]
    minutes = float(np.sum(self.lengths)) / SAMPLE_RATE / 60
    tqdm.write(f'folder {self.split} split: {len(self)} of {listed} clips ({minutes:.1f} min) from {where}: '
               + '; '.join(notes), file=sys.stderr)

  def describe(self, i: int) -> str:
    """Item i for messages: its CSV row and name (its path without a CSV)."""
    return self.manifest.where(self._items[i])

  def decode(self, i: int, start: int, frames: int) -> np.ndarray | str:
    """Samples [start, start + frames) of clip i from its cache entry (a damaged entry: one warning,
    decoded again)."""
    for attempt in range(2):
      entry = self._entries[i]
      try:
        audio = np.load(entry['file'], mmap_mode='r')[start:start + frames]  # (frames,)
        if len(audio) == frames:
          return np.array(audio, np.float32)
        problem = f'{len(audio)} samples at {start}, expected {frames}'
      except (OSError, ValueError) as e:
        problem = e
      if attempt == 0:
        warn_damaged_cache(entry['file'], problem)
        entry = cached_audio(self.paths[i], self.cache_dir, self._resampler, rebuild=True)
        if isinstance(entry, str):
          return entry
        self._entries[i] = entry
    return f'cannot read its decoded samples from the cache ({problem})'

  def select(self, keep: np.ndarray) -> 'FolderSource':
    """A copy holding only the items `keep`, in order."""
    out = super().select(keep)
    out._items = [self._items[i] for i in keep]
    out._entries = [self._entries[i] for i in keep]
    return out

  def frame_labels(self, i: int) -> np.ndarray:
    """(T // 160,) int32 per-10-ms labels of clip i from config.data.frame_labels (-1: no segment)."""
    if self.frame_label_file is None:
      raise DataError('this folder corpus has no frame labels: set config.data.frame_labels to a CSV '
                      'path,start,end,<label> of segments in seconds')
    return self.frame_label_file.frames(self.names[i], int(self.lengths[i]))

  def label_origin(self, label: str) -> str:
    """'<csv> column <label>' (or the folder names of root, or the frame-label CSV)."""
    if self.frame_label_file is not None and label == self.frame_label_file.column:
      return f'{self.frame_label_file.path} column {label}'
    if self.manifest.csv_path:
      return f'{self.manifest.csv_path} column {label}'
    return f'the folder names under {self.manifest.root} (column {label})'

  def without_classes(self, label: str, classes: list[int]) -> 'FolderSource':
    """A test split without its items of `classes` (no training row has them): under
    data.on_bad_file='error' a DataError naming the first such row, under 'skip' those items left
    out and counted in one line."""
    values = self.labels[label]
    unseen = np.flatnonzero(np.isin(values, classes))
    if not len(unseen):
      return self
    names = [self.class_names[label][c] for c in classes]
    shown = ', '.join(names[:5]) + (', ...' if len(names) > 5 else '')
    first = unseen[0]
    if self.bad.policy == 'error':
      raise DataError(f'{self.describe(first)}, column {label}: class {self.class_names[label][values[first]]!r} '
                      f'is in the test split but in no training row ({len(unseen)} test clips of {len(names)} such '
                      f'classes: {shown}); give them training rows (the {SPLIT_COLUMN} column, or another '
                      'config.data.split_by), probe another column, or set config.data.on_bad_file=skip to score '
                      'without them')
    tqdm.write(f'{self.bad.what}: {len(unseen)} of {len(self)} test clips left out of the {label} probe: '
               f'their classes have no training row ({shown}; first: {self.describe(first)})', file=sys.stderr)
    return self.select(np.flatnonzero(~np.isin(values, classes)))
