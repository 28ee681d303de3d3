"""Decoder training on the demo corpus: it resumes exactly, it refuses a mismatched width or other
training settings, bad module / latent settings are one-line errors, and the latent cache changes
nothing but the time."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sim_jax.data import make_source
from sim_jax.decoder.latents import (OUTPUT_DRAWS, TRAIN_DRAWS, DecoderError, draw_key, latent_frames,
                                     latent_prefix, latent_source, latents, latents_from_prefix)
from sim_jax.decoder.nets import decoded_length, make_decoder
from sim_jax.decoder.run import reconstruction_summary
from sim_jax.decoder.train import init_state, train_decoder, train_step
from sim_jax.models import encode, make_encoder, module_specs
from sim_jax.checkpoints import CheckpointError
from sim_jax.workdir import TrainedEncoder
from tests.conftest import REPO
from tests.probe.helpers import tiny_trained
from tests.train.helpers import small_config


def demo_config(channels: int = 32, **decoder):
  """The demo config, narrow, with a small corpus and a few decoder steps."""
  settings = dict(batch_size=8, steps_per_epoch=2, num_epochs=1, eval_steps=1, log_every_steps=1,
                  module=2)
  settings.update(decoder)
  config = small_config('demo', channels=channels, **{f'decoder__{k}': v for k, v in settings.items()})
  config.data.demo_num_train, config.data.demo_num_test = 64, 16
  return config


@pytest.fixture(scope='module')
def demo_trained() -> TrainedEncoder:
  """An untrained 32-wide SIM encoder (the decoder stage only needs it frozen)."""
  return tiny_trained('demo', channels=32)


def _train(config, workdir, trained):
  source = latent_source(trained, config.decoder.module, config.decoder.latents)
  return train_decoder(config, workdir, trained, source)


@pytest.mark.slow
def test_decoder_learns_the_demo_words(demo_trained, tmp_path):
  """Module-0 latents of an untrained encoder, 150 steps: the test-split reconstruction error ends far
  below the error of decoding the mean test latent (both recomputed here item by item)."""
  workdir = str(tmp_path / 'w')
  config = demo_config(module=0, batch_size=4, steps_per_epoch=150, eval_steps=-1, learning_rate=3e-3,
                       log_every_steps=50)
  config.data.demo_num_train = 640
  trained = demo_trained
  source = latent_source(trained, 0, 'mean')
  decoder, state, stats = train_decoder(config, workdir, trained, source)

  audio = make_source(config.data, 'test', 'words').load(np.arange(16), 0)['audio']  # (16, T)
  z = latents(trained.encoder, source, trained.variables, audio, None, None)
  decode = lambda latents: np.asarray(decoder.apply({'params': state.params}, latents))  # noqa: E731
  recon_mse = np.mean(np.square(decode(z) - audio))
  mean_latent_mse = np.mean(np.square(decode(np.mean(z, axis=0, keepdims=True)) - audio))
  summary = reconstruction_summary(stats, decode(stats['mean_latent'][None])[0])
  np.testing.assert_allclose(summary['test_mse'], recon_mse, rtol=1e-4)
  np.testing.assert_allclose(summary['mean_latent_mse'], mean_latent_mse, rtol=1e-4)
  print(f'demo module 0, 150 steps: reconstruction MSE {recon_mse:.5f}, decoding the mean latent '
        f'{mean_latent_mse:.5f}, signal power {summary["signal_power"]:.5f}')
  assert recon_mse < 0.4 * mean_latent_mse


def test_resumed_training_ends_where_an_uninterrupted_run_ends(demo_trained, tmp_path):
  straight, resumed = str(tmp_path / 'straight'), str(tmp_path / 'resumed')
  _, state, _ = _train(demo_config(num_epochs=2, latents='sample'), straight, demo_trained)
  _train(demo_config(num_epochs=1, latents='sample'), resumed, demo_trained)
  _, state2, _ = _train(demo_config(num_epochs=2, latents='sample'), resumed, demo_trained)
  assert int(state.step) == int(state2.step) == 4
  jax.tree_util.tree_map(np.testing.assert_array_equal, state.params, state2.params)
  assert os.path.exists(os.path.join(resumed, 'decoder', 'module_2', 'loss_curve.png'))


def test_checkpoint_of_another_width_is_refused(demo_trained, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  workdir = 'w'  # relative, as users give it
  _train(demo_config(num_epochs=1), workdir, demo_trained)
  narrower = _encoder('sim', channels=16)  # the encoder was retrained, narrower
  with pytest.raises(DecoderError, match=r'reads 32-wide latents but the encoder\'s module 2 is 16 '
                                         r'wide.*delete .*decoder/module_2'):
    _train(demo_config(num_epochs=2), workdir, narrower)


def test_resume_with_another_loss_is_refused(demo_trained, tmp_path):
  workdir = str(tmp_path / 'w')
  _train(demo_config(num_epochs=1), workdir, demo_trained)
  settings = os.path.join(workdir, 'decoder', 'module_2', 'settings.json')
  before = open(settings).read()
  with pytest.raises(CheckpointError, match=r"decoder.loss='mse' \(now 'mse\+mel'\).*delete "
                                            r".*decoder/module_2 to train a new decoder"):
    _train(demo_config(num_epochs=2, loss='mse+mel'), workdir, demo_trained)
  assert open(settings).read() == before
  _, state, _ = _train(demo_config(num_epochs=2, num_reconstructions=1), workdir, demo_trained)
  assert int(state.step) == 4  # more epochs and other outputs: a resume


def _encoder(kind: str, channels: int = 32, variant: str = 'conventional') -> TrainedEncoder:
  """An encoder with abstract weights (shapes only): enough to validate settings against."""
  config = demo_config(channels=channels)
  config.model.kind = kind
  config.model.cpc_variant = variant
  encoder = make_encoder(config.model, module_specs(config.model))
  variables = jax.eval_shape(lambda: encoder.init(jax.random.PRNGKey(0), jnp.zeros((1, 10240)), True))
  return TrainedEncoder(config, encoder, variables, 0, '')


@pytest.mark.parametrize('kind,module,latents,message', [
    ('sim', 3, 'mean', r'config.decoder.module=3 is out of range: decoders exist for conv modules '
                       r'0..2 \(module 3 is the GRU context'),
    ('sim', -1, 'mean', r'config.decoder.module=-1 is out of range'),
    ('sim', 0, 'noisy', r"config.decoder.latents='noisy'"),
])
def test_bad_module_or_latents(kind, module, latents, message):
  with pytest.raises(DecoderError, match=message):
    latent_source(_encoder(kind), module, latents)


@pytest.mark.parametrize('kind,variant,names', [
    ('sim', 'conventional', ['module_0', 'module_1', 'module_2']),
    ('cpc', 'conventional', ['layer_1', 'layer_3', 'module_0']),
    # the original decodes encoder_layer 2 / 5 / 7 of this variant, before the mean head
    # (config_code/config_classes.py:187-205)
    ('cpc', 'extra_layers', ['layer_2', 'layer_5', 'layer_7']),
])
def test_latent_source_names(kind, variant, names):
  encoder = _encoder(kind, variant=variant)
  if kind == 'cpc':  # the layers named exist
    assert len(encoder.encoder.specs[0].layers) == (8 if variant == 'extra_layers' else 5)
  assert [latent_source(encoder, m, 'sample').name for m in range(3)] == names
  # each decodes a de Boer word from the frame count of its SIM module: 511 / 129 / 64 frames
  frames = [latent_frames(encoder, latent_source(encoder, m, 'mean'), 10240) for m in range(3)]
  assert frames == [511, 129, 64]
  assert [decoded_length(make_decoder(m, 32).layers, f) for m, f in enumerate(frames)] == [10240] * 3


@pytest.mark.parametrize('kind,sample', [('sim', True), ('gim', False), ('cpc', False)])
def test_sample_is_the_default_and_means_the_mean_without_a_gaussian(kind, sample):
  """The original's decoder reads `get_latents`: a SIM sample, the mean of GIM / CPC
  (models/independent_module.py:52-61); the default is 'sample' (its README runs)."""
  config = demo_config()
  assert config.decoder.latents == 'sample'
  source = latent_source(_encoder(kind), 0, config.decoder.latents)
  assert source.sample == sample and source.features == ('sample' if sample else 'mean')


def test_sim_draws_are_fresh_per_item_and_step_and_replayed_on_a_rerun(demo_trained):
  """One audio clip as items 5 and 6 of a batch, and as item 5 at the next step: each gets its own
  noise; the same (seed, epoch, step, item) gets the same noise again, whatever batch it is in."""
  encode = jax.jit(lambda audio, key, items: latents(
      demo_trained.encoder, latent_source(demo_trained, 0, 'sample'), demo_trained.variables, audio,
      key, items))
  clip = make_source(demo_config().data, 'test', 'words').load(np.arange(2), 0)['audio']  # (2, T)
  same = np.stack([clip[0], clip[0]])
  step0 = np.asarray(encode(same, draw_key(0, TRAIN_DRAWS, 0, 0), np.array([5, 6])))
  step1 = np.asarray(encode(same, draw_key(0, TRAIN_DRAWS, 0, 1), np.array([5, 6])))
  rerun = np.asarray(encode(np.stack([clip[1], clip[0]]), draw_key(0, TRAIN_DRAWS, 0, 0),
                            np.array([7, 5])))
  mean = np.asarray(latents(demo_trained.encoder, latent_source(demo_trained, 0, 'mean'),
                            demo_trained.variables, clip[:1], None, None))[0]
  noise = lambda z: z - mean  # noqa: E731
  assert np.std(noise(step0[0])) > 0.1  # a SIM sample, not the mean
  assert not np.allclose(noise(step0[0]), noise(step0[1]), atol=1e-3)  # two items, one batch
  assert not np.allclose(noise(step0[0]), noise(step1[0]), atol=1e-3)  # one item, two batches
  np.testing.assert_array_equal(rerun[1], step0[0])  # same (seed, epoch, step, item): same noise
  outputs = [np.asarray(encode(clip[:1], draw_key(0, OUTPUT_DRAWS, stream), np.array([0])))
             for stream in (1, 2)]  # the two ends of an interpolation (same index, other splits)
  assert not np.allclose(noise(outputs[0][0]), noise(outputs[1][0]), atol=1e-3)


def test_cpu_step_summed_over_chunks_is_the_plain_whole_batch_step(demo_trained):
  """The 'cpu' step sums the gradient over chunks of 8 items, 'plain' takes the 16 items whole: the
  same loss (two padded items masked out) and the same parameters after two Adam steps."""
  source = latent_source(demo_trained, 2, 'mean')
  audio = make_source(demo_config().data, 'train', 'words').load(np.arange(16), 0)['audio']  # (16, T)
  batch = {'audio': audio, 'mask': np.r_[np.ones(14), np.zeros(2)].astype(np.float32), 'index': np.arange(16)}
  frames = latent_frames(demo_trained, source, audio.shape[1])
  runs = []
  for implementation in ('cpu', 'plain'):
    decoder = make_decoder(2, 32, implementation)
    settings = dict(encoder=demo_trained.encoder, source=source, decoder=decoder, loss='mse', learning_rate=1e-3)
    state = init_state(jax.random.PRNGKey(0), decoder=decoder, width=32, frames=frames, learning_rate=1e-3)
    losses = []
    for step in range(2):
      state, loss = train_step(state, demo_trained.variables, batch, draw_key(0, TRAIN_DRAWS, 0, step), **settings)
      losses.append(float(loss))
    runs.append((losses, state.params))
  np.testing.assert_allclose(runs[0][0], runs[1][0], rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(runs[0][1]), jax.tree_util.tree_leaves(runs[1][1])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('kind,module,latents_kind', [
    ('sim', 0, 'sample'), ('sim', 1, 'sample'), ('sim', 2, 'sample'), ('sim', 2, 'mean'), ('gim', 1, 'sample'),
    ('cpc', 1, 'mean')])
def test_latents_from_a_prefix_are_a_whole_pass_per_item(kind, module, latents_kind):
  """What a step computes from a cached prefix (module 0's Gaussian, or the latents) equals the encoder's
  whole eval pass over each item alone with the item's key, `encode(..., sample_key=fold_in(key, item))`
  — the original's `get_latents` per item; the prefix is computed at another batch size than that pass."""
  trained = tiny_trained('demo', channels=32, model__kind=kind)
  source = latent_source(trained, module, latents_kind)
  audio = make_source(demo_config().data, 'test', 'words').load(np.arange(3), 0)['audio']  # (3, T)
  items, key = np.array([4, 0, 9]), draw_key(0, TRAIN_DRAWS, 1, 2)
  prefix = np.concatenate([latent_prefix(trained.encoder, source, trained.variables, audio[i:i + 1])
                           for i in range(3)])  # built one item at a time, as a cache may be
  z = np.asarray(latents_from_prefix(trained.encoder, source, trained.variables, prefix, key, items))
  for row, item in enumerate(items):
    sample_key = jax.random.fold_in(key, item) if source.sample else None
    out = encode(trained.encoder, trained.variables, audio[row:row + 1], num_modules=source.num_modules,
                 sample_key=sample_key)[-1]
    expected = out['z'] if source.layer is None else out['layers'][source.layer]
    np.testing.assert_allclose(z[row], expected[0], rtol=1e-5, atol=1e-5)
  if source.sample:  # a sample indeed: away from the mean
    mean = latents(trained.encoder, latent_source(trained, module, 'mean'), trained.variables, audio, None, None)
    assert np.std(z - np.asarray(mean)) > 0.1


def test_latent_cache_changes_nothing_but_the_time(demo_trained, tmp_path, capsys):
  """SIM samples of module 1, two epochs: training from the cached module-0 Gaussian ends where
  rerunning the encoder every step ends (a budget below the cache's size, which says so), with the
  same test statistics."""
  runs = {}
  for budget in (4.0, 1e-4):
    config = demo_config(num_epochs=2, module=1, latents='sample', latent_cache_gb=budget)
    runs[budget] = _train(config, str(tmp_path / f'w{budget}'), demo_trained)
    err = ''.join(capsys.readouterr())
    assert ('caching the module-0 means and standard deviations of the train items' in err) == (budget == 4.0)
    assert ('more than config.decoder.latent_cache_gb=0.0001; computing them at every step' in err) == (budget == 1e-4)
  (_, cached, cached_stats), (_, plain, plain_stats) = runs[4.0], runs[1e-4]
  for a, b in zip(jax.tree_util.tree_leaves(cached.params), jax.tree_util.tree_leaves(plain.params)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  for key in ('loss', 'mse', 'power', 'latent_std'):
    np.testing.assert_allclose(cached_stats[key], plain_stats[key], rtol=1e-4)


MULTI_DEVICE = '''
import os
os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=4'
import sys, jax, numpy as np
from tests.decoder.test_train import _train, demo_config
from tests.probe.helpers import tiny_trained
assert jax.device_count() == 4
trained = tiny_trained('demo', channels=32)
runs = [_train(demo_config(module=1, latent_cache_gb=budget), os.path.join(sys.argv[1], str(budget)), trained)[1]
        for budget in (4.0, 0.0)]
for a, b in zip(jax.tree_util.tree_leaves(runs[0].params), jax.tree_util.tree_leaves(runs[1].params)):
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
print('OK')
'''


def test_latent_cache_on_four_devices(tmp_path):
  """Batches sharded over 4 devices gather their rows of the replicated cache: the same training as
  recomputing the latents on each device's rows."""
  env = dict(os.environ, PYTHONPATH=REPO)
  run = subprocess.run([sys.executable, '-c', MULTI_DEVICE, str(tmp_path)], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=900)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  assert 'OK' in run.stdout and 'caching the module-0 means' in run.stdout + run.stderr
