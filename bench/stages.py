"""Speed of every stage after encoder training, at the real width (512 channels) on the de Boer shapes.

  python bench/stages.py                                        # every stage, JAX only
  python bench/stages.py --baseline-python /tmp/torch-venv/bin/python   # + the original's, speed-up per line
  python bench/stages.py --stages decoder --modules 0 --batches 64 --steps 1   # one case (its peak RSS)
  python bench/stages.py --stages decoder --modules 0 --batches 64 --compile-only --decoder-implementation plain

Stages (an untrained SIM encoder, BatchNorm off, and random decoder weights: speed does not depend
on the values):
  decoder  `decoder.train.train_step` as decode.py runs it (frozen encoder's latents of conv module
           m, the decoder, MSE, Adam), modules --modules at batches --batches. items/s. Each case
           twice: 'cached' starts from the latent cache (module 0's Gaussian, computed once per item:
           de Boer), 'recomputed' runs the encoder on the audio (cropped corpora; the original).
  score    `decoder.score.contribution_score` on random latents of module --score-module: pairs/s,
           from the difference of two call sizes (--score-batch and 3 × --score-batch pairs, the
           faster of two calls each, after a warm-up call) so per-call costs (each call compiles its
           batch function) drop out; where they outweigh the work (tiny widths), the whole call's rate.
  extract  `probe.features.extract` of the GRU context over the de Boer syllable train split (real
           audio, --root) at config.probe.extract_batch_size. items/s.
  probe    one epoch of `probe.linear.train_epoch` on those cached features (batch 64). items/s.
  tc       `analysis.entanglement.kde_total_correlation` (the original's sklearn KernelDensity beside
           it) and `gaussian_total_correlation` on --tc-vectors random 512-d vectors.
  tsne     `analysis.latents.tsne` of --tsne-items random 256-d vectors (sklearn's TSNE, as the original).

FLOPs are XLA:CPU's cost analysis of the lowered computation (on every backend): for the decoder, one --chunk of items'
forward + backward (encoder forward included, Adam not) scaled to the batch; for the score, one
decode per swapped latent; "of matmul" divides the achieved rate by a float32 matmul timed in the
same run. With --baseline-python each case is followed at once by the original's same stage
(bench/baseline_pytorch_stages.py; tc: sklearn in this Python), since this machine's speed drifts.
"""

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, 'bench'))

from train_step import flops_of, matmul_gflops, on_cpu  # noqa: E402


def seconds_per_call(fn, repeats: int) -> float:
  """Wall seconds per call of fn (which blocks on its result) after one warm-up call; repeats 0:
  the one call itself."""
  if repeats:
    fn()
  start = time.perf_counter()
  for _ in range(max(repeats, 1)):
    fn()
  return (time.perf_counter() - start) / max(repeats, 1)


def baseline(python: str | None, stage: str, settings: dict) -> dict | None:
  """The original's `stage` timed by bench/baseline_pytorch_stages.py in `python` (None: skipped)."""
  if not python:
    return None
  out = subprocess.run([python, os.path.join(REPO, 'bench', 'baseline_pytorch_stages.py'), '--case', stage,
                        json.dumps(settings)], capture_output=True, text=True)
  if out.returncode:
    print(f'  baseline {stage} {settings} failed: {out.stderr.strip().splitlines()[-1:]}')
    return None
  return json.loads(out.stdout)


class Report:
  """Prints one line per case: rate, GFLOP/s, share of the matmul rate, and the speed-up."""

  def __init__(self, peaks: dict[str, float]):
    self.peaks, self.rows = peaks, []
    print(f'{"stage":34s} {"rate":>14s} {"GFLOP/item":>10s} {"GFLOP/s":>8s} {"of matmul":>9s} '
          f'{"original":>14s} {"speed-up":>8s}')

  def line(self, name: str, rate: float, unit: str, flops_per_item: float = 0.0, base: float | None = None,
           precision: str = 'highest', **extra):
    """One case; `precision`: the float32 matmul precision the stage runs at, whose same-run matmul
    rate "of matmul" divides by."""
    gflops = rate * flops_per_item / 1e9
    text = (f'{name:34s} {rate:9.3g} {unit:4s} ' +
            (f'{flops_per_item / 1e9:10.2f} {gflops:8.1f} {gflops / self.peaks[precision]:9.0%} ' if flops_per_item
             else f'{"-":>10s} {"-":>8s} {"-":>9s} ') +
            (f'{base:9.3g} {unit:4s} {rate / base:7.2f}x' if base else ''))
    print(text, flush=True)
    self.rows.append(dict(stage=name, rate=rate, unit=unit, gflop_per_item=flops_per_item / 1e9,
                          gflops=gflops, matmul_gflops=self.peaks[precision], original_rate=base, **extra))


