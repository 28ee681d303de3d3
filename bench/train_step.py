"""Train-step throughput of the real-size (512-channel) encoder on this machine.

  python bench/train_step.py                      # SIM and GIM: B=8/64 x 10240 samples, B=8 x 20480
  python bench/train_step.py --kinds sim --cases 8x10240 --steps 3
  python bench/train_step.py --baseline-python /tmp/torch-venv/bin/python   # + the PyTorch baseline

Prints per case: samples/s, ms/step, peak memory (RSS of a fresh process per case), the model's
FLOPs per item (XLA's cost analysis of the lowered step: forward + backward + Adam, four modules
with their predictors) and the achieved GFLOP/s next to a float32 matmul measured in the same run.
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

CASE = '''
import json, resource, sys, time
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from sim_jax.config import base_config
from sim_jax.train.step import compile_on_first_call, create_train_state, make_mesh, make_train_step
kind, batch, samples, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
config = base_config('deboer', kind)
config.model.use_batch_norm = False
mesh = make_mesh()
encoder, state = create_train_state(config, jax.random.PRNGKey(0))
state = jax.device_put(state, NamedSharding(mesh, P()))
audio = jax.device_put(np.asarray(np.random.default_rng(0).normal(size=(batch, samples)) * 0.1, np.float32),
                       NamedSharding(mesh, P('data')))
jitted = make_train_step(config, encoder, mesh, (0, 1, 2, 3))
cost = jitted.lower(state, {'audio': audio}, jax.random.PRNGKey(0)).cost_analysis()
cost = cost[0] if isinstance(cost, (list, tuple)) else cost
flops = float(cost.get('flops', 0.0))
step = compile_on_first_call(jitted)  # as the training loop runs it
state, m = step(state, {'audio': audio}, jax.random.PRNGKey(0))
jax.block_until_ready(m)
t = time.perf_counter()
for i in range(steps):
  state, m = step(state, {'audio': audio}, jax.random.PRNGKey(i + 1))
jax.block_until_ready(m)
dt = (time.perf_counter() - t) / steps
print(json.dumps(dict(kind=kind, batch=batch, samples=samples, ms_per_step=dt * 1e3,
                      samples_per_s=batch / dt, gflop_per_item=flops / batch / 1e9,
                      gflops=flops / dt / 1e9, peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                      loss=np.asarray(m['total']).round(3).tolist())))
'''


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
  """float32 matmul rate of this machine through XLA (the practical ceiling)."""
  import jax
  import jax.numpy as jnp
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda x: x @ x)
  f(a).block_until_ready()
  t = time.perf_counter()
  for _ in range(repeats):
    f(a).block_until_ready()
  return 2 * n ** 3 * repeats / (time.perf_counter() - t) / 1e9


def main():
  """Run every case in its own process (clean peak-memory figures) and print a table."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--kinds', nargs='+', default=['sim', 'gim'])
  parser.add_argument('--cases', nargs='+', default=['8x10240', '64x10240', '8x20480'])
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--baseline-python', help='a Python with torch: also time bench/baseline_pytorch.py')
  args = parser.parse_args()
  if args.baseline_python and subprocess.run([args.baseline_python, '-c', 'import torch'],
                                             capture_output=True).returncode:
    parser.error(f'--baseline-python {args.baseline_python} cannot import torch; set one up as '
                 'bench/baseline_pytorch.py says')
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  peak = matmul_gflops()
  print(f'device: {__import__("jax").devices()[0].device_kind}; float32 matmul: {peak:.1f} GFLOP/s')
  print(f'{"model":5s} {"batch":>5s} {"samples":>7s} {"samples/s":>9s} {"ms/step":>9s} {"GFLOP/item":>10s} '
        f'{"GFLOP/s":>8s} {"of matmul":>9s} {"peak GB":>7s}'
        + (f' {"torch/s":>8s} {"speed-up":>8s} {"torch GB":>8s}' if args.baseline_python else ''))
  for kind in args.kinds:
    for case in args.cases:
      batch, samples = (int(x) for x in case.split('x'))
      out = subprocess.run([sys.executable, '-c', CASE, kind, str(batch), str(samples), str(args.steps)],
                           cwd=repo, env=dict(os.environ, PYTHONPATH=repo), capture_output=True, text=True)
      if out.returncode:
        print(f'{kind} {case}: failed\n{out.stderr[-2000:]}')
        continue
      r = json.loads(out.stdout.strip().splitlines()[-1])
      line = (f'{kind:5s} {batch:5d} {samples:7d} {r["samples_per_s"]:9.2f} {r["ms_per_step"]:9.0f} '
              f'{r["gflop_per_item"]:10.1f} {r["gflops"]:8.1f} {r["gflops"] / peak:9.0%} {r["peak_gb"]:7.2f}')
      if args.baseline_python:
        base = subprocess.run([args.baseline_python, os.path.join(repo, 'bench', 'baseline_pytorch.py'),
                               '--case', kind, str(batch), str(samples), '--steps', str(args.steps)],
                              capture_output=True, text=True, check=True)
        b = json.loads(base.stdout)
        line += (f' {b["samples_per_s"]:8.2f} {r["samples_per_s"] / b["samples_per_s"]:7.2f}x'
                 f' {b["peak_gb"]:8.2f}')
      print(line, flush=True)


if __name__ == '__main__':
  main()
