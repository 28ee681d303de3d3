"""The original's train step, re-stated in PyTorch, timed on this machine: the baseline for
`bench/train_step.py`, since the original's published timings come from another machine.

It does the original's arithmetic the original's way (reference-semantics §1-§3): the 4-module stack
(BatchNorm off), each module's predictor Linear over the 128-frame window, the 10 negatives as a
(B*L, C, 10) tensor of permuted rows, a Python loop over the K = 10 steps with batched matvecs and
LogSoftmax, KL summed over time, one Adam over every parameter, random 10240-sample inputs.
It runs where the original runs: on the GPU when torch sees one (timed with synchronisation; peak
GPU memory reported beside peak RSS), else on the CPU.
PyTorch is not a dependency of sim-jax; run this from a separate environment:

  python3 -m venv /tmp/torch-venv && /tmp/torch-venv/bin/pip install torch==2.13.0 numpy
  /tmp/torch-venv/bin/python bench/baseline_pytorch.py                  # SIM and GIM, B=8 and 64
  /tmp/torch-venv/bin/python bench/baseline_pytorch.py --kinds sim --batches 8 --steps 3
"""

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

try:
  import torch
  from torch import nn
except ImportError:
  sys.exit(f'{sys.executable} has no torch (not a sim-jax dependency): set up a venv with it as this '
           "file's docstring says")

CHANNELS, HIDDEN, STEPS, NEGATIVES, WINDOW = 512, 256, 10, 10, 128
DEVICE = torch.device('cuda' if torch.cuda.is_available() else 'cpu')  # the original's own choice
LAYERS = ((10, 5, 2), (8, 4, 2), (4, 2, 2), (4, 2, 2), (4, 2, 1))  # (kernel, stride, padding)
SPLIT = ((0, 1), (2, 3), (4,))


class InfoNCE(nn.Module):
  """Bilinear predictions of K future frames against the positive and 10 permuted negatives."""

  def __init__(self, context_dim: int):
    super().__init__()
    self.predictor = nn.Linear(context_dim, CHANNELS * STEPS, bias=False)

  def forward(self, z, c):  # z (B, L, C), c (B, L, H)
    batch = z.shape[0]
    full = z.reshape(-1, CHANNELS)
    if c.shape[1] > WINDOW:
      start = np.random.randint(0, c.shape[1] - WINDOW)
      c, z = c[:, start:start + WINDOW], z[:, start:start + WINDOW]
    length = z.shape[1]
    predictions = self.predictor(c)
    negatives = torch.stack([full[torch.randperm(full.shape[0], device=full.device)] for _ in range(NEGATIVES)], dim=2)
    loss = 0.0
    for k in range(1, STEPS + 1):
      pred = predictions[:, :-k, (k - 1) * CHANNELS:k * CHANNELS].reshape(-1, 1, CHANNELS)
      target = z[:, k:].reshape(-1, CHANNELS, 1)
      pos = torch.matmul(pred, target).squeeze(1)
      neg = torch.matmul(pred, negatives[negatives.shape[0] - pred.shape[0]:]).squeeze(1)
      log_p = torch.log_softmax(torch.cat([pos, neg], dim=1), dim=1)[:, 0]
      loss = loss - log_p.sum() / ((length - k) * batch)
    return loss / STEPS


class ConvModule(nn.Module):
  """Conv + ReLU blocks, mean and log-variance heads, and the module's InfoNCE."""

  def __init__(self, in_channels: int, layers, gaussian: bool):
    super().__init__()
    blocks = []
    for kernel, stride, padding in layers:
      blocks += [nn.Conv1d(in_channels, CHANNELS, kernel, stride, padding), nn.ReLU()]
      in_channels = CHANNELS
    self.encoder = nn.Sequential(*blocks)
    self.mu, self.logvar = nn.Conv1d(CHANNELS, CHANNELS, 1), nn.Conv1d(CHANNELS, CHANNELS, 1)
    self.loss, self.gaussian = InfoNCE(CHANNELS), gaussian

  def forward(self, x):  # x (B, C_in, T)
    h = self.encoder(x)
    mu, logvar = self.mu(h).permute(0, 2, 1), self.logvar(h).permute(0, 2, 1)
    if not self.gaussian:
      return self.loss(mu, mu), mu
    std = torch.exp(0.5 * logvar)
    c, z = mu + std * torch.randn_like(std), mu + std * torch.randn_like(std)
    kl = torch.mean(torch.sum(-0.5 * (1 + logvar - mu ** 2 - logvar.exp()), dim=1))
    return self.loss(z, c) + 0.01 * kl, z


