"""Throughput of each data loader on this machine (items/s), through `batches` with prefetch.

  python bench/data.py [--seconds 5] [--threads 1 2 4 8 16]
                       [--loaders librispeech librispeech-decoded deboer demo folder]
                       [--librispeech-root DIR] [--deboer-root DIR] [--folder-root DIR] [--cache-dir DIR]
                       [--json FILE]

Defaults read the real test data in ../shared/data. The LibriSpeech fixture has only 9 utterances,
so its crops are drawn over and over (every batch has fresh crops). A real-size training step at
batch 8 takes about 1–2 s on CPU, i.e. consumes at most 8 items/s; the LibriSpeech loader must deliver
at least 20× that (160 items/s). 'librispeech-decoded' reads the same crops from the decoded cache
(config.data.decoded_cache, built on its first use) instead of decoding the FLAC files. 'folder' is
the folder corpus (sim_jax/data/folder.py) on --folder-root, by default a folder of copies of the
LibriSpeech fixture FLACs and the de Boer training words (44.1-kHz WAV) made in a temporary folder:
it times the cache build (every file decoded and resampled to 16 kHz, files/s, into a fresh cache
folder) and then the same 20480-sample crops as the LibriSpeech loader, read from that cache.
"""

import argparse
import glob
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sim_jax.data import batches, default_data_config, make_source  # noqa: E402
from sim_jax.data.source import Source  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                      'shared', 'data')
REQUIRED_LIBRISPEECH = 20 * 8 / 1.0  # 20× a batch-8 step of 1 s


class Repeated(Source):
  """`times` copies of a source's items (indices wrap around), so a tiny fixture fills big epochs."""

  def __init__(self, base: Source, times: int):
    """Repeats every item of `base` `times` times."""
    super().__init__(split=base.split, variant=base.variant, names=base.names * times,
                     item_length=base.item_length,
                     labels={k: np.tile(v, times) for k, v in base.labels.items()},
                     class_names=base.class_names)
    self.corpus = base.corpus
    self.base = base

  def load(self, indices: np.ndarray, crop_key: int) -> dict:
    """The base items; crops still differ per row because they are keyed by the repeated index."""
    return self.base.load(np.asarray(indices) % len(self.base), crop_key)


def measure(source: Source, batch_size: int, seconds: float) -> dict:
  """Iterates epochs of `source` for about `seconds`; returns wall and loader items/s."""
  items, loader_rates, epoch = 0, [], 0
  start = time.perf_counter()
  while time.perf_counter() - start < seconds:
    with batches(source, batch_size, seed=0, epoch=epoch, shuffle=True, drop_last=True) as it:
      for batch in it:
        items += len(batch['audio'])
        if time.perf_counter() - start >= seconds:
          break
      loader_rates.append(it.items_per_second)
    epoch += 1
  wall = time.perf_counter() - start
  return {'wall': items / wall, 'loader': float(np.mean(loader_rates)), 'items': items}


def _copy_shared_audio(librispeech_root: str, deboer_root: str, root: str) -> str:
  """A folder as a user would make one: the LibriSpeech fixture FLACs under <speaker>/ and the de Boer
  training words under deboer/ (no CSV: labelled by folder); returns root."""
  for path in sorted(glob.glob(os.path.join(librispeech_root, 'LibriSpeech', '*', '*', '*', '*.flac'))):
    speaker = os.path.basename(path).split('-')[0]
    os.makedirs(os.path.join(root, speaker), exist_ok=True)
    shutil.copy(path, os.path.join(root, speaker))
  os.makedirs(os.path.join(root, 'deboer'), exist_ok=True)
  for path in sorted(glob.glob(os.path.join(deboer_root, 'reshuffledv2', 'train', '*.wav'))):
    shutil.copy(path, os.path.join(root, 'deboer'))
  return root


