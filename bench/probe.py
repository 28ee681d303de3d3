"""Cost of a linear probe: one encoder pass over the data (then cached), plus seconds of probe epochs.

  python bench/probe.py                                   # real-size SIM, de Boer syllables, 50 epochs
  python bench/probe.py --channels 64 --epochs 10         # quick
  python bench/probe.py --workdir workdirs/sim_deboer     # a trained encoder instead of a fresh one

Runs the syllable probe twice on de Boer (../shared/data/de_boer unless --root): first with an empty
feature cache (the encoder runs once over the 2181 + 360 syllables), then the vowel probe on the same
features (read from the cache). Prints the extraction time, encoder items/s, the time per probe epoch
and the total, next to what re-running the encoder every epoch (the original) would cost.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--root', default=os.path.join(os.path.dirname(REPO), 'shared', 'data', 'de_boer'))
  parser.add_argument('--workdir', default='', help='a training workdir (default: a fresh encoder)')
  parser.add_argument('--channels', type=int, default=512)
  parser.add_argument('--epochs', type=int, default=50)
  parser.add_argument('--source', default='context')
  args = parser.parse_args()

  import jax
  from encoders import fresh_workdir
  from sim_jax.config import load_config_file
  from sim_jax.probe import run_probe

  config = load_config_file(os.path.join(REPO, 'configs', 'sim_deboer.py'))
  config.data.root = args.root
  scratch = tempfile.mkdtemp(prefix='bench_probe_')
  try:
    workdir = args.workdir
    if not workdir:
      config.model.channels = args.channels
      config.model.gru_hidden = args.channels // 2
      workdir = fresh_workdir(config, os.path.join(scratch, 'workdir'))
    else:  # keep the workdir's cache and results untouched: probe a copy of its checkpoints
      copy = os.path.join(scratch, 'workdir')
      shutil.copytree(workdir, copy, ignore=shutil.ignore_patterns('probes', 'decoder', 'report'))
      workdir = copy
    config.probe.update(num_epochs=args.epochs, source=args.source)
    print(f'de Boer syllables, {args.source} features of a {"trained" if args.workdir else "fresh"} '
          f'encoder ({config.model.channels} channels), {args.epochs} probe epochs, '
          f'{jax.devices()[0].platform} x{jax.device_count()}', flush=True)
    rows = []
    for task in ('syllables', 'vowels'):
      config.probe.task = task
      tick = time.perf_counter()
      result = run_probe(config, workdir)
      total = time.perf_counter() - tick
      rows.append((task, result, total))
  finally:
    shutil.rmtree(scratch, ignore_errors=True)
  (_, cold, cold_total), (_, warm, warm_total) = rows
  items = cold['data']['train_items'] + cold['num_test_items']
  extract = cold['timing']['features_seconds']
  epoch = cold['timing']['seconds_per_epoch']
  print(f'feature extraction (cold cache): {extract:8.2f} s for {items} items '
        f'({items / extract:.0f} items/s, train + test, one encoder pass)')
  print(f'features from the cache:         {warm["timing"]["features_seconds"]:8.2f} s')
  print(f'probe epoch:                     {epoch * 1e3:8.1f} ms ({args.epochs} epochs: {epoch * args.epochs:.2f} s)')
  print(f'syllable probe total:            {cold_total:8.2f} s  (accuracy {cold["accuracy"]:.3f}; '
        f'{cold_total - extract - epoch * args.epochs:.1f} s loading the encoder and the data)')
  print(f'vowel probe total (cached):      {warm_total:8.2f} s  (accuracy {warm["accuracy"]:.3f})')
  print(f'encoder every epoch (original):  ~{extract * args.epochs:7.0f} s of extraction alone')


if __name__ == '__main__':
  main()
