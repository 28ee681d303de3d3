"""Embedding a folder of recordings (or the CSV manifest of one) with a trained encoder: `embed.py`.

Writes, under the output folder:
  <name>.npz    one per file (<name>: its path relative to the folder or the CSV, '.npz' appended):
                per module output '<module>' (T_m, C) float32 — its valid frames only — and
                '<module>_frames' (T_m), plus 'samples' (the file's length at 16 kHz)
  index.csv     one row per file written: path, file, duration, samples, then frames_<module> and
                hop_<module> for each module
  embed.json    the workdir, checkpoint and settings, each module's hop / receptive field / start, and
                the run's counts: files, written, kept from an earlier run, bad, compilations, seconds
Files are read as the folder corpus reads them (`sim_jax.data.audio.load_audio_file`: any format
libsndfile decodes, mixed to mono, resampled to 16 kHz), and a broken or too short one is handled by
the bad-file policy (`on_bad_file`: 'error' stops at it, 'skip' counts it). Every file is written
atomically, so a rerun skips those written already and a killed run leaves no partial file; a rerun
with other settings (encoder, modules, features, seed, resampler) stops with one line.

The files are padded to at most `max_buckets` lengths chosen from their headers (`choose_buckets`) and
encoded in batches of about `batch_seconds` of audio (fewer rows where a bucket has fewer files; the
last batch of a bucket is filled with silent rows), so the run compiles once per bucket.
"""

import collections
import csv
import io as text_io
import math
import os
import time
import zlib

import jax
import numpy as np

from sim_jax import io
from sim_jax.checkpoints import tree_digest
from sim_jax.data.audio import SAMPLE_RATE, audio_header, load_audio_file
from sim_jax.data.errors import BadFiles, DataError
from sim_jax.data.folder import read_manifest
from sim_jax.data.resample import RESAMPLERS
from sim_jax.embedding import bucket_length, choose_buckets, count_compilations, load_encoder
from sim_jax.progress import progress_bar
from sim_jax.workdir import record_settings

INDEX_FILE = 'index.csv'
RESULTS_FILE = 'embed.json'
# settings a rerun into the same output folder may change: they do not change what a file holds
FREE_ON_RESUME = ('input', 'on_bad_file', 'batch_seconds', 'max_buckets')


def output_name(name: str) -> str:
  """The npz path (relative to the output folder) of a manifest item named `name`: the name with
  '.npz' appended; a CSV's absolute or '..' paths stay inside the output folder ('/' and '..' parts
  become '_')."""
  parts = [('_' if part == '..' else part) for part in name.split('/') if part not in ('', '.')]
  return '/'.join(parts) + '.npz'


def _manifest(input_path: str):
  """The folder corpus's manifest of `--input`: a folder (its labels.csv, else every audio file under
  it) or a CSV (its `path` column relative to the CSV's folder)."""
  if os.path.isfile(input_path):
    return read_manifest(os.path.dirname(os.path.abspath(input_path)), input_path)
  return read_manifest(input_path)


def _predicted_samples(path: str) -> int | None:
  """A file's length at 16 kHz from its header (what the resamplers return: ceil(T·16000/rate)), or
  None when the header is unreadable (the file is then reported when it is read)."""
  info = audio_header(path, mono=False)
  if isinstance(info, str):
    return None
  return math.ceil(info.frames * SAMPLE_RATE / info.samplerate)


def _file_key(key, name: str):
  """The SIM-sample key of one file: from its name, so its draws do not depend on the folder's other
  files, on its batch or on what an earlier run wrote."""
  return jax.random.key_data(jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF))


def _write_index(out_dir: str, rows: list[dict]) -> None:
  buffer = text_io.StringIO()
  if rows:
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator='\n')
    writer.writeheader()
    writer.writerows(rows)
  io.write_text(os.path.join(out_dir, INDEX_FILE), buffer.getvalue())


