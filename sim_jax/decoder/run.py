"""The decoder stage end to end: train (or resume) the decoder of one conv module, then write what
a listener needs into `<workdir>/decoder/module_<i>/`:

  reconstructions/   test items: <name>_original.wav, <name>_decoded.wav, <name>.png (waveforms and
                     spectrograms, original beside reconstruction)
  samples/           SIM only: latents drawn from N(0, I), decoded (sample_<n>.wav, samples.png)
  traversals/        interpolation, partial interpolation and dimension sweeps (WAVs + figures)
  results.json       reconstruction error (test split), the contribution-score numbers, the eval_decoder
                     notebook's interpolation concentration (the paper's figure), settings
  score_curve.png    relative error vs k of the interpolation contribution score
  outputs.json       manifest of the WAV / PNG files by section, for the HTML report
  loss_curve.png, metrics.jsonl, checkpoints/, best/   training (see train.py)
"""

import functools
import glob
import os

import jax
import numpy as np

from sim_jax import data as data_lib
from sim_jax import io
from sim_jax import workdir as workdir_lib
from sim_jax.decoder import concentration, media, score, traversals
from sim_jax.decoder.latents import OUTPUT_DRAWS, LatentSource, draw_key, latent_source, latents
from sim_jax.decoder.train import train_decoder
from sim_jax.probe.tasks import make_task


class _Stage:
  """The trained pieces every output needs: batched encode / decode of items, where to write."""

  def __init__(self, config, trained, source: LatentSource, decoder, params, out_dir: str):
    self.cfg = config.decoder
    self.source = source
    self.out_dir = out_dir
    self.variables = {'params': params}  # the decoder's variables
    self._encode = jax.jit(functools.partial(latents, trained.encoder, source, trained.variables))
    self.decode_fn = jax.jit(decoder.apply)  # (variables, z (B, L, C)) -> (B, T)

  def encode_items(self, data_source, indices, stream: int) -> tuple[np.ndarray, np.ndarray]:
    """Audio (n, T) and latents (n, L, C) of items `indices` of `data_source`; SIM draws from
    `draw_key(seed, OUTPUT_DRAWS, stream)` and each item's index (one stream per output, so the two
    ends of an interpolation never share noise)."""
    indices = np.asarray(indices, np.int32)
    audio = data_source.load(indices, data_lib.crop_key(self.cfg.seed, 0, 0))['audio']
    key = draw_key(self.cfg.seed, OUTPUT_DRAWS, stream)
    z = score.map_batches(lambda a, i: self._encode(a, key, i), audio, self.cfg.batch_size, indices)
    return audio, z

  def decode(self, z) -> np.ndarray:
    """Waveforms (n, T) of latents (n, L, C)."""
    return score.map_batches(lambda x: self.decode_fn(self.variables, x), z, self.cfg.batch_size)

  def wav(self, rel_path: str, audio, label: str) -> dict:
    """Write one WAV under the module folder; its manifest entry."""
    media.write_wav(os.path.join(self.out_dir, rel_path), audio)
    return {'path': rel_path, 'type': 'wav', 'label': label}

  def path(self, rel_path: str) -> str:
    """Absolute path of a file of the module folder."""
    return os.path.join(self.out_dir, rel_path)


def _section(name: str, title: str, files: list, note: str = '') -> dict:
  return {'name': name, 'title': title, 'note': note, 'files': files}


def _figure(rel_path: str, label: str) -> dict:
  """The manifest entry of a figure saved at `rel_path` in the module folder."""
  return {'path': rel_path, 'type': 'png', 'label': label}


