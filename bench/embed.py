"""Speed of a trained encoder as a feature extractor: `encode`'s real-time factor and embed.py's compilations.

  python bench/embed.py                                  # 512-channel SIM: 1 x 12.3 s and 16 x 2.0 s; 1,000 files
  python bench/embed.py --channels 64 --files 200        # quick
  python bench/embed.py --workdir workdirs/sim_deboer    # a trained encoder instead of a fresh one

Part 1, per case BxT (rows x samples, T a bucket length so no padding is timed): seconds of audio
embedded per second of wall time (the real-time factor) of `sim_jax.load_encoder(...).encode` with
every module's mean features, XLA's FLOP count of the forward pass (its cost analysis) and the GFLOP/s
achieved, next to a float32 matmul's rate measured in the same run (before and after the cases, as this
machine's speed drifts). Part 2: embed.py's library call (`sim_jax.embed_folder.embed_folder`) on a
folder of --files WAV files of random lengths (0.3 to 4 s) with a --count_channels encoder (the count
does not depend on the width): the number of XLA compilations, the buckets and the padded share.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'bench'))


def _encoder_workdir(args, channels: int, scratch: str) -> str:
  """--workdir, or a fresh SIM encoder of `channels` channels saved as a training workdir in `scratch`."""
  if args.workdir and channels == args.channels:
    return args.workdir
  from encoders import fresh_workdir
  from sim_jax.config import load_config_file
  config = load_config_file(os.path.join(REPO, 'configs', f'{args.kind}_deboer.py'))
  config.model.update(channels=channels, gru_hidden=channels // 2)
  return fresh_workdir(config, os.path.join(scratch, f'workdir_{channels}'))


def real_time_factors(enc, cases: list[tuple[int, int]], repeats: int) -> list[dict]:
  """For each (batch, samples): seconds of audio per second, FLOPs of the forward pass and GFLOP/s."""
  import numpy as np
  rows = []
  for batch, samples in cases:
    cost = enc.lowered(batch, samples).cost_analysis()
    flops = float((cost[0] if isinstance(cost, (list, tuple)) else cost)['flops'])
    waves = (np.random.default_rng(0).normal(size=(batch, samples)) * 0.1).astype(np.float32)
    enc.encode(waves, buckets=(samples,))  # compiles
    tick = time.perf_counter()
    for _ in range(repeats):
      enc.encode(waves, buckets=(samples,))
    seconds = (time.perf_counter() - tick) / repeats
    audio = batch * samples / enc.sample_rate
    rows.append({'batch': batch, 'samples': samples, 'audio_seconds': audio, 'seconds': seconds,
                 'real_time_factor': audio / seconds, 'gflop': flops / 1e9,
                 'gflop_per_audio_second': flops / 1e9 / audio, 'gflops': flops / seconds / 1e9})
  return rows


def compile_count(workdir: str, files: int, scratch: str) -> dict:
  """embed_folder on `files` WAV files of random lengths: its compilations, buckets and padding."""
  import numpy as np
  import soundfile as sf
  from sim_jax.data.audio import SAMPLE_RATE
  from sim_jax.embed_folder import embed_folder
  from sim_jax.embedding import bucket_length
  folder = os.path.join(scratch, 'folder')
  rng = np.random.default_rng(0)
  lengths = rng.integers(int(0.3 * SAMPLE_RATE), 4 * SAMPLE_RATE, files)
  for i, n in enumerate(lengths):
    path = os.path.join(folder, f'speaker{i % 10}', f'utt{i:04d}.wav')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, (rng.normal(size=n) * 0.1).astype(np.float32), SAMPLE_RATE, subtype='PCM_16')
  tick = time.perf_counter()
  results = embed_folder(workdir, folder, os.path.join(scratch, 'features'))
  padded = sum(bucket_length(int(n), results['buckets']) for n in lengths)
  return {'files': files, 'written': results['written'], 'compilations': results['compilations'],
          'compile_seconds': results['compile_seconds'], 'buckets': results['buckets'],
          'padded_share': 1 - lengths.sum() / padded, 'seconds': time.perf_counter() - tick,
          'audio_seconds': float(lengths.sum() / SAMPLE_RATE)}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', default='', help='a training workdir (default: a fresh encoder)')
  parser.add_argument('--kind', default='sim', choices=['sim', 'gim', 'cpc'])
  parser.add_argument('--channels', type=int, default=512)
  parser.add_argument('--cases', nargs='+', default=['1x196608', '16x32768'], help='BxT: rows x samples')
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--files', type=int, default=1000, help='files of the compile count (0: skip it)')
  parser.add_argument('--count_channels', type=int, default=16)
  parser.add_argument('--json', default='', help='also write the figures here')
  args = parser.parse_args()

  import jax
  from train_step import matmul_gflops
  from sim_jax.embedding import load_encoder
  scratch = tempfile.mkdtemp(prefix='bench_embed_')
  try:
    enc = load_encoder(_encoder_workdir(args, args.channels, scratch))
    model = enc.config.model
    print(f'{model.kind} encoder, {model.channels} channels, step {enc.step}; {jax.devices()[0].platform} '
          f'x{jax.device_count()}', flush=True)
    before = matmul_gflops()
    cases = real_time_factors(enc, [tuple(int(v) for v in c.split('x')) for c in args.cases], args.repeats)
    after = matmul_gflops()
    matmul = (before + after) / 2
    print(f'float32 matmul: {before:.0f} GFLOP/s before, {after:.0f} after')
    print(f'{"batch x samples":>16} {"audio s":>8} {"wall s":>8} {"x real time":>12} {"GFLOP":>8} '
          f'{"GFLOP/s":>8} {"of matmul":>10}')
    for c in cases:
      c['of_matmul'] = c['gflops'] / matmul
      print(f'{c["batch"]:>7} x {c["samples"]:<6} {c["audio_seconds"]:8.2f} {c["seconds"]:8.3f} '
            f'{c["real_time_factor"]:12.1f} {c["gflop"]:8.1f} {c["gflops"]:8.0f} {c["of_matmul"]:10.0%}')
    figures = {'kind': model.kind, 'channels': model.channels, 'matmul_gflops': [before, after], 'cases': cases}
    if args.files:
      count = compile_count(_encoder_workdir(args, args.count_channels, scratch), args.files, scratch)
      figures['folder'] = count
      print(f'embed.py on {count["files"]} files of 0.3-4 s ({count["audio_seconds"]:.0f} s of audio, '
            f'{args.count_channels} channels): {count["compilations"]} compilations '
            f'({count["compile_seconds"]:.1f} s), buckets {count["buckets"]}, '
            f'{count["padded_share"]:.1%} of the padded samples are padding; {count["seconds"]:.1f} s in all')
    if args.json:
      with open(args.json, 'w') as f:
        json.dump(figures, f, indent=2)
  finally:
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == '__main__':
  main()