class GRUModule(nn.Module):
  """GRU context over the previous module's output, and its InfoNCE."""

  def __init__(self):
    super().__init__()
    self.gru, self.loss = nn.GRU(CHANNELS, HIDDEN, batch_first=True), InfoNCE(HIDDEN)

  def forward(self, x):  # x (B, C, L)
    z = x.permute(0, 2, 1)
    return self.loss(z, self.gru(z)[0]), z


def synchronize() -> None:
  """Waits for the GPU's queued work (a no-op on the CPU), so that host clocks time the work."""
  if DEVICE.type == 'cuda':
    torch.cuda.synchronize()


def peak_gpu_gb() -> float | None:
  """Peak GPU memory PyTorch allocated in this process (None on the CPU)."""
  return torch.cuda.max_memory_allocated() / 1e9 if DEVICE.type == 'cuda' else None


def run_case(kind: str, batch: int, samples: int, steps: int) -> dict:
  """Time `steps` train steps (after one warm-up step) in this process."""
  torch.manual_seed(0)
  np.random.seed(0)
  gaussian = kind == 'sim'
  modules = nn.ModuleList([ConvModule(1, [LAYERS[j] for j in SPLIT[0]], gaussian),
                           ConvModule(CHANNELS, [LAYERS[j] for j in SPLIT[1]], gaussian),
                           ConvModule(CHANNELS, [LAYERS[j] for j in SPLIT[2]], gaussian), GRUModule()]).to(DEVICE)
  optimizer = torch.optim.Adam(modules.parameters(), lr=2e-4)
  audio = torch.randn(batch, 1, samples, device=DEVICE) * 0.1

  def step():
    x, losses = audio, []
    for module in modules:
      loss, z = module(x)
      losses.append(loss)
      x = z.permute(0, 2, 1).detach()
    optimizer.zero_grad()
    sum(losses).backward()
    optimizer.step()

  step()
  synchronize()
  start = time.perf_counter()
  for _ in range(steps):
    step()
  synchronize()
  seconds = (time.perf_counter() - start) / steps
  return dict(kind=kind, batch=batch, samples=samples, samples_per_s=batch / seconds,
              ms_per_step=seconds * 1e3, peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
              peak_gpu_gb=peak_gpu_gb(), device=str(DEVICE))


def main():
  """Every case in a fresh process (clean peak-memory figures), printed as a table."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--kinds', nargs='+', default=['sim', 'gim'])
  parser.add_argument('--batches', nargs='+', type=int, default=[8, 64])
  parser.add_argument('--samples', type=int, default=10240)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--case', nargs=3, metavar=('KIND', 'BATCH', 'SAMPLES'),
                      help='run one case in this process and print it as JSON (used by bench/train_step.py)')
  args = parser.parse_args()
  if args.case:
    print(json.dumps(run_case(args.case[0], int(args.case[1]), int(args.case[2]), args.steps)))
    return
  n = 2048 if DEVICE.type == 'cpu' else 8192
  a = torch.randn(n, n, device=DEVICE)
  a @ a
  synchronize()
  start = time.perf_counter()
  for _ in range(5):
    a @ a
  synchronize()
  print(f'torch {torch.__version__} on {DEVICE}, {torch.get_num_threads()} threads; float32 matmul: '
        f'{2 * n ** 3 * 5 / (time.perf_counter() - start) / 1e9:.1f} GFLOP/s')
  print(f'{"model":5s} {"batch":>5s} {"samples":>7s} {"samples/s":>9s} {"ms/step":>9s} {"peak GB":>7s}')
  for kind in args.kinds:
    for batch in args.batches:
      out = subprocess.run([sys.executable, __file__, '--case', kind, str(batch), str(args.samples),
                            '--steps', str(args.steps)], capture_output=True, text=True, check=True)
      r = json.loads(out.stdout)
      print(f'{kind:5s} {batch:5d} {args.samples:7d} {r["samples_per_s"]:9.2f} {r["ms_per_step"]:9.0f} '
            f'{r["peak_gb"]:7.2f}', flush=True)


if __name__ == '__main__':
  main()