def write_reconstructions(stage: _Stage, test_source) -> dict:
  """The first `num_reconstructions` test items, original and decoded, with a comparison figure."""
  n = min(stage.cfg.num_reconstructions, len(test_source))
  audio, z = stage.encode_items(test_source, np.arange(n), stream=0)
  decoded = stage.decode(z)
  files = []
  for i in range(n):
    name = media.plain_name(test_source.names[i])
    files.append(stage.wav(f'reconstructions/{name}_original.wav', audio[i], f'{name} original'))
    files.append(stage.wav(f'reconstructions/{name}_decoded.wav', decoded[i], f'{name} decoded'))
    media.plot_comparison(audio[i], decoded[i], name, stage.path(f'reconstructions/{name}.png'))
    files.append(_figure(f'reconstructions/{name}.png', f'{name}: original | decoded'))
  return _section('reconstructions', 'Test items and their reconstructions', files)


def write_samples(stage: _Stage, frames: int) -> dict:
  """Decoded latents drawn from N(0, I) (what the SIM prior sounds like)."""
  n = stage.cfg.num_samples
  z = np.asarray(jax.random.normal(jax.random.PRNGKey(stage.cfg.seed + 3), (n, frames, stage.source.width)))
  decoded = stage.decode(z)
  files = [stage.wav(f'samples/sample_{i}.wav', decoded[i], f'N(0, I) sample {i}') for i in range(n)]
  labels = [f'sample {i}' for i in range(n)]
  media.plot_spectrogram_row(list(decoded), labels, 'latents drawn from N(0, I), decoded',
                             stage.path('samples/samples.png'))
  files.append(_figure('samples/samples.png', 'spectrograms of the decoded N(0, I) samples'))
  return _section('samples', 'Decoded samples of the prior N(0, I)', files)


def _write_path(stage: _Stage, stem: str, path_z, labels: list, title: str) -> list:
  """Decode a traversal (steps, L, C): one WAV per step and a row of spectrograms."""
  decoded = stage.decode(np.asarray(path_z))
  files = [stage.wav(f'traversals/{stem}_{i:02d}.wav', decoded[i], f'{stem} {label}')
           for i, label in enumerate(labels)]
  media.plot_spectrogram_row(list(decoded), labels, title, stage.path(f'traversals/{stem}.png'))
  files.append(_figure(f'traversals/{stem}.png', title))
  return files


def traversal_items(config, test_source) -> list[tuple[str, object, int]]:
  """(name, source, index) of the two items to interpolate between, looked up by name in the test
  split, else the train split ('' = the first / second test item); unknown names fail here, early."""
  cfg = config.decoder
  names = [cfg.interpolate_from or test_source.names[0], cfg.interpolate_to or test_source.names[1]]
  found, train_source = [], None
  for name in names:
    splits = {'test': test_source.names}
    if name not in test_source.names:
      train_source = train_source or data_lib.make_source(config.data, 'train', 'words')
      splits['train'] = train_source.names
    split, index = traversals.find_item(splits, name)
    found.append((name, test_source if split == 'test' else train_source, index))
  return found


def _probe_weights(probe_dir: str, name: str) -> str:
  """probes/<name>/weights.npz, else that of a variant folder probes/<name>_*/ (e.g. bias-free)."""
  exact = os.path.join(probe_dir, name, 'weights.npz')
  variants = sorted(glob.glob(os.path.join(probe_dir, glob.escape(name) + '_*', 'weights.npz')))
  return exact if os.path.exists(exact) or not variants else variants[0]