def main() -> None:
  """Prints one line per loader."""
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--seconds', type=float, default=5.0, help='time per loader')
  parser.add_argument('--librispeech-root', default=os.path.join(SHARED, 'librispeech_mini'))
  parser.add_argument('--deboer-root', default=os.path.join(SHARED, 'de_boer'))
  parser.add_argument('--cache-dir', default='', help="'' = $SIM_JAX_CACHE or ~/.cache/sim_jax")
  parser.add_argument('--threads', type=int, nargs='+', default=[1, 2],
                      help='LibriSpeech decode thread counts (data.num_threads) to measure')
  parser.add_argument('--loaders', nargs='+', default=['librispeech', 'deboer', 'demo'],
                      choices=['librispeech', 'librispeech-decoded', 'deboer', 'demo', 'folder'])
  parser.add_argument('--folder-root', default='',
                      help="a folder of recordings for 'folder' ('' = copies of ../shared/data audio)")
  parser.add_argument('--json', help='also write the figures to this file')
  args = parser.parse_args()
  print(f'{os.cpu_count()} CPU cores; {args.seconds:.0f} s per loader; items/s: wall (consumer '
        'doing nothing) / loader (own rate)')
  figures = {'cpu_cores': os.cpu_count()}

  for loader, decoded in (('librispeech', False), ('librispeech-decoded', True)):
    if loader not in args.loaders:
      continue
    figures[f'{loader.replace("-", "_")}_crops_per_s'] = rates = {}
    for threads in args.threads:
      c = default_data_config('librispeech')
      c.update(dict(root=args.librispeech_root, cache_dir=args.cache_dir, num_threads=threads,
                    decoded_cache=decoded))
      base = make_source(c, 'test', 'words')
      r = measure(Repeated(base, 64), 8, args.seconds)
      rates[threads] = r['wall']
      verdict = 'ok' if r['wall'] >= REQUIRED_LIBRISPEECH else 'TOO SLOW'
      print(f'{loader} crops 20480, batch 8, {threads:2d} thread(s): {r["wall"]:8.1f} / '
            f'{r["loader"]:8.1f}   (need >= {REQUIRED_LIBRISPEECH:.0f}: {verdict})', flush=True)

  if 'deboer' in args.loaders:
    c = default_data_config('deboer')
    c.update(dict(root=args.deboer_root, cache_dir=args.cache_dir))
    tick = time.perf_counter()
    words = make_source(c, 'train', 'words')
    built = time.perf_counter() - tick
    r = measure(words, 64, args.seconds)
    figures['deboer_words_per_s'] = r['wall']
    print(f'deboer words 10240 (cached), batch 64:         {r["wall"]:8.1f} / {r["loader"]:8.1f}'
          f'   (source ready in {built:.1f} s)', flush=True)

  if 'demo' in args.loaders:
    with tempfile.TemporaryDirectory() as tmp:
      c = default_data_config('demo')
      c.cache_dir = tmp
      tick = time.perf_counter()
      demo = make_source(c, 'train', 'words')
      built = time.perf_counter() - tick
      print(f'demo words: synthesis {len(demo) / built:8.1f} items/s ({len(demo)} in {built:.1f} s)')
      r = measure(demo, 16, args.seconds)
      figures['demo_words_per_s'] = r['wall']
      print(f'demo words 10240, batch 16:                    {r["wall"]:8.1f} / {r["loader"]:8.1f}')

  if 'folder' in args.loaders:
    with tempfile.TemporaryDirectory() as tmp:
      root = args.folder_root or _copy_shared_audio(args.librispeech_root, args.deboer_root,
                                                    os.path.join(tmp, 'my_audio'))
      c = default_data_config('folder')
      c.update(dict(root=root, cache_dir=os.path.join(tmp, 'cache')))
      tick = time.perf_counter()
      clips = make_source(c, 'train', 'words')
      built = time.perf_counter() - tick
      figures['folder_cache_files_per_s'] = len(clips) / built
      print(f'folder cache build: {len(clips) / built:8.1f} files/s ({len(clips)} files, '
            f'{float(np.sum(clips.lengths)) / 16000 / 60:.1f} min of audio, in {built:.1f} s)', flush=True)
      r = measure(Repeated(clips, max(1, 512 // len(clips))), 8, args.seconds)
      figures['folder_crops_per_s'] = r['wall']
      print(f'folder crops 20480 (cached), batch 8:          {r["wall"]:8.1f} / {r["loader"]:8.1f}', flush=True)

  if args.json:
    from sim_jax import io  # noqa: E402 (the repo root is on sys.path)
    io.write_json(args.json, figures)


if __name__ == '__main__':
  main()
