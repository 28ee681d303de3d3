"""The device check: what an accelerator machine must show, in one run (bench/device_check.sh).

  bench/device_check.sh                 # on a GPU/TPU machine: over 10 minutes on one H200 (reference
                                        # check + data + 45 s of training 4.4 min, the train-step grid
                                        # with its baselines 5 min; stages not yet timed there)
  bench/device_check.sh --smoke         # tiny widths, one reference file: ~3 minutes on a CPU (CI:
                                        # tests/test_device_check.py)
  bench/device_check.sh --parts reference_check stages   # some parts, in the order given

On whatever backend jax finds it runs
  reference_check  `python -m sim_jax.reference check` on every file of ../shared/reference (must
                   PASS: float32 'highest' matmuls are the default policy, so no TF32 there);
  train_step       bench/train_step.py: SIM and GIM at the de Boer recipe's batch 64 x 10240, float32
                   and bfloat16, SIM bfloat16 at batch 256, SIM float32 at the LibriSpeech recipe's
                   8 x 20480, each with its GFLOP/s next to a same-run matmul of its dtype;
  data             bench/data.py: LibriSpeech 20480-sample crops/s against 1, 4 and 16 decode threads,
                   from the FLAC files and from the decoded cache (config.data.decoded_cache);
  deboer_training  three minutes (--train-seconds) of real-width SIM training on de Boer through train.py
                   (on the built-in demo corpus with the same shapes and recipe where the words are
                   missing), stopped with SIGTERM; the step rate projects the de Boer 1000-epoch and
                   (from the 8 x 20480 step) the LibriSpeech 100-epoch recipes;
  stages           bench/stages.py: decoder steps, contribution score, feature extraction, probe epoch
                   and KDE total correlation at 512 channels;
where the Python has torch (or --baseline-python names one) each float32 step and stage is followed by
the original's (bench/baseline_pytorch*.py, on the GPU where torch sees one) and gets a speed-up. It
writes device_check.json (--out) after every part, with the goals and whether each is met.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'bench'))
from train_step import repo_env  # noqa: E402

SHARED = os.path.join(os.path.dirname(REPO), 'shared')
PARTS = ('reference_check', 'train_step', 'data', 'deboer_training', 'stages')
DEBOER_TRAIN_STEPS_PER_EPOCH = 680 // 64  # 680 training words, batch 64, last partial batch dropped
LIBRISPEECH_TRAIN_STEPS_PER_EPOCH = 22829 // 8  # the CPC train split, batch 8


def _run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
  print('$ ' + ' '.join(cmd), flush=True)
  return subprocess.run(cmd, cwd=REPO, env=repo_env(), capture_output=True,
                        text=True, timeout=timeout, **kwargs)


def _run_bench(cmd: list[str], out: str, timeout: float) -> tuple[dict | None, str]:
  """Runs a bench script that writes its figures to `out`: (its JSON, or None where it wrote none,
  and then the end of its stderr)."""
  run = _run(cmd, timeout=timeout)
  print(run.stdout[-4000:])
  if not os.path.exists(out):
    return None, run.stderr[-3000:]
  with open(out) as f:
    return json.load(f), ''


def reference_check(files: list[str]) -> dict:
  """1. The parity check on the recorded outputs of the original code."""
  run = _run([sys.executable, '-m', 'sim_jax.reference', 'check', *files], timeout=900)
  summary = [line for line in run.stdout.splitlines() if 'PASS' in line or 'FAIL' in line]
  print('\n'.join(summary[-len(files) - 3:]))
  return {'passed': run.returncode == 0, 'files': [os.path.basename(f) for f in files],
          'summary': summary[-len(files) * 4:], 'stderr': run.stderr[-1500:] if run.returncode else ''}


def train_steps(smoke: bool, tmp: str, baseline_python: str | None) -> dict:
  """2. Step throughput (bench/train_step.py, all cases of a grid in one process): SIM and GIM at the
  de Boer recipe's batch 64, float32 and bfloat16; SIM bfloat16 at batch 256; SIM float32 at the
  LibriSpeech recipe's 8 x 20480; each float32 shape beside the original's step (baseline_python)."""
  grids = ([(['sim', 'gim'], ['4x10240'], ['float32', 'bfloat16'])] if smoke else
           [(['sim', 'gim'], ['64x10240'], ['float32', 'bfloat16']), (['sim'], ['256x10240'], ['bfloat16']),
            (['sim'], ['8x20480'], ['float32'])])
  report = {'cases': []}
  for i, (kinds, cases, dtypes) in enumerate(grids):
    out = os.path.join(tmp, f'train_step_{i}.json')
    cmd = [sys.executable, 'bench/train_step.py', '--kinds', *kinds, '--cases', *cases, '--dtypes', *dtypes,
           '--one-process', '--json', out, '--steps', '1' if smoke else '5']
    cmd += ['--channels', '16'] if smoke else []
    cmd += ['--baseline-python', baseline_python] if baseline_python and 'float32' in dtypes else []
    result, error = _run_bench(cmd, out, timeout=1200)
    if result is None:
      report['cases'].append({'error': error, 'cases': cases})
      continue
    report['cases'] += result.pop('cases')
    report.update(result)
  return report


def data_bench(smoke: bool, librispeech_root: str, tmp: str) -> dict:
  """3. LibriSpeech crops/s against the decode thread count, from FLAC and from the decoded cache."""
  out = os.path.join(tmp, 'data.json')
  cmd = [sys.executable, 'bench/data.py', '--loaders', 'librispeech', 'librispeech-decoded',
         '--json', out, '--librispeech-root', librispeech_root,
         '--cache-dir', os.path.join(tmp, 'cache'), '--seconds', '1' if smoke else '3',
         '--threads', *(['1', '2'] if smoke else ['1', '4', '16'])]
  result, error = _run_bench(cmd, out, timeout=600)
  return {'error': error} if result is None else result


def deboer_training(smoke: bool, seconds: float, deboer_root: str, tmp: str) -> dict:
  """4. Real-width SIM on de Boer through train.py for `seconds` (and until 3 step rates past the
  compile are logged), then SIGTERM (a clean stop)."""
  workdir = os.path.join(tmp, 'sim_deboer')
  cmd = [sys.executable, 'train.py', f'--workdir={workdir}']
  if os.path.isdir(os.path.join(deboer_root, 'reshuffledv2')):
    corpus = 'deboer'
    cmd += ['--config=configs/sim_deboer.py', f'--config.data.root={deboer_root}']
  else:  # e.g. a machine the 125 MB corpus did not travel to: the built-in corpus, same shapes and recipe
    corpus = 'demo (the de Boer recipe and shapes: 10240-sample words)'
    cmd += ['--config=configs/demo.py', '--config.model.channels=512', '--config.model.gru_hidden=256',
            '--config.train.batch_size=64', '--config.train.learning_rate=2e-4',
            '--config.model.kld_weight=0.01']
  cmd += ['--config.train.log_every_steps=5', '--config.train.eval_steps=1']
  if smoke:
    cmd += ['--config.model.channels=16', '--config.model.gru_hidden=8', '--config.train.batch_size=8',
            '--config.train.log_every_steps=2']
  print('$ ' + ' '.join(cmd), flush=True)
  path = os.path.join(workdir, 'metrics.jsonl')

  def read_records() -> list[dict]:
    if not os.path.exists(path):
      return []
    with open(path) as f:
      return [json.loads(line) for line in f if line.endswith('\n')]

  with tempfile.TemporaryFile('w+') as log:
    proc = subprocess.Popen(cmd, cwd=REPO, env=repo_env(), stdout=log,
                            stderr=subprocess.STDOUT, text=True)
    start = time.perf_counter()
    # run `seconds`, and on until three step rates past the first (which includes compiling) are
    # logged, so that a slow compile still leaves a figure (at most 10 more minutes)
    while proc.poll() is None and time.perf_counter() - start < seconds + 600:
      rated = [r for r in read_records() if 'samples_per_second' in r]
      if time.perf_counter() - start >= seconds and len(rated) >= 4:
        break
      time.sleep(1)
    if proc.poll() is None:
      proc.send_signal(signal.SIGTERM)  # stops at the next step and saves a checkpoint (exit 130)
    proc.wait(timeout=300)
    log.seek(0)
    output = log.read()
  records = read_records()
  # the rate between logs; the first includes compiling, later ones each epoch's validation and
  # checkpoint as the recipe runs them; over equal step counts the overall rate is the harmonic mean
  rates = [r['samples_per_second'] for r in records if 'samples_per_second' in r][1:]
  result = {'corpus': corpus, 'seconds': time.perf_counter() - start, 'returncode': proc.returncode,
            'steps': max([r['step'] for r in records], default=0),
            'samples_per_s': len(rates) / sum(1 / r for r in rates) if rates else None,
            'log_tail': output[-1500:]}
  if rates:
    batch = 8 if smoke else 64
    result['deboer_1000_epochs_minutes'] = (1000 * DEBOER_TRAIN_STEPS_PER_EPOCH * batch
                                            / result['samples_per_s'] / 60)
  print(f'de Boer training: {result["steps"]} steps, {result["samples_per_s"]} samples/s (compile excluded)')
  return result


def stages(smoke: bool, deboer_root: str, tmp: str, baseline_python: str | None) -> dict:
  """5. bench/stages.py: the decoder step (modules 0 and 2, batches 8 and 64), the contribution score,
  feature extraction and the probe epoch (on the syllables under deboer_root) and the KDE total
  correlation, each beside the original's stage where baseline_python is given (not the KDE: sklearn's
  takes ~15 minutes on a CPU)."""
  report = {'rows': []}
  runs = [['--stages', 'decoder', 'score', 'extract'], ['--stages', 'tc']]
  if smoke:
    runs = [['--stages', 'decoder', 'score', '--channels', '16', '--modules', '2', '--batches', '8']]
  for i, stage_args in enumerate(runs):
    if 'extract' in stage_args and not os.path.isdir(os.path.join(deboer_root, 'split up data padded')):
      stage_args = [a for a in stage_args if a != 'extract']
      report['extract'] = f'skipped: {deboer_root} holds no syllables (split up data padded/)'
    out = os.path.join(tmp, f'stages_{i}.json')
    cmd = [sys.executable, 'bench/stages.py', *stage_args, '--root', deboer_root, '--json', out]
    cmd += ['--baseline-python', baseline_python] if baseline_python and 'tc' not in stage_args else []
    result, error = _run_bench(cmd, out, timeout=900)
    if result is None:
      report.setdefault('errors', []).append(error)
      continue
    report['rows'] += result.pop('rows')
    report.update(result)
  return report


def torch_python(requested: str | None) -> str | None:
  """The Python that times the original's code: `requested`, else this one where it has torch (an
  accelerator image usually does), else None (the speed-ups are skipped)."""
  if requested:
    return requested
  found = subprocess.run([sys.executable, '-c', 'import torch'], capture_output=True).returncode == 0
  return sys.executable if found else None


def main() -> None:
  """Runs the four parts and writes the JSON."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--smoke', action='store_true', help='tiny widths and short runs (CPU, CI)')
  parser.add_argument('--out', default='device_check.json')
  parser.add_argument('--reference-dir', default=os.path.join(SHARED, 'reference'))
  parser.add_argument('--deboer-root', default=os.path.join(SHARED, 'data', 'de_boer'),
                      help='without its words (reshuffledv2/) part 4 trains on the built-in demo corpus with '
                      "the same shapes; without its syllables part 5's extraction and probe are skipped")
  parser.add_argument('--librispeech-root', default=os.path.join(SHARED, 'data', 'librispeech_mini'))
  parser.add_argument('--train-seconds', type=float, default=None, help='default 180 (smoke: 40)')
  parser.add_argument('--baseline-python', help='a Python with torch for the original\'s steps '
                      '(default: this one, where it has torch)')
  parser.add_argument('--parts', nargs='+', default=list(PARTS), choices=PARTS, help='the parts to run')
  args = parser.parse_args()
  # each part runs in processes of its own, some beside a PyTorch one: no process may take most of
  # an accelerator's memory up front (JAX's default), each allocates what it uses
  os.environ.setdefault('XLA_PYTHON_CLIENT_PREALLOCATE', 'false')
  if not os.path.isdir(args.reference_dir):
    parser.error(f'--reference-dir {args.reference_dir} does not exist; pass the folder of the reference files')
  import jax
  report = {'backend': jax.default_backend(), 'device': jax.devices()[0].device_kind,
            'device_count': jax.device_count(), 'jax': jax.__version__, 'smoke': args.smoke}
  print(f'backend {report["backend"]}: {report["device_count"]} x {report["device"]}', flush=True)
  start = time.perf_counter()
  baseline_python = torch_python(args.baseline_python)
  report['original_timed_by'] = baseline_python
  from sim_jax import io
  with tempfile.TemporaryDirectory() as tmp:
    files = sorted(os.path.join(args.reference_dir, f) for f in os.listdir(args.reference_dir)
                   if f.endswith('.npz'))[:1 if args.smoke else None]  # smoke: the plumbing, one file
    parts = {'reference_check': lambda: reference_check(files),
             'train_step': lambda: train_steps(args.smoke, tmp, baseline_python),
             'data': lambda: data_bench(args.smoke, args.librispeech_root, tmp),
             'deboer_training': lambda: deboer_training(args.smoke, args.train_seconds or (
                 40.0 if args.smoke else 180.0), args.deboer_root, tmp),
             'stages': lambda: stages(args.smoke, args.deboer_root, tmp, baseline_python)}
    for name in args.parts:
      report[name] = parts[name]()
      report['seconds'] = time.perf_counter() - start
      io.write_json(args.out, report)  # after every part: a run cut short keeps what it measured
  report['targets'] = targets(report)
  io.write_json(args.out, report)
  print(json.dumps(report['targets'], indent=1))
  print(f'wrote {args.out} ({report["seconds"]:.0f} s)')