def embed_folder(workdir: str, input_path: str, out_dir: str, *, checkpoint='latest', modules='all',
                 features: str = 'mean', seed: int = 0, resampler: str = '', on_bad_file: str = 'error',
                 batch_seconds: float = 32.0, max_buckets: int = 8) -> dict:
  """Embed every file of `input_path` (a folder or a CSV manifest) into `out_dir` (see the module
  docstring); returns what embed.json holds.

  checkpoint: 'latest' | 'best' | a step; modules: 'all' or names ('module_2,context'); features:
  'mean' | 'sample' (SIM; drawn from `seed`, per file); resampler: '' for the training run's
  (config.data.resampler), 'sinc' or 'soxr_hq'; on_bad_file: 'error' | 'skip'; batch_seconds: audio
  per batch; max_buckets: padded lengths, i.e. compilations, at most.
  """
  if batch_seconds <= 0 or max_buckets < 1:
    raise ValueError(f'--batch_seconds={batch_seconds} and --max_buckets={max_buckets}: give positive values')
  bad = BadFiles(on_bad_file, f'embed {input_path}', flag='--on_bad_file')
  manifest = _manifest(input_path)
  enc = load_encoder(workdir, checkpoint)
  resampler = resampler or enc.config.data.get('resampler', 'sinc')
  if resampler not in RESAMPLERS:
    raise ValueError(f'--resampler={resampler!r}: use one of {", ".join(RESAMPLERS)}')
  names = enc.select(modules)
  enc.check_features(features, flag='--features')
  outputs = {item.name: output_name(item.name) for item in manifest.items}
  clash = _first_clash(outputs)
  if clash:
    raise DataError(f'{clash[0]} and {clash[1]} would both be written to {outputs[clash[0]]}; rename one')
  settings = {'workdir': os.path.abspath(workdir), 'checkpoint': os.path.abspath(enc.path), 'step': enc.step,
              'weights': tree_digest(enc.trained.variables)[:16], 'modules': names, 'features': features,
              'seed': seed if features == 'sample' else None, 'resampler': resampler,
              'input': os.path.abspath(input_path), 'on_bad_file': on_bad_file, 'batch_seconds': batch_seconds,
              'max_buckets': max_buckets}
  results_path = os.path.join(out_dir, RESULTS_FILE)
  record_settings(results_path, {'settings': settings}, resuming=True,
                  free=tuple(f'settings.{k}' for k in FREE_ON_RESUME),
                  fix=f'embed into another --output, or delete {out_dir} to embed again', holds='features')

  todo = [item for item in manifest.items if not os.path.exists(os.path.join(out_dir, outputs[item.name]))]
  predicted = {item.name: _predicted_samples(item.path) for item in todo}
  buckets = choose_buckets([n for n in predicted.values() if n], max_buckets)
  per_bucket = collections.Counter(bucket_length(n, buckets) for n in predicted.values() if n)

  def batch_rows(size: int) -> int:  # about batch_seconds of audio, fewer for a bucket of fewer files
    return max(1, min(int(batch_seconds * SAMPLE_RATE) // size, per_bucket.get(size, 1)))
  todo.sort(key=lambda item: (predicted[item.name] is None, predicted[item.name] or 0))
  info = {name: enc.describe(name) for name in names}
  need = max(i['receptive_field'] + i['start'] for i in info.values())  # samples for one frame of each
  key = jax.random.PRNGKey(seed)
  pending: dict[int, list] = {}  # padded length -> [(item, audio)] waiting for a full batch
  audio_seconds, tick = 0.0, time.perf_counter()

  def flush(size: int, rows: list) -> None:
    batch = batch_rows(size)
    waves = np.zeros((batch, size), np.float32)  # (B, T): rows past the files are zero and dropped
    lengths = np.full(batch, size, np.int64)
    for b, (_, audio) in enumerate(rows):
      waves[b, :len(audio)], lengths[b] = audio, len(audio)
    keys = None
    if features == 'sample':
      keys = np.stack([_file_key(key, item.name) for item, _ in rows] + [np.zeros(2, np.uint32)] * (batch - len(rows)))
    out = enc.encode(waves, lengths, modules=names, features=features, key=keys, buckets=(size,))
    for b, (item, audio) in enumerate(rows):
      arrays = {'samples': np.int64(len(audio))}
      for name in names:
        n = int(out[name].frames[b])
        arrays[name] = out[name].features[b, :n]
        arrays[f'{name}_frames'] = np.int64(n)
      io.save_npz(os.path.join(out_dir, outputs[item.name]), **arrays)
      bar.update(1)

  kept = len(manifest.items) - len(todo)
  with count_compilations() as compiled, progress_bar(total=len(manifest.items), initial=kept, desc='embed',
                                                      unit='file') as bar:
    for item in todo:
      loaded = load_audio_file(item.path, resampler)
      if isinstance(loaded, str):
        bad.report(manifest.where(item), loaded)
        bar.update(1)
        continue
      audio = loaded[0]
      if len(audio) < need:
        bad.report(manifest.where(item), f'too short: {len(audio)} samples at 16 kHz, the encoder needs at least '
                                         f'{need} for one frame of every module asked for')
        bar.update(1)
        continue
      audio_seconds += len(audio) / SAMPLE_RATE
      size = bucket_length(len(audio), buckets)
      rows = pending.setdefault(size, [])
      rows.append((item, audio))
      if len(rows) == batch_rows(size):
        flush(size, pending.pop(size))
    for size, rows in sorted(pending.items()):
      flush(size, rows)
  seconds = time.perf_counter() - tick
  bad.summary(len(todo))

  index = []
  for item in manifest.items:
    path = os.path.join(out_dir, outputs[item.name])
    if not os.path.exists(path):
      continue
    with np.load(path) as z:
      samples = int(z['samples'])
      row = {'path': item.name, 'file': outputs[item.name], 'duration': round(samples / SAMPLE_RATE, 6),
             'samples': samples}
      row.update({f'frames_{name}': int(z[f'{name}_frames']) for name in names})
    row.update({f'hop_{name}': info[name]['hop'] for name in names})
    index.append(row)
  _write_index(out_dir, index)
  results = {
      'settings': settings,
      'modules': info,
      'files': len(manifest.items), 'written': len(todo) - len(bad.skipped), 'kept': kept,
      'bad': [{'file': f, 'problem': p} for f, p in bad.skipped], 'buckets': list(buckets),
      'compilations': compiled['compilations'], 'compile_seconds': round(compiled['seconds'], 3),
      'seconds': round(seconds, 3), 'audio_seconds': round(audio_seconds, 3),
      'real_time_factor': round(audio_seconds / seconds, 3) if seconds > 0 and audio_seconds else None,
  }
  io.write_json(results_path, results)
  return results


def _first_clash(outputs: dict[str, str]) -> tuple[str, str] | None:
  seen = {}
  for name, out in outputs.items():
    if out in seen:
      return seen[out], name
    seen[out] = name
  return None
