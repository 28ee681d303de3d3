"""Train-step throughput of the real-size (512-channel) encoder on this machine.

  python bench/train_step.py                      # SIM and GIM: B=8/64 x 10240 samples, B=8 x 20480
  python bench/train_step.py --kinds sim --cases 8x10240 --steps 3
  python bench/train_step.py --baseline-python /tmp/torch-venv/bin/python   # + the PyTorch baseline
  python bench/train_step.py --cases 64x10240 256x10240 --dtypes float32 bfloat16 --one-process --json r.json

Prints per case: samples/s, ms/step, peak memory (RSS of a fresh process per case), the model's
FLOPs per item (XLA:CPU's cost analysis of the lowered step, on every backend: forward + backward + Adam, four modules
with their predictors) and the achieved GFLOP/s next to a matmul of the step's dtype (--dtypes:
config.model.compute_dtype) measured in the same run.
With --baseline-python (a Python that has torch, see bench/baseline_pytorch.py), each case is followed
at once by the same case of the original's step in PyTorch, and the table adds its samples/s, the
speed-up and its peak memory: figures taken minutes apart on the same machine, as this machine's
speed drifts by tens of percent over an hour.
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CASE = '''
import json, resource, sys, time
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from sim_jax.config import base_config
from sim_jax.parallel import make_mesh
from sim_jax.state import create_train_state
from sim_jax.train.step import compile_on_first_call, make_train_step
sys.path.insert(0, 'bench')
from train_step import flops_of, on_cpu
for case in json.loads(sys.argv[1]):
  kind, batch, samples, steps = case['kind'], case['batch'], case['samples'], case['steps']
  config = base_config('deboer', kind)
  config.model.use_batch_norm = False
  config.model.update(dict(compute_dtype=case['dtype'], channels=case['channels'],
                           gru_hidden=case['gru_hidden']))
  mesh = make_mesh()
  encoder, state = create_train_state(config, jax.random.PRNGKey(0))
  state = jax.device_put(state, NamedSharding(mesh, P()))
  audio = jax.device_put(np.asarray(np.random.default_rng(0).normal(size=(batch, samples)) * 0.1, np.float32),
                         NamedSharding(mesh, P('data')))
  jitted = make_train_step(config, encoder, mesh, (0, 1, 2, 3))
  cpu_mesh = Mesh(np.asarray(jax.devices('cpu')[:1]), ('data',))  # the count is the same on every backend
  flops = flops_of(make_train_step(config, encoder, cpu_mesh, (0, 1, 2, 3)).lower(
      on_cpu(state), {'audio': on_cpu(audio)}, on_cpu(jax.random.PRNGKey(0))))
  step = compile_on_first_call(jitted)  # as the training loop runs it
  state, m = step(state, {'audio': audio}, jax.random.PRNGKey(0))
  jax.block_until_ready(m)
  t = time.perf_counter()
  for i in range(steps):
    state, m = step(state, {'audio': audio}, jax.random.PRNGKey(i + 1))
  jax.block_until_ready(m)
  dt = (time.perf_counter() - t) / steps
  print(json.dumps(dict(case, ms_per_step=dt * 1e3, samples_per_s=batch / dt,
                        gflop_per_item=flops / batch / 1e9, gflops=flops / dt / 1e9,
                        peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                        device_peak_gb=(jax.devices()[0].memory_stats() or {}).get('peak_bytes_in_use', 0) / 1e9
                        or None,
                        loss=np.asarray(m['total']).round(3).tolist())), flush=True)
'''


def on_cpu(tree):
  """`tree` committed to the first CPU device, so that jit lowers for XLA:CPU whatever the default
  backend: its cost analysis counts every op, while XLA:GPU's gives none before compiling and, after,
  leaves out the library calls (cuDNN convolutions, cuBLAS matmuls) that do most of the work."""
  import jax
  return jax.device_put(tree, jax.devices('cpu')[0])


def flops_of(lowered) -> float:
  """XLA's FLOP count of a computation lowered for the CPU (arguments from `on_cpu`)."""
  cost = lowered.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get('flops', 0.0))


def matmul_gflops(dtype: str = 'float32', n: int = 0, seconds: float = 1.0, precision: str = 'highest') -> float:
  """The matmul rate of this machine through XLA in `dtype` (the practical ceiling), on random data,
  at `precision` (default 'highest', the step's policy: no TF32; 'default' is XLA's fast float32,
  TF32 on NVIDIA GPUs). n: matrix size (0: 2048 on CPU, 8192 on accelerators)."""
  import jax
  import jax.numpy as jnp
  n = n or (2048 if jax.default_backend() == 'cpu' else 8192)
  a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
  f = jax.jit(lambda x: jnp.matmul(x, x, precision=precision))
  f(a).block_until_ready()
  repeats, t = 0, time.perf_counter()
  while time.perf_counter() - t < seconds or repeats < 3:
    f(a).block_until_ready()
    repeats += 1
  return 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e9