def make_encoder(channels: int):
  """An untrained real-size SIM encoder as load_trained_encoder returns one (BatchNorm off)."""
  import jax
  from sim_jax.config import load_config_file
  from sim_jax.state import create_train_state
  from sim_jax.workdir import TrainedEncoder
  config = load_config_file(os.path.join(REPO, 'configs', 'sim_deboer.py'))
  config.model.update(channels=channels, gru_hidden=channels // 2)
  encoder, state = create_train_state(config, jax.random.PRNGKey(0))
  variables = {'params': state.params}
  if getattr(state, 'batch_stats', None):
    variables['batch_stats'] = state.batch_stats
  return config, TrainedEncoder(config, encoder, variables, 0, '/bench')


def bench_decoder(report: Report, trained, args) -> None:
  """decoder.train.train_step per module and batch."""
  for module in args.modules:
    for batch in args.batches:
      decoder_case(report, trained, args, module, batch)


def decoder_case(report: Report, trained, args, module: int, batch: int) -> None:
  """decoder.train.train_step of conv module `module`'s decoder at `batch` items: from the latent
  cache, as decode.py trains on de Boer (items fixed), then recomputing the latents from the audio,
  as on cropped corpora (LibriSpeech, folders) and as the original does."""
  import jax
  import jax.numpy as jnp
  from sim_jax.decoder.latents import TRAIN_DRAWS, draw_key, latent_frames, latent_source, latent_prefix
  from sim_jax.decoder.nets import chunk_size, make_decoder
  from sim_jax.decoder.train import batch_latents, init_state, train_step
  implementation = args.decoder_implementation or trained.encoder.specs[0].implementation
  source = latent_source(trained, module, 'sample')
  decoder = make_decoder(module, args.channels, implementation)
  frames = latent_frames(trained, source, 10240)
  rng = np.random.default_rng(0)
  data = {'audio': np.asarray(rng.normal(size=(batch, 10240)) * 0.1, np.float32),
          'mask': np.ones(batch, np.float32), 'index': np.arange(batch, dtype=np.int32)}
  cache = jax.jit(functools.partial(latent_prefix, trained.encoder, source))(trained.variables, data['audio'])
  settings = dict(encoder=trained.encoder, source=source, decoder=decoder, loss='mse', learning_rate=2e-4)
  holder = {'state': init_state(jax.random.PRNGKey(0), decoder=decoder, width=args.channels, frames=frames,
                                learning_rate=2e-4), 'step': 0}
  chunk = chunk_size(implementation, batch)
  key0 = draw_key(0, TRAIN_DRAWS, 0, 0)
  base = None
  for cached in (True, False):
    step_cache = cache if cached else None

    def chunk_loss(params, variables, part, key, step_cache):  # one chunk: latents, decoder, gradient
      z = batch_latents(trained.encoder, source, variables, part, key, step_cache)
      return jnp.mean(jnp.square(decoder.apply({'params': params}, z) - part['audio']))

    part = {k: v[:chunk] for k, v in data.items()}
    flops = flops_of(jax.jit(jax.value_and_grad(chunk_loss)).lower(*on_cpu((
        holder['state'].params, trained.variables, part, key0, step_cache)))) / chunk
    compiled = train_step.lower(holder['state'], trained.variables, data, key0, step_cache, **settings).compile()
    memory = compiled.memory_analysis()
    temp_gb = memory.temp_size_in_bytes / 1e9 if memory else float('nan')
    name = (f'decoder step module {module} batch {batch}' + (' cached' if cached else ' recomputed')
            + (f' {implementation}' if args.decoder_implementation else ''))
    if args.compile_only:
      print(f'{name}: XLA temporaries {temp_gb:.2f} GB, {flops / 1e9:.1f} GFLOP/item (not run)', flush=True)
      continue

    def step(compiled=compiled, step_cache=step_cache):
      key = draw_key(0, TRAIN_DRAWS, 0, holder['step'])
      holder['state'], loss = compiled(holder['state'], trained.variables, data, key, step_cache)
      holder['step'] += 1
      jax.block_until_ready(loss)

    seconds = seconds_per_call(step, args.steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    if base is None:
      base = baseline(args.baseline_python, 'decoder', dict(module=module, batch=batch, steps=args.steps))
    report.line(name, batch / seconds, 'it/s', flops, base and base['items_per_s'], 'default', peak_rss_gb=peak,
                xla_temp_gb=temp_gb, original_peak_gb=base and base['peak_gb'],
                original_peak_gpu_gb=base and base['peak_gpu_gb'], cached=cached)
    print(f'  XLA temporaries {temp_gb:.2f} GB; peak RSS of this process so far {peak:.2f} GB'
          + (f'; original {base["peak_gb"]:.2f} GB' if base else ''), flush=True)


def bench_score(report: Report, trained, args) -> None:
  """decoder.score.contribution_score: pairs/s from the difference of two call sizes (best of two each)."""
  import jax
  from sim_jax.decoder import score
  from sim_jax.decoder.latents import latent_frames, latent_source
  from sim_jax.decoder.nets import make_decoder
  from sim_jax.decoder.train import init_state
  module, batch = args.score_module, args.score_batch
  source = latent_source(trained, module, 'sample')
  decoder = make_decoder(module, args.channels, trained.encoder.specs[0].implementation)
  frames = latent_frames(trained, source, 10240)
  params = init_state(jax.random.PRNGKey(0), decoder=decoder, width=args.channels, frames=frames,
                      learning_rate=2e-4).params
  variables = {'params': params}
  decode = jax.jit(decoder.apply)
  items = 4 * batch
  z = np.asarray(np.random.default_rng(0).normal(size=(items, frames, args.channels)), np.float32)
  ks = score.score_ks(args.channels)
  times = {batch: [], 3 * batch: []}
  for pairs in (batch,) + (batch, 3 * batch) * 2:  # the first call also compiles `decode` for the targets
    _, chosen = score.choose_pairs(items, items, pairs, 0)
    start = time.perf_counter()
    score.contribution_score(decode, variables, z, chosen, ks, batch)
    times[pairs].append(time.perf_counter() - start)
  first = times[batch].pop(0)
  small, large = min(times[batch]), min(times[3 * batch])
  # the difference drops the per-call costs; at tiny widths they can outweigh the work, then the whole call
  rate = 2 * batch / (large - small) if large > small else 3 * batch / large
  decodes = sum(k < args.channels for k in ks)  # decoded latents per pair (k = width is not decoded)
  flops = flops_of(decode.lower(*on_cpu((variables, z[:batch])))) / batch * decodes
  base = baseline(args.baseline_python, 'score', dict(module=module, pairs=args.score_baseline_pairs))
  report.line(f'score module {module} batch {batch}', rate, 'pr/s', flops, base and base['pairs_per_s'], 'default',
              first_call_seconds=first, rate_from='difference' if large > small else 'whole call')


def bench_probe(report: Report, trained, config, args) -> None:
  """Feature extraction over the syllable train split, then one probe epoch on the features."""
  import jax
  from sim_jax.data import make_source
  from sim_jax.probe import linear
  from sim_jax.probe.features import compute_features, extract, feature_source
  config.data.root = args.root
  data_source = make_source(config.data, 'train', 'syllables')
  source = feature_source(trained, 'context')
  batch = config.probe.extract_batch_size
  start = time.perf_counter()
  features = extract(trained, source, data_source, batch_size=batch, epoch=0, seed=0)
  first = time.perf_counter() - start  # compilation included: extract runs once per split
  seconds = first
  if first < 60:  # where compiling is a large share (an accelerator), the rate of a second, warm pass
    start = time.perf_counter()
    extract(trained, source, data_source, batch_size=batch, epoch=0, seed=0)
    seconds = time.perf_counter() - start
  samples = data_source.item_length
  audio = np.zeros((batch, samples), np.float32)
  flops = flops_of(compute_features.lower(trained.encoder, (source,), False, *on_cpu((
      trained.variables, audio, np.full(batch, samples), jax.random.PRNGKey(0))))) / batch
  n = len(data_source)
  base = baseline(args.baseline_python, 'extract', dict(samples=samples, batch=batch))
  report.line(f'feature extraction ({n} syllables)', n / seconds, 'it/s', flops, base and base['items_per_s'],
              first_call_seconds=first)

  labels = np.asarray(data_source.labels['syllable'], np.int32)
  data = linear.ProbeData.pooled(features.pooled, labels)
  spec = linear.ProbeSpec(dim=source.dim, num_classes=9, bias=True)
  params = linear.init_probe(jax.random.PRNGKey(0), spec)
  tx = linear.make_optimizer(1e-3)
  step = linear.make_train_step(tx)
  norm = linear.identity_norm(source.dim)
  items = data.trainable_items()
  state = {'params': params, 'opt': tx.init(params)}

  def epoch():
    state['params'], state['opt'], _ = linear.train_epoch(step, state['params'], state['opt'], norm, data, items,
                                                          64, 0)

  seconds = seconds_per_call(epoch, 3)
  # the original's epoch re-runs the encoder: its rate from 4 batches (an epoch is minutes)
  base = baseline(args.baseline_python, 'probe', dict(items=min(len(items), 256), samples=samples, batch=64))
  report.line(f'probe epoch ({len(items)} cached items)', len(items) / seconds, 'it/s', 0.0,
              base and base['items_per_s'], seconds_per_epoch=seconds)


def bench_tc(report: Report, args) -> None:
  """KDE total correlation (ours and sklearn's KernelDensity, the original's) and the Gaussian one."""
  from sim_jax.analysis import entanglement
  x = np.random.default_rng(0).normal(size=(args.tc_vectors, 512)).astype(np.float32)
  seconds = seconds_per_call(lambda: entanglement.kde_total_correlation(x, 0.1), 1)
  base = None
  if args.baseline_python:
    from sklearn.neighbors import KernelDensity

    def original():  # main_total_correlation._calculate_total_correlation
      marginals = sum(-KernelDensity(kernel='gaussian', bandwidth=0.1).fit(x[:, i:i + 1]).score_samples(
          x[:, i:i + 1]).mean() for i in range(x.shape[1]))
      joint = -KernelDensity(kernel='gaussian', bandwidth=0.1).fit(x).score_samples(x).mean()
      return marginals - joint

    start = time.perf_counter()
    original()
    base = 1 / (time.perf_counter() - start)
  report.line(f'KDE total correlation {args.tc_vectors}x512', 1 / seconds, 'es/s', 0.0, base)
  seconds = seconds_per_call(lambda: entanglement.gaussian_total_correlation(x), 2)
  report.line(f'Gaussian total correlation {args.tc_vectors}x512', 1 / seconds, 'es/s')


def bench_tsne(report: Report, args) -> None:
  """t-SNE of random 256-d vectors with the analysis's settings (sklearn's TSNE, as the original)."""
  from sim_jax.analysis.latents import tsne
  x = np.random.default_rng(0).normal(size=(args.tsne_items, 256)).astype(np.float32)
  start = time.perf_counter()
  tsne(x, 0.0, 1000, 0)
  report.line(f't-SNE {args.tsne_items} items', args.tsne_items / (time.perf_counter() - start), 'it/s')


STAGES = ('decoder', 'score', 'extract', 'tc', 'tsne')


def main():
  """Run the chosen stages and print a table (and write it as JSON with --json)."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--stages', nargs='+', default=list(STAGES), choices=STAGES,
                      help='extract also runs the probe epoch on the extracted features')
  parser.add_argument('--root', default=os.path.join(os.path.dirname(REPO), 'shared', 'data', 'de_boer'))
  parser.add_argument('--channels', type=int, default=512)
  parser.add_argument('--modules', nargs='+', type=int, default=[0, 2])
  parser.add_argument('--batches', nargs='+', type=int, default=[8, 64])
  parser.add_argument('--steps', type=int, default=2, help='timed decoder steps (after a warm-up; 0: one, none)')
  parser.add_argument('--decoder-implementation', choices=('cpu', 'plain'),
                      help="the decoder's formulation (default: the encoder's, 'cpu' on XLA:CPU)")
  parser.add_argument('--compile-only', action='store_true',
                      help="decoder: print XLA's memory analysis and FLOPs of each step, without running it")
  parser.add_argument('--score-module', type=int, default=0)
  parser.add_argument('--score-batch', type=int, default=8)
  parser.add_argument('--score-baseline-pairs', type=int, default=2)
  parser.add_argument('--tc-vectors', type=int, default=5000, help='the (512, 5, 1000) setting: 5000 vectors')
  parser.add_argument('--tsne-items', type=int, default=2181, help='the syllable train split')
  parser.add_argument('--json', help='also write the results to this file')
  parser.add_argument('--baseline-python', help='a Python with torch: also time the original\'s stages')
  args = parser.parse_args()
  if args.baseline_python and args.channels != 512:
    parser.error('the baseline is the real width: use --channels 512 with --baseline-python')

  import jax
  # the encoder runs at 'highest' (model.matmul_precision), the decoder at XLA's default (TF32 on
  # NVIDIA GPUs; the same float32 matmul on the CPU)
  peaks = {'highest': matmul_gflops('float32')}
  peaks['default'] = peaks['highest'] if jax.default_backend() == 'cpu' else matmul_gflops('float32',
                                                                                         precision='default')
  print(f'device: {jax.devices()[0].device_kind}; float32 matmul {peaks["highest"]:.1f} GFLOP/s '
        f'(default precision {peaks["default"]:.1f}); {args.channels} channels', flush=True)
  report = Report(peaks)
  config, trained = make_encoder(args.channels)
  for stage in args.stages:
    if stage == 'decoder':
      bench_decoder(report, trained, args)
    elif stage == 'score':
      bench_score(report, trained, args)
    elif stage == 'extract':
      bench_probe(report, trained, config, args)
    elif stage == 'tc':
      bench_tc(report, args)
    else:
      bench_tsne(report, args)
  if args.json:
    from sim_jax import io
    io.write_json(args.json, {'device': jax.devices()[0].device_kind, 'matmul_gflops': peaks,
                              'channels': args.channels, 'rows': report.rows})


if __name__ == '__main__':
  main()
