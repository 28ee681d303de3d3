"""What a folder of recordings holds, before training on it: `python -m sim_jax.data.manifest ROOT`.

  python -m sim_jax.data.manifest my_audio             # files per format, rates, channels, durations,
                                                       # items per split and label, problems found
  python -m sim_jax.data.manifest my_audio --write     # also writes my_audio/labels.csv from the tree
  python -m sim_jax.data.manifest my_audio --split-by speaker --frame-labels my_audio/phones.csv

It reads the folder as `config.data.name=folder` does (`sim_jax.data.folder`): the CSV (validated in
the same pass: a malformed one is one `error:` line, exit status 2) or, without one, every audio file
under ROOT by its parent folder. Files are checked from their headers (and a WAV's declared size),
not decoded; training decodes them once into the cache. Exit status 1 when problems were found.
"""

import argparse
import csv
import io as text_io
import os
import sys

import numpy as np

from sim_jax import io
from sim_jax.data.audio import SAMPLE_RATE, audio_header, wav_truncation
from sim_jax.data.corpora import default_data_config
from sim_jax.data.errors import DataError
from sim_jax.data.folder import (FOLDER_COLUMN, MANIFEST_FILE, PATH_COLUMN, FrameLabels, Manifest, assign_splits,
                                 read_manifest)

DURATION_BINS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, np.inf)  # seconds


def skeleton(manifest: Manifest) -> str:
  """The text of a labels.csv for a folder read without one: path and its parent folder's name."""
  out = text_io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow([PATH_COLUMN, FOLDER_COLUMN])
  for item in manifest.items:
    writer.writerow([item.name, item.labels.get(FOLDER_COLUMN, '')])
  return out.getvalue()


def _counts(values) -> str:
  """'a 3, b 1' of the distinct values, most common first."""
  found = {}
  for v in values:
    found[v] = found.get(v, 0) + 1
  return ', '.join(f'{k} {n}' for k, n in sorted(found.items(), key=lambda kv: (-kv[1], str(kv[0]))))


def _histogram(seconds: np.ndarray) -> list[str]:
  """Lines of a text histogram of clip durations over DURATION_BINS (empty bins at the ends dropped)."""
  counts, _ = np.histogram(seconds, DURATION_BINS)
  used = np.flatnonzero(counts)
  lines = []
  for k in range(used[0], used[-1] + 1):
    lo, hi = DURATION_BINS[k], DURATION_BINS[k + 1]
    span = f'{lo:g}–{hi:g} s' if np.isfinite(hi) else f'≥ {lo:g} s'
    lines.append(f'  {span:>10} {counts[k]:6d} {"#" * int(np.ceil(40 * counts[k] / counts.max()))}'.rstrip())
  return lines


