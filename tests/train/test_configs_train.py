"""Every published config trains a few steps on real data and leaves a loadable checkpoint."""

import jax
import numpy as np
import pytest

from sim_jax.models import encode
from sim_jax.checkpoints import CheckpointError
from sim_jax.workdir import load_trained_encoder
from sim_jax.train.loop import train_and_evaluate
from tests.train.helpers import small_config


@pytest.mark.slow
@pytest.mark.parametrize('name', ['sim_deboer', 'gim_deboer', 'cpc_deboer', 'sim_librispeech',
                                  'gim_librispeech', 'cpc_librispeech'])  # demo: tests/probe/test_demo.py
def test_config_trains_and_checkpoint_loads(name, tmp_path, shared_data):
  batch = 2 if 'librispeech' in name else 4
  config = small_config(name, batch_size=batch)
  val = train_and_evaluate(config, str(tmp_path))
  n = 1 if name.startswith('cpc') else 4
  assert len(val['nce']) == n and np.all(np.isfinite(val['total']))
  trained = load_trained_encoder(str(tmp_path), 'best')
  assert trained.step == 2
  audio = np.zeros((1, 10240), np.float32)
  outs = jax.jit(lambda v, a: encode(trained.encoder, v, a))(trained.variables, audio)
  assert outs[-1]['c'].shape[-1] == config.model.gru_hidden


@pytest.mark.slow
def test_real_size_model_trains_a_step(tmp_path, shared_data):
  config = small_config('sim_deboer', channels=512, batch_size=2, steps=1)
  config.model.gru_hidden = 256
  val = train_and_evaluate(config, str(tmp_path))
  assert np.all(np.isfinite(val['total']))
  trained = load_trained_encoder(str(tmp_path), 'latest')
  assert trained.variables['params']['module_0']['predictor'].shape == (512, 5120)


def test_cpc_deboer_is_the_originals_cpc_config():
  """configs/cpc_audio_de_boer_*.py keep EncoderConfig's BatchNorm (config_classes.py:85), and a probe
  pairs its source with the bias as every other config: a bias-free CPC probe reads its mean head
  (the original's `forward_through_all_cnn_modules` would hand it the raw audio of a one-module model)."""
  from sim_jax.probe.features import resolve_source
  from tests.probe.helpers import tiny_trained
  config = small_config('cpc_deboer')
  assert config.model.use_batch_norm and config.probe.source == 'auto'
  cpc = tiny_trained('cpc_deboer')
  assert resolve_source(cpc, 'auto', 'auto', True) == ('context', 'mean')
  assert resolve_source(cpc, 'auto', 'auto', False) == ('module_0', 'mean')


def test_cpc_extra_layers_config_builds(tmp_path):
  config = small_config('cpc_deboer')
  config.model.cpc_variant = 'extra_layers'
  from sim_jax.models import module_specs
  (spec,) = module_specs(config.model)
  assert len(spec.layers) == 8


def test_workdir_without_checkpoint_lists_what_exists(tmp_path):
  with pytest.raises(CheckpointError, match='no config.json'):
    load_trained_encoder(str(tmp_path))
