"""The probes run the original's recipe by default; every change is named in results.json.

The original's values (fdenoodt/Smooth-InfoMax@e472aab): syllables / vowels — config_code/sim_setup.py:142-149
(Adam lr 1e-3, 50 epochs, batch 64); speakers — README.md:59-61 (batch 8, 10 epochs, gradient clipping 1.0)
over sim_setup.py:134-136 (lr 1e-3); phones — linear_classifiers/logistic_regression_phones.py:220 (lr 1e-4),
:33 (one utterance per step, the split file's order), README.md:61 (10 epochs, clipping 1.0). Source and
features follow the bias as in linear_classifiers/logistic_regression.py:50-77 (regression=bias) and the
README's deterministic=True / False runs (README.md:86, 102).
"""

import numpy as np
import pytest

from sim_jax.config import base_config
from sim_jax.probe.linear import Norm, probe_logits, raw_scale
from sim_jax.probe.run import probe_name, settings
from sim_jax.probe.tasks import make_task, recipe
from tests.probe.helpers import tiny_trained


@pytest.mark.parametrize('task,corpus,expected', [
    ('syllables', 'deboer', (1e-3, 50, 64, 0.0, True)),
    ('vowels', 'deboer', (1e-3, 50, 64, 0.0, True)),
    ('speakers', 'librispeech', (1e-3, 10, 8, 1.0, True)),
    ('phones', 'librispeech', (1e-4, 10, 1, 1.0, False)),
])
def test_recipes_are_the_originals(task, corpus, expected):
  got = recipe(make_task(task, corpus), corpus)
  assert tuple(got[k] for k in ('learning_rate', 'num_epochs', 'batch_size', 'gradient_clipping',
                                'shuffle')) == expected


@pytest.fixture(scope='module')
def sim():
  return tiny_trained('sim_deboer')


def test_defaults_resolve_to_the_original_probe(sim):
  config = base_config('deboer', 'sim')
  assert config.probe.standardize is False and config.probe.train_crops == 0
  config.probe.task = 'vowels'
  task = make_task('vowels', 'deboer')
  with_bias, changed = settings(config.probe, task, 'deboer', sim)
  assert (with_bias.source, with_bias.features, with_bias.num_epochs, with_bias.learning_rate) == (
      'context', 'mean', 50, 1e-3)
  assert changed == [] and probe_name(with_bias) == 'vowels_context'
  config.probe.bias = False
  bias_free, changed = settings(config.probe, task, 'deboer', sim)
  assert (bias_free.source, bias_free.features) == ('module_2', 'sample')
  assert changed == [] and probe_name(bias_free) == 'vowels_module_2_nobias_sample'
  gim = tiny_trained('gim_deboer')
  assert settings(config.probe, task, 'deboer', gim)[0].features == 'mean'  # GIM has nothing to sample


def test_every_change_is_named(sim):
  config = base_config('librispeech', 'sim')
  config.probe.update(bias=False, source='module_0', features='mean', standardize=True, num_epochs=3,
                      train_crops=2)
  cfg, changed = settings(config.probe, make_task('speakers', 'librispeech'), 'librispeech', sim)
  assert cfg.batch_size == 8 and cfg.gradient_clipping == 1.0  # untouched recipe keys
  assert changed == ['num_epochs=3 (original: 10)', "source='module_0' with bias=False (original: 'module_2')",
                     "features='mean' (original: 'sample')", 'standardize=True (original: raw features)',
                     'train_crops=2 (original: a fresh crop every epoch)']
  assert probe_name(cfg) == 'speakers_module_0_nobias_std'


def test_raw_scale_weights_give_the_same_logits():
  rng = np.random.default_rng(0)
  x = rng.normal(3.0, 0.01, (50, 6)).astype(np.float32)  # a large offset, tiny spread
  norm = Norm(x.mean(0), x.std(0))
  for params in ({'kernel': rng.normal(size=(6, 3)).astype(np.float32)},
                 {'kernel': rng.normal(size=(6, 3)).astype(np.float32), 'bias': np.ones(3, np.float32)}):
    raw = raw_scale(params, norm)
    expected = np.asarray(probe_logits(params, norm, x), np.float64)
    direct = x.astype(np.float64) @ raw['kernel'] + raw['bias']  # a bias-free probe gains -(mean/std)·W
    np.testing.assert_allclose(direct, expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())


def test_sample_features_are_redrawn_every_epoch_or_cycled_with_train_crops(monkeypatch):
  """'sample' features: by default a fresh draw per epoch from key fold_in(PRNGKey(seed), epoch), as the
  original; `train_crops=n` draws n sets per seed once and cycles them (the `cpu` reproduce scale)."""
  import types

  import jax

  from sim_jax.probe import run as run_lib

  calls = []

  def fake_extract(trained, source, data_source, *, key, epoch, **unused):
    calls.append((epoch, tuple(np.asarray(jax.random.key_data(key)).ravel().tolist())))
    return object()

  class Data:
    labels = np.array([0, 1, 1, -1])

    def trainable_items(self):
      return [0]

  monkeypatch.setattr(run_lib, 'extract', fake_extract)
  monkeypatch.setattr(run_lib, 'probe_data', lambda task, data_source, feats: (Data(), 0))

  def key_of(seed, draw):
    return tuple(np.asarray(jax.random.key_data(jax.random.fold_in(jax.random.PRNGKey(seed), draw))).ravel().tolist())

  for train_crops, draws in ((0, [0, 1, 2, 3, 4]), (2, [0, 1])):
    calls.clear()
    cfg = types.SimpleNamespace(train_crops=train_crops, num_epochs=5, extract_batch_size=4, seed=0)
    source = types.SimpleNamespace(sample=True, name='module_2')
    provider = run_lib._FeatureProvider(cfg, None, '/nonexistent', None, source,
                                        types.SimpleNamespace(frame_wise=False, label='vowel'),
                                        types.SimpleNamespace(split='train', corpus='deboer'), {}, 3)
    for seed in (3, 4):
      got = [provider.train(seed, epoch) for epoch in range(5)]
      if train_crops:
        assert got[0] is got[2] is got[4] and got[1] is got[3] and got[0] is not got[1]
    assert calls == [(d, key_of(seed, d)) for seed in (3, 4) for d in draws]
    assert provider.class_counts == {'train': [1, 2, 0]}  # the labelled targets of the first draw


def test_cycled_sample_draws_are_named(sim):
  config = base_config('deboer', 'sim')
  config.probe.update(task='vowels', bias=False, train_crops=1)
  cfg, changed = settings(config.probe, make_task('vowels', 'deboer'), 'deboer', sim)
  assert cfg.features == 'sample' and changed == ['train_crops=1 (original: fresh samples every epoch)']


def test_bias_free_phone_probe_and_kept_last_batch_are_named(sim):
  """The original's phone probe has no bias flag (always the GRU context with a bias,
  logistic_regression_phones.py:207-210), and its loaders drop the last partial batch."""
  config = base_config('librispeech', 'sim')
  task = make_task('phones', 'librispeech')
  assert config.probe.drop_last is True and settings(config.probe, task, 'librispeech', sim)[1] == []
  config.probe.update(bias=False, drop_last=False)
  cfg, changed = settings(config.probe, task, 'librispeech', sim)
  assert cfg.source == 'module_2' and changed == [
      'bias=False (original: the phone probe always has a bias and reads the GRU context, '
      'logistic_regression_phones.py:207-210)',
      'drop_last=False (original: the last partial training batch is dropped)']