def repo_env() -> dict:
  """This environment with the repository first on PYTHONPATH, for the bench's child processes (what
  was there stays: bench/device_check.sh's folder of installed wheels)."""
  return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get('PYTHONPATH')])))


def run_cases(cases: list[dict]) -> list[dict]:
  """The figures (dicts) of `cases`, all run in one fresh process; a failed case gets 'error'."""
  out = subprocess.run([sys.executable, '-c', CASE, json.dumps(cases)], cwd=REPO, env=repo_env(),
                       capture_output=True, text=True)
  results = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{')]
  if out.returncode:
    failed = cases[len(results)]
    results.append(dict(failed, error=out.stderr[-2000:]))
    print(f'{failed["kind"]} {failed["batch"]}x{failed["samples"]} {failed["dtype"]}: failed\n'
          f'{out.stderr[-2000:]}')
  return results


def main():
  """Run every case and print a table (and write it as JSON with --json)."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--kinds', nargs='+', default=['sim', 'gim'])
  parser.add_argument('--cases', nargs='+', default=['8x10240', '64x10240', '8x20480'])
  parser.add_argument('--dtypes', nargs='+', default=['float32'], choices=['float32', 'bfloat16'],
                      help='config.model.compute_dtype of the step (and of the matmul it is compared with)')
  parser.add_argument('--channels', type=int, default=512, help='model width (GRU: half of it)')
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--one-process', action='store_true', help='all cases in one process (faster)')
  parser.add_argument('--json', help='also write the results to this file')
  parser.add_argument('--baseline-python', help='a Python with torch: also time bench/baseline_pytorch.py')
  args = parser.parse_args()
  if args.baseline_python and subprocess.run([args.baseline_python, '-c', 'import torch'],
                                             capture_output=True).returncode:
    parser.error(f'--baseline-python {args.baseline_python} cannot import torch; set one up as '
                 'bench/baseline_pytorch.py says')
  peaks = {dtype: matmul_gflops(dtype) for dtype in args.dtypes}
  import jax
  print(f'device: {jax.devices()[0].device_kind}; matmul: ' +
        ', '.join(f'{d} {p:.1f} GFLOP/s' for d, p in peaks.items()))
  cases = [dict(kind=kind, batch=int(case.split('x')[0]), samples=int(case.split('x')[1]), dtype=dtype,
                steps=args.steps, channels=args.channels, gru_hidden=args.channels // 2)
           for kind in args.kinds for case in args.cases for dtype in args.dtypes]
  # peak GB: this process's RSS on the CPU; on an accelerator the device's peak where it reports one
  print(f'{"model":5s} {"batch":>5s} {"samples":>7s} {"dtype":>8s} {"samples/s":>9s} {"ms/step":>9s} '
        f'{"GFLOP/item":>10s} {"GFLOP/s":>8s} {"of matmul":>9s} {"peak GB":>7s}'
        + (f' {"torch/s":>8s} {"speed-up":>8s} {"torch GB":>8s}' if args.baseline_python else ''))
  results, baselines = [], {}
  # each case in a fresh process (clean peak-memory figures), or all in one (no process start and
  # jax import per case; peak memory is then cumulative)
  for group in ([cases] if args.one_process else [[c] for c in cases]):
    for r in run_cases(group):
      results.append(r)
      if 'error' in r:
        continue
      r['matmul_gflops'] = peaks[r['dtype']]
      line = (f'{r["kind"]:5s} {r["batch"]:5d} {r["samples"]:7d} {r["dtype"]:>8s} {r["samples_per_s"]:9.2f} '
              f'{r["ms_per_step"]:9.1f} {r["gflop_per_item"]:10.1f} {r["gflops"]:8.1f} '
              f'{r["gflops"] / peaks[r["dtype"]]:9.0%} {r["device_peak_gb"] or r["peak_gb"]:7.2f}')
      if args.baseline_python:
        key = (r['kind'], r['batch'], r['samples'])  # the original has one dtype: timed once per shape
        if key not in baselines:
          base = subprocess.run([args.baseline_python, os.path.join(REPO, 'bench', 'baseline_pytorch.py'),
                                 '--case', r['kind'], str(r['batch']), str(r['samples']), '--steps',
                                 str(args.steps)], capture_output=True, text=True)
          baselines[key] = json.loads(base.stdout) if base.returncode == 0 else None
          if base.returncode:
            print(f'baseline {key} failed: {base.stderr[-1500:]}')
        b = r['original'] = baselines[key]
        if b:
          line += (f' {b["samples_per_s"]:8.2f} {r["samples_per_s"] / b["samples_per_s"]:7.2f}x'
                   f' {b["peak_gpu_gb"] or b["peak_gb"]:8.2f}')
      print(line, flush=True)
  if args.json:
    from sim_jax import io  # noqa: E402 (the repo root is on sys.path)
    io.write_json(args.json, {'device': jax.devices()[0].device_kind, 'backend': jax.default_backend(),
                              'matmul_gflops': peaks, 'cases': results})


if __name__ == '__main__':
  main()