def targets(report: dict) -> dict:
  """The issue's goals on one H200, each with the measured figure and whether it is met (None in
  smoke mode: tiny widths say nothing about the goals)."""

  def goal(value, text: str, ok) -> dict:
    return {'value': value, 'goal': text, 'met': None if report['smoke'] else value is not None and ok(value)}

  cases = [c for c in report.get('train_step', {}).get('cases', []) if 'error' not in c]
  libri = [c['ms_per_step'] for c in cases if c['kind'] == 'sim' and c['batch'] == 8
           and c['samples'] == 20480 and c['dtype'] == 'float32']
  bf16 = [c['gflops'] / c['matmul_gflops'] for c in cases
          if c['batch'] == 256 and c['dtype'] == 'bfloat16' and c.get('matmul_gflops')]
  return {
      'reference_check_passes': report.get('reference_check', {}).get('passed'),
      'deboer_1000_epochs_minutes': goal(report.get('deboer_training', {}).get('deboer_1000_epochs_minutes'),
                                         '< 10', lambda v: v < 10),
      'librispeech_100_epochs_hours': goal(
          100 * LIBRISPEECH_TRAIN_STEPS_PER_EPOCH * libri[0] / 3.6e6 if libri else None, '< 1',
          lambda v: v < 1),
      'bf16_of_matmul_at_batch_256': goal(max(bf16, default=None), '>= 0.40', lambda v: v >= 0.4),
  }


if __name__ == '__main__':
  main()