def write_traversals(stage: _Stage, items: list, sweep_dims: list[int] | None, stats: dict,
                     probe_dir: str) -> list[dict]:
  """Interpolation, partial interpolation and single-dimension sweeps (traversals/) between the two
  `traversal_items`; `sweep_dims` from `traversals.parse_sweep_dims` (None: chosen by the probe)."""
  cfg = stage.cfg
  (name_a, source_a, index_a), (name_b, source_b, index_b) = items
  audio_a, z_a = (x[0] for x in stage.encode_items(source_a, [index_a], stream=1))
  audio_b, z_b = (x[0] for x in stage.encode_items(source_b, [index_b], stream=2))
  a, b = media.plain_name(name_a), media.plain_name(name_b)
  ends = [stage.wav(f'traversals/{a}_original.wav', audio_a, f'{a} original'),
          stage.wav(f'traversals/{b}_original.wav', audio_b, f'{b} original')]
  decoded_ends = stage.decode(np.stack([z_a, z_b]))
  ends += [stage.wav(f'traversals/{a}_decoded.wav', decoded_ends[0], f'{a} decoded'),
           stage.wav(f'traversals/{b}_decoded.wav', decoded_ends[1], f'{b} decoded')]
  steps = cfg.interpolation_steps
  labels = [f'{v:.2f}' for v in np.linspace(0, 1, steps)]
  sections = [_section('interpolation', f'Interpolation {a} → {b}, all {stage.source.width} dimensions',
                       ends + _write_path(stage, f'interp_{a}_to_{b}', traversals.interpolate(z_a, z_b, steps),
                                          labels, f'{a} → {b}: every dimension'))]
  k = min(cfg.partial_dims, stage.source.width)
  partial, dims = traversals.partial_interpolate(z_a, z_b, steps, k)
  sections.append(_section(
      'partial_interpolation', f'Partial interpolation {a} → {b}: the {k} dimensions differing most',
      _write_path(stage, f'partial{k}_{a}_to_{b}', partial, labels, f'{a} → {b}: {k} dimensions'),
      note='dimensions, largest time-averaged difference first: ' + ', '.join(map(str, np.asarray(dims)))))
  probe = _probe_weights(probe_dir, f'{cfg.sweep_task}_{stage.source.name}')
  hint = (f'to pick them by a bias-free probe: python probe.py --config=<config> --workdir=<workdir> '
          f'--config.probe.task={cfg.sweep_task} --config.probe.source={stage.source.name} '
          '--config.probe.bias=False')
  sweep_dims, why = traversals.sweep_dimensions(sweep_dims, probe, cfg.num_sweeps, stats['latent_std'],
                                                probe_hint=hint)
  sigmas = np.linspace(-cfg.sweep_sigmas, cfg.sweep_sigmas, cfg.sweep_steps)
  files = []
  for d in sweep_dims:
    values = stats['latent_mean'][d] + sigmas * stats['latent_std'][d]
    files += _write_path(stage, f'sweep_{a}_dim{d}', traversals.sweep(z_a, d, values),
                         [f'{s:+.1f}σ' for s in sigmas], f'{a}: dimension {d} from '
                         f'-{cfg.sweep_sigmas:g}σ to +{cfg.sweep_sigmas:g}σ')
  sections.append(_section('sweeps', f'Single-dimension sweeps on {a}', files,
                           note=f'dimensions {sweep_dims}: {why}'))
  return sections


def loader_item_count(num_items: int, loader_batch: int) -> int:
  """How many test items the original's decoder test loader yields (shuffle off, drop_last): the
  first floor(N / batch)·batch; all N when loader_batch is 0 or the split is smaller than a batch
  (where the original's loader yields nothing)."""
  if loader_batch <= 0 or num_items < loader_batch:
    return num_items
  return num_items // loader_batch * loader_batch


def write_score(stage: _Stage, test_source) -> tuple[dict, dict | None]:
  """The interpolation contribution score on the test split, and its curve; and on the same items
  and pairs the eval_decoder notebook's interpolation concentration (None when switched off)."""
  cfg = stage.cfg
  num_items = loader_item_count(len(test_source), cfg.test_loader_batch)
  items, pairs = score.choose_pairs(num_items, cfg.score_items, cfg.score_pairs, cfg.seed)
  _, z = stage.encode_items(test_source, items, stream=3)
  result = score.contribution_score(stage.decode_fn, stage.variables, z, pairs,
                                    score.score_ks(stage.source.width), cfg.batch_size)
  media.plot_score_curve(result['k'], result['relative'],
                         f'module {stage.source.module}: {result["num_pairs"]} pairs of '
                         f'{result["num_items"]} test items', stage.path('score_curve.png'))
  notebook = None
  if cfg.notebook_concentration:
    notebook = concentration.interpolation_concentration(stage.decode_fn, stage.variables, z, pairs,
                                                         cfg.batch_size)
  return result, notebook


