"""The original's evaluation stages re-stated in PyTorch, timed on this machine: the baseline for
`bench/stages.py` (which runs each case right after its own, through this file's --case).

Each case does what the original does per item (reference-semantics §5-§6), on random inputs of the
de Boer shapes, 512 channels:
  decoder  the Lightning `training_step` of decoder/lit_decoder.py: the frozen encoder's latents of
           conv module m under no_grad, the module's ConvTranspose1d stack (decoder/decoderr.py, ReLU
           between layers), MSE, one Adam step. items/s.
  score    decoder/interpolation_contribution_score.py's loop for P ordered pairs: the max error
           (every dimension swapped), then for k = 2 … 512 the k dimensions of largest squared
           mean difference swapped through its 10-step partial interpolation, every decode one item,
           the target decoded again each time: 20 decoder calls per pair. pairs/s.
  probe    one epoch of linear_classifiers/logistic_regression.py: per batch the encoder to the GRU
           context under no_grad (the original has no feature cache), time-average, Linear, cross-entropy,
           Adam. items/s.
  extract  the same encoder pass alone (what a feature cache saves per epoch). items/s.
On a GPU (where torch sees one, as the original) every case runs there, timed with synchronisation.

  /tmp/torch-venv/bin/python bench/baseline_pytorch_stages.py --case decoder '{"module": 2, "batch": 8}'
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from baseline_pytorch import (CHANNELS, DEVICE, LAYERS, SPLIT, ConvModule, GRUModule, nn, peak_gpu_gb,  # noqa: E402
                              synchronize, torch)

# The original's de Boer decoder architectures (config_code/sim_setup.py), per conv module:
# (kernel, stride, padding, output_padding) of each ConvTranspose1d.
DECODER_LAYERS = (
    ((8, 4, 2, 3), (3, 1, 1, 0), (3, 1, 1, 0), (10, 5, 2, 4), (3, 1, 1, 0), (3, 1, 1, 0)),
    ((4, 2, 2, 0), (4, 2, 2, 1), (8, 4, 2, 3), (10, 5, 2, 4)),
    ((4, 2, 1, 1), (4, 2, 2, 0), (4, 2, 2, 1), (8, 4, 2, 3), (10, 5, 2, 4)),
)
SAMPLES = 10240
SCORE_KS = (2, 4, 8, 16, 32, 64, 128, 256, 512)


def make_decoder(module: int) -> nn.Sequential:
  """decoderr.Decoder: ConvTranspose1d layers, ReLU between them, one output channel."""
  layers = []
  for j, (kernel, stride, padding, output_padding) in enumerate(DECODER_LAYERS[module]):
    last = j == len(DECODER_LAYERS[module]) - 1
    layers.append(nn.ConvTranspose1d(CHANNELS, 1 if last else CHANNELS, kernel, stride, padding, output_padding))
    if not last:
      layers.append(nn.ReLU())
  return nn.Sequential(*layers).to(DEVICE)


def make_encoder() -> nn.ModuleList:
  """The SIM stack of bench/baseline_pytorch.py (BatchNorm off, as the de Boer recipe)."""
  return nn.ModuleList([ConvModule(1, [LAYERS[j] for j in SPLIT[0]], True),
                        ConvModule(CHANNELS, [LAYERS[j] for j in SPLIT[1]], True),
                        ConvModule(CHANNELS, [LAYERS[j] for j in SPLIT[2]], True), GRUModule()]).to(DEVICE).eval()


@torch.no_grad()
def encode(encoder, audio, module: int):
  """forward_through_module: conv modules 0..module (their means), (B, 1, T) -> (B, C, L); module 3:
  the GRU context (B, L, H)."""
  x = audio
  for conv in encoder[:min(module, 2) + 1]:
    x = conv.mu(conv.encoder(x))
  return encoder[3].gru(x.permute(0, 2, 1))[0] if module == 3 else x


def timed(fn, repeats: int) -> float:
  """Seconds per call of fn after one warm-up call."""
  fn()
  synchronize()
  start = time.perf_counter()
  for _ in range(repeats):
    fn()
  synchronize()
  return (time.perf_counter() - start) / repeats


def decoder_case(module: int, batch: int, steps: int) -> dict:
  """LitDecoder.training_step + Adam on a (batch, 10240) batch, at the matmul precision
  decoder/train_decoder.py sets ('medium': bfloat16-based float32 matmuls where a GPU has them)."""
  torch.set_float32_matmul_precision('medium')
  encoder, decoder = make_encoder(), make_decoder(module)
  optimizer = torch.optim.Adam(decoder.parameters(), lr=2e-4)
  audio = torch.randn(batch, 1, SAMPLES, device=DEVICE) * 0.1

  def step():
    z = encode(encoder, audio, module).detach()
    loss = nn.functional.mse_loss(decoder(z), audio)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

  seconds = timed(step, steps)
  return dict(items_per_s=batch / seconds, ms_per_step=seconds * 1e3)


def interpolate_partial(z1, z2, indices, steps: int = 10):
  """The original's `_interpolate_partial`: `steps` copies of z1 whose dims `indices` move to z2."""
  out = torch.zeros((steps,) + z1.shape[1:], device=z1.device)
  for i in range(steps):
    val = i / (steps - 1)
    out[i] = z1.clone()
    out[i, indices] = z1[0, indices] * val + z2[0, indices] * (1 - val)
  return out