def describe(root: str, manifest_path: str = '', frame_labels: str = '', test_fraction: float = 0.2,
             split_by: str = '', split_seed: int = 0, item_length: int = 20480) -> tuple[list[str], list[str]]:
  """(report lines, problem lines) for the folder `root` read with these config.data settings.

  A malformed CSV is a DataError (as training would raise it); everything else found is a problem.
  """
  manifest = read_manifest(root, manifest_path)
  problems = []
  lines = [f'folder: {manifest.root}']
  if manifest.csv_path:
    lines.append(f'manifest: {manifest.csv_path} ({len(manifest.items)} rows; label columns: '
                 f'{", ".join(manifest.label_columns) or "none"})')
  else:
    lines.append(f'manifest: none ({len(manifest.items)} audio files, labelled by their parent folder '
                 f'{"in column " + FOLDER_COLUMN if manifest.label_columns else "(none: all in the root)"}); '
                 f'--write writes {os.path.join(manifest.root, MANIFEST_FILE)}')
  infos, usable = [], []
  for item in manifest.items:
    info = audio_header(item.path, mono=False)
    if not isinstance(info, str) and os.path.isfile(item.path):
      info = wav_truncation(item.path) or info
    if isinstance(info, str):
      problems.append(f'{manifest.where(item)}: {info}')
    else:
      infos.append(info)
      usable.append(item)
  lines.append(f'files: {len(manifest.items)} ({len(infos)} readable) — {_counts(i.format for i in infos)}')
  if infos:
    lines.append(f'sample rates: {_counts(f"{i.samplerate} Hz" for i in infos)}'
                 f' (resampled to {SAMPLE_RATE} Hz once, into the cache)')
    lines.append(f'channels: {_counts("mono" if i.channels == 1 else f"{i.channels} channels" for i in infos)}'
                 + (' (several: mixed down to mono)' if any(i.channels > 1 for i in infos) else ''))
    seconds = np.array([i.frames / i.samplerate for i in infos])
    lines.append(f'duration: {seconds.min():.2f}–{seconds.max():.2f} s, {seconds.sum() / 60:.1f} min in all; '
                 f'{int(np.sum(seconds * SAMPLE_RATE < item_length))} shorter than a crop of {item_length} samples '
                 '(zero-padded)')
    lines += _histogram(seconds)
  try:
    splits = assign_splits(manifest, test_fraction, split_by, split_seed)
  except DataError as e:
    problems.append(str(e))
    splits = None
  if splits is not None:
    how = ('the split column' if manifest.items[0].split is not None else
           f'config.data.test_fraction={test_fraction}' + (f', split_by={split_by}' if split_by else '')
           + f', split_seed={split_seed}')
    lines.append(f'split ({how}): ' + ', '.join(f'{s} {splits.count(s)}' for s in ('train', 'test')))
  for column in manifest.label_columns:
    classes = manifest.classes(column)
    values = [item.labels[column] for item in manifest.items]
    lines.append(f'column {column}: {len(classes)} classes, {values.count("")} rows without a value')
    if splits is not None:
      width = max([len(c) for c in classes] + [5])
      lines.append(f'  {"class":<{width}} {"train":>6} {"test":>6}')
      test_only = []
      for c in classes:
        counts = [sum(v == c and s == split for v, s in zip(values, splits)) for split in ('train', 'test')]
        lines.append(f'  {c:<{width}} {counts[0]:6d} {counts[1]:6d}')
        if counts[1] and not counts[0]:
          test_only.append(c)
      if test_only and column != split_by:  # split_by keeps each value in one split: probe another column
        problems.append(f'column {column}: {len(test_only)} class(es) with test rows and no training row '
                        f'({", ".join(test_only[:5])}{", ..." if len(test_only) > 5 else ""}): a probe of {column} '
                        'cannot predict them; give them training rows, or split by another column')
    if len(classes) < 2:
      problems.append(f'column {column}: {len(classes)} class{"es" if len(classes) != 1 else ""} '
                      f'({", ".join(classes) or "no values"}); a probe of {column} needs two or more')
  if frame_labels:
    try:
      frames = FrameLabels(frame_labels, manifest)
    except DataError as e:
      problems.append(str(e))
    else:
      count = sum(len(s) for s in frames.segments.values())
      lines.append(f'frame labels: {frames.path}, column {frames.column}: {count} segments of '
                   f'{len(frames.segments)} files, {len(frames.classes)} classes')
      for item, info in zip(usable, infos):
        try:
          frames.check_length(item.name, int(info.frames / info.samplerate * SAMPLE_RATE))
        except DataError as e:
          problems.append(str(e))
  return lines, problems


def main(argv=None) -> int:
  """Command line entry point: prints the report; 0 if no problem was found, 1 if some were, 2 on a
  malformed CSV or bad arguments."""
  defaults = default_data_config('folder')
  parser = argparse.ArgumentParser(prog='python -m sim_jax.data.manifest', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('root', help='the folder of your recordings (config.data.root)')
  parser.add_argument('--manifest', default='', help=f"config.data.manifest ('' = ROOT/{MANIFEST_FILE})")
  parser.add_argument('--frame-labels', default='', help='config.data.frame_labels: path,start,end,<label>')
  parser.add_argument('--test-fraction', type=float, default=defaults.test_fraction)
  parser.add_argument('--split-by', default='', help='config.data.split_by: a label column')
  parser.add_argument('--split-seed', type=int, default=defaults.split_seed)
  parser.add_argument('--item-length', type=int, default=defaults.item_length, help='crop length in samples')
  parser.add_argument('--write', action='store_true',
                      help=f'write ROOT/{MANIFEST_FILE} (path, parent folder) for a folder without one')
  args = parser.parse_args(argv)
  try:
    lines, problems = describe(args.root, args.manifest, args.frame_labels, args.test_fraction, args.split_by,
                               args.split_seed, args.item_length)
    written = None
    if args.write:
      target = os.path.join(os.path.abspath(args.root), MANIFEST_FILE)
      if args.manifest or os.path.exists(target):
        raise DataError(f'{args.manifest or target} exists: edit it (add label columns as you like), or delete '
                        'it to write a new skeleton')
      io.write_text(target, skeleton(read_manifest(args.root)))
      written = target
  except DataError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print('\n'.join(lines))
  if problems:
    print(f'problems ({len(problems)}):')
    print('\n'.join(f'  {p}' for p in problems))
  else:
    print('problems: none')
  if written:
    print(f'wrote {written}: one row per file (path, its parent folder as {FOLDER_COLUMN}); add label columns '
          'and, if you like, a split column (train / test), then train with --config.data.root='
          f'{args.root}')
  return 1 if problems else 0


if __name__ == '__main__':
  sys.exit(main())