def reconstruction_summary(stats: dict, mean_decoded: np.ndarray) -> dict:
  """Test-split reconstruction error beside two baselines: the signal power (decoding silence) and
  the error of decoding the mean test latent, mean_n MSE(dec(mean latent), x_n), which equals
  mean_t(d² - 2·d·mean audio) + power for d = `mean_decoded` (T,)."""
  mean_latent_mse = float(np.mean(np.square(mean_decoded) - 2 * mean_decoded * stats['mean_audio'])
                          + stats['power'])
  return {'test_loss': stats['loss'], 'test_mse': stats['mse'], 'signal_power': stats['power'],
          'mean_latent_mse': mean_latent_mse,
          'snr_db': float(10 * np.log10(stats['power'] / max(stats['mse'], 1e-20)))}


def effective_settings(config, workdir: str, trained, source: LatentSource) -> dict:
  """What produced a results.json: the encoder checkpoint (as asked, its folder and step), the
  latents actually decoded ('sample' or 'mean', their source), the splits and config.decoder."""
  return {'encoder_checkpoint': config.decoder.checkpoint,
          'encoder_checkpoint_path': os.path.relpath(trained.path, workdir), 'encoder_step': trained.step,
          'features': source.features, 'latent_source': source.name, 'train_split': 'train',
          'evaluation_split': 'test', 'decoder': config.decoder.to_dict()}


def run(config, workdir: str) -> dict:
  """Train the decoder of config.decoder.module on the encoder in `workdir` and write every output.

  Returns the contents of results.json.
  """
  trained = workdir_lib.load_trained_encoder(workdir, config.decoder.checkpoint, 'config.decoder.checkpoint')
  config = workdir_lib.with_training_data_root(config, trained.config)
  if not config.decoder.sweep_task:  # a folder corpus: the probe's task, a label column
    config = config.copy_and_resolve_references()
    config.decoder.sweep_task = make_task(config.probe.task, config.data.name, config.data).name
  cfg = config.decoder
  source = latent_source(trained, cfg.module, cfg.latents)
  test_source = data_lib.make_source(config.data, 'test', 'words')
  items = traversal_items(config, test_source)
  sweep_dims = traversals.parse_sweep_dims(cfg.sweep_dims, source.width)
  decoder, state, stats = train_decoder(config, workdir, trained, source)
  out_dir = workdir_lib.decoder_dir(workdir, source.module)
  stage = _Stage(config, trained, source, decoder, state.params, out_dir)

  sections = [write_reconstructions(stage, test_source)]
  summary = reconstruction_summary(stats, stage.decode(stats['mean_latent'][None])[0])
  if trained.config.model.kind == 'sim':
    sections.append(write_samples(stage, stats['mean_latent'].shape[0]))
  sections += write_traversals(stage, items, sweep_dims, stats, workdir_lib.probes_dir(workdir))
  contribution, notebook = write_score(stage, test_source)
  sections.append(_section('score', 'Interpolation contribution score',
                           [_figure('score_curve.png', 'relative error vs k')]))
  sections.append(_section('training', 'Decoder training', [_figure('loss_curve.png', 'loss')]))
  results = {'module': source.module, 'latents': source.features, 'loss': cfg.loss,
             'encoder_step': trained.step, 'decoder_step': int(state.step),
             'reconstruction': summary, 'contribution_score': contribution,
             **({'interpolation_concentration': notebook} if notebook else {}),
             'settings': effective_settings(config, workdir, trained, source)}
  io.write_json(os.path.join(out_dir, 'results.json'), results)
  io.write_json(os.path.join(out_dir, 'outputs.json'), {'module': source.module, 'sections': sections})
  return results