@torch.no_grad()
def score_case(module: int, pairs: int) -> dict:
  """The original's contribution-score loop over `pairs` ordered pairs of random latents."""
  decoder = make_decoder(module).eval()
  frames = {0: 511, 1: 129, 2: 64}[module]
  z = torch.randn(max(2, pairs + 1), CHANNELS, frames, device=DEVICE)

  def distance(z1, z2, k, max_err):
    mse = (z1.mean(axis=2) - z2.mean(axis=2)) ** 2
    dims = torch.argsort(mse.squeeze(), descending=True)[:k]
    z2_partial = interpolate_partial(z1, z2, dims)[-1 if max_err else 0]
    return torch.mean((decoder(z2_partial).squeeze() - decoder(z2).squeeze()) ** 2)

  def run():
    for p in range(pairs):
      z1, z2 = z[p:p + 1], z[p + 1:p + 2]
      distance(z1, z2, CHANNELS, True)
      for k in SCORE_KS:
        distance(z1, z2, k, False)

  seconds = timed(run, 1)
  return dict(pairs_per_s=pairs / seconds, decodes_per_s=pairs * 2 * (1 + len(SCORE_KS)) / seconds)


def probe_case(items: int, samples: int, batch: int, classes: int = 9) -> dict:
  """One epoch of the syllable probe on the GRU context, encoder included (as the original)."""
  encoder = make_encoder()
  linear = nn.Linear(encoder[3].gru.hidden_size, classes).to(DEVICE)
  optimizer = torch.optim.Adam(linear.parameters(), lr=1e-3)
  audio = torch.randn(batch, 1, samples, device=DEVICE) * 0.1
  labels = torch.randint(0, classes, (batch,), device=DEVICE)
  steps = -(-items // batch)

  def epoch():
    for _ in range(steps):
      c = encode(encoder, audio, 3).detach()  # (B, L, H)
      pooled = nn.functional.adaptive_avg_pool1d(c.permute(0, 2, 1), 1)[..., 0]
      loss = nn.functional.cross_entropy(linear(pooled), labels)
      optimizer.zero_grad()
      loss.backward()
      optimizer.step()

  seconds = timed(epoch, 1)
  return dict(seconds_per_epoch=seconds, items_per_s=steps * batch / seconds)


def extract_case(samples: int, batch: int, steps: int) -> dict:
  """The probe's encoder pass alone, batches of `batch` items."""
  encoder = make_encoder()
  audio = torch.randn(batch, 1, samples, device=DEVICE) * 0.1
  seconds = timed(lambda: encode(encoder, audio, 3), steps)
  return dict(items_per_s=batch / seconds)


CASES = {'decoder': lambda a: decoder_case(a['module'], a['batch'], a.get('steps', 1)),
         'score': lambda a: score_case(a['module'], a['pairs']),
         'probe': lambda a: probe_case(a['items'], a['samples'], a['batch']),
         'extract': lambda a: extract_case(a['samples'], a['batch'], a.get('steps', 2))}


def peak_rss_gb() -> float:
  """This process's peak resident memory since its exec (VmHWM: ru_maxrss would also count the
  parent's peak, inherited through fork)."""
  with open('/proc/self/status') as status:
    kb = next(int(line.split()[1]) for line in status if line.startswith('VmHWM:'))
  return kb / 1e6


def main():
  """Run one case and print its figures as one JSON line."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--case', nargs=2, metavar=('STAGE', 'JSON'), required=True,
                      help=f'one of {sorted(CASES)} and its settings as JSON')
  args = parser.parse_args()
  torch.manual_seed(0)
  result = CASES[args.case[0]](json.loads(args.case[1]))
  result.update(peak_gb=peak_rss_gb(), peak_gpu_gb=peak_gpu_gb(), device=str(DEVICE))
  print(json.dumps(result))


if __name__ == '__main__':
  main()
