"""Your own recordings as a corpus: any folder of audio files, labelled by a CSV or by its sub-folders.

Layout: `config.data.root` is a folder; `config.data.manifest` a CSV (default `<root>/labels.csv`
when there is one) whose `path` column names each file relative to the CSV's folder (absolute paths
work too), whose optional `split` column says `train` or `test`, and whose every other column is a
categorical label (an empty cell: no label). Without a CSV every audio file under root is an item,
labelled by its parent folder's name (column `label`), as image folders are. Rows are numbered as a
spreadsheet shows them: the header is row 1.
"""

import csv
import dataclasses
import io as text_io
import os
from typing import NamedTuple

import soundfile as sf

from sim_jax.data.errors import DataError

MANIFEST_FILE = 'labels.csv'
PATH_COLUMN, SPLIT_COLUMN = 'path', 'split'
FOLDER_COLUMN = 'label'  # the label of a folder without a CSV: each file's parent folder
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
    if column in BATCH_FIELDS:
      raise DataError(f'{path} row 1: a label column may not be named {column!r} (a batch field of '
                      f'its own: {", ".join(BATCH_FIELDS)}); rename it')
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
