"""Feature sources, extraction (padding, masking, frames) and the feature cache."""

import os
import stat

import jax
import numpy as np
import pytest

from sim_jax import data as data_lib
from sim_jax.probe import features as features_lib
from sim_jax.probe.features import (ProbeError, cached_features, compute_features, extract, extract_many,
                                    feature_source, source_frames)
from tests.probe.helpers import tiny_trained
from tests.train.helpers import small_config


@pytest.fixture(scope='module')
def sim():
  return tiny_trained('sim_deboer')


def test_sources_of_sim_and_cpc(sim):
  hops = {'context': 160, 'module_0': 20, 'module_1': 80, 'module_2': 160, 'layer_0': 5,
          'layer_1': 20, 'layer_2': 40, 'layer_4': 160}
  for name, hop in hops.items():
    source = feature_source(sim, name)
    assert source.hop == hop, name
    assert source.dim == (4 if name == 'context' else 8)
  assert [int(source_frames(sim.encoder.specs, feature_source(sim, f'module_{i}'), 20480))
          for i in range(3)] == [1023, 257, 128]
  cpc = tiny_trained('cpc_deboer')
  assert feature_source(cpc, 'module_0').hop == 160
  assert feature_source(cpc, 'layer_3').hop == 80
  with pytest.raises(ProbeError, match="'module_<i>' for i in 0..0, 'layer_<j>' for j in 0..4"):
    feature_source(cpc, 'module_1')
  with pytest.raises(ProbeError, match="needs a SIM encoder; this one is 'cpc'"):
    feature_source(cpc, 'context', 'sample')


@pytest.mark.parametrize('name,message', [
    ('module_3', "module 3 is the GRU — use 'context'"),
    ('module_7', 'out of range; this sim encoder has'),
    ('layer_5', 'out of range'),
    ('context_0', 'is not a feature source'),
    ('gru', 'is not a feature source'),
])
def test_bad_sources_are_one_line_errors(sim, name, message):
  with pytest.raises(ProbeError, match=message) as info:
    feature_source(sim, name)
  assert '\n' not in str(info.value) and 'config.probe.source' in str(info.value)


def test_pooled_is_the_mean_over_valid_frames(sim):
  """Padding only touches the last valid frame (the convs' right edge), and only slightly."""
  audio = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (1, 9000)), np.float32)
  padded = np.concatenate([audio, np.zeros((1, 3000), np.float32)], 1)
  key = jax.random.PRNGKey(0)
  for name in ('context', 'module_0', 'module_2', 'layer_3'):
    source = feature_source(sim, name)
    (f1, p1, v1), = compute_features(sim.encoder, (source,), True, sim.variables, audio, np.array([9000]), key)
    (f2, p2, v2), = compute_features(sim.encoder, (source,), True, sim.variables, padded, np.array([9000]), key)
    n = int(source_frames(sim.encoder.specs, source, 9000))
    assert int(v1.sum()) == int(v2.sum()) == n == f1.shape[1]
    np.testing.assert_allclose(p2[0], np.asarray(f2)[0, :n].mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(np.asarray(f1)[0, :n - 1], np.asarray(f2)[0, :n - 1], atol=1e-6)
    np.testing.assert_allclose(p1, p2, atol=1e-3)


def test_samples_differ_per_key_and_means_do_not(sim):
  audio = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (2, 8821)), np.float32)
  lengths = np.array([8821, 8821])
  mean = feature_source(sim, 'module_1')
  sample = feature_source(sim, 'module_1', 'sample')
  run = lambda s, k: np.asarray(compute_features(sim.encoder, (s,), False, sim.variables, audio, lengths,  # noqa: E731
                                                 jax.random.PRNGKey(k))[0][1])
  np.testing.assert_array_equal(run(mean, 0), run(mean, 1))
  assert not np.allclose(run(sample, 0), run(sample, 1))
  np.testing.assert_array_equal(run(sample, 3), run(sample, 3))


def test_posterior_kl_source_is_the_heads_kl_per_frame_and_dimension(sim):
  """The 'module_<i>_kl' features: KL(N(mu, exp(logvar)) ‖ N(0, 1)) of the heads, computed here from
  the encoder's raw outputs, averaged over the valid frames."""
  from sim_jax.models import encode
  audio = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (2, 8821)), np.float32)
  source = features_lib.posterior_kl_source(sim, 1)
  assert (source.name, source.dim, source.hop) == ('module_1_kl', 8, 80)
  (frames, pooled, valid), = compute_features(sim.encoder, (source,), True, sim.variables, audio,
                                               np.array([8821, 8821]), jax.random.PRNGKey(0))
  out = encode(sim.encoder, sim.variables, audio, num_modules=2)[1]
  mu, var = np.asarray(out['mu'], np.float64), np.exp(np.asarray(out['logvar'], np.float64))
  expected = 0.5 * (mu ** 2 + var - 1 - np.log(var))  # (B, L, C)
  np.testing.assert_allclose(np.asarray(frames), expected, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(pooled), expected.mean(1), rtol=1e-4, atol=1e-6)
  assert np.asarray(valid).all()
  with pytest.raises(ProbeError, match='no Gaussian posterior'):
    features_lib.posterior_kl_source(tiny_trained('gim_deboer'), 0)


def _demo_source(split='test', count=10):
  config = small_config('demo')
  config.data[f'demo_num_{split}'] = count
  return config.data, data_lib.make_source(config.data, split, 'syllables')


def test_extract_keeps_every_item_in_order_with_frames(sim, tmp_path):
  _, source = _demo_source()
  feats = extract(sim, feature_source(sim, 'module_2'), source, batch_size=4, epoch=0, seed=0,
                  frames=True, out_dir=str(tmp_path))
  assert feats.pooled.shape == (10, 8) and feats.valid.all()
  np.testing.assert_array_equal(np.diff(feats.offsets), 55)  # 8821 samples -> 55 frames per item
  assert feats.frames.shape == (550, 8) and isinstance(feats.frames, np.memmap)
  np.testing.assert_allclose(feats.frames[55:110].mean(0), feats.pooled[1], rtol=1e-5, atol=1e-7)
  alone = extract(sim, feature_source(sim, 'module_2'), source, batch_size=10, epoch=0, seed=0)
  np.testing.assert_allclose(alone.pooled, feats.pooled, rtol=1e-5, atol=1e-7)


def test_one_pass_for_several_sources_equals_one_pass_each(sim, tmp_path):
  """extract_many: every source's pooled features and frames (each with its own frame count) equal
  those of a pass of its own; samples too, drawn with the same key."""
  _, source = _demo_source(count=6)
  for features in ('mean', 'sample'):
    sources = [feature_source(sim, n, features) for n in ('module_0', 'module_2', 'context', 'layer_3')]
    key = jax.random.PRNGKey(5)
    dirs = [str(tmp_path / f'{features}_{i}') for i in range(len(sources))]
    for d in dirs:
      os.makedirs(d)
    together = extract_many(sim, sources, source, batch_size=4, epoch=0, seed=0, key=key, frames=True,
                            out_dirs=dirs)
    for s, got in zip(sources, together):
      alone = extract(sim, s, source, batch_size=4, epoch=0, seed=0, key=key, frames=True)
      np.testing.assert_allclose(got.pooled, alone.pooled, rtol=1e-5, atol=1e-6)
      np.testing.assert_array_equal(got.offsets, alone.offsets)
      assert got.offsets[1] == source_frames(sim.encoder.specs, s, 8821)
      np.testing.assert_allclose(got.frames, alone.frames, rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='all be samples or all be means'):
    extract_many(sim, [feature_source(sim, 'module_0'), feature_source(sim, 'module_1', 'sample')], source,
                 batch_size=4, epoch=0, seed=0, key=jax.random.PRNGKey(0))


def test_cache_also_fills_the_other_sources_in_the_same_pass(sim, tmp_path, monkeypatch):
  """`also`: the missing entries of the other sources are made in the one encoder pass of the first
  request; later requests read them; an entry already there is not recomputed."""
  data_config, source = _demo_source()
  cache = str(tmp_path / 'cache')
  names = ('module_0', 'module_1', 'context')
  sources = [feature_source(sim, n) for n in names]
  first = cached_features(cache, sim, sources[2], source, data_config=data_config, batch_size=4)
  passes = []
  real = features_lib.extract_many

  def counting(trained, todo, *args, **kwargs):
    passes.append([s.name for s in todo])
    return real(trained, todo, *args, **kwargs)

  monkeypatch.setattr(features_lib, 'extract_many', counting)
  got = {s.name: cached_features(cache, sim, s, source, data_config=data_config, batch_size=4, also=sources)
         for s in sources}
  assert passes == [['module_0', 'module_1']]  # one pass; the context's entry was there
  np.testing.assert_array_equal(got['context'].pooled, first.pooled)
  for s in sources[:2]:
    alone = extract(sim, s, source, batch_size=4, epoch=0, seed=0)
    np.testing.assert_allclose(got[s.name].pooled, alone.pooled, rtol=1e-5, atol=1e-6)
  assert len([d for d in os.listdir(cache) if not d.startswith('.')]) == 3


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def test_cache_is_reused_and_keyed_by_weights(sim, tmp_path, monkeypatch):
  data_config, source = _demo_source()
  cache = str(tmp_path / 'cache')
  context = feature_source(sim, 'context')
  first = cached_features(cache, sim, context, source, data_config=data_config, batch_size=4)
  assert len(os.listdir(cache)) == 1
  entry = os.path.join(cache, os.listdir(cache)[0])  # made with mkdtemp, yet readable as any folder
  assert stat.S_IMODE(os.stat(entry).st_mode) == 0o777 & ~_umask()

  def no_encoder(*args, **kwargs):
    raise AssertionError('the encoder ran although the features are cached')

  with monkeypatch.context() as m:
    m.setattr(features_lib, 'extract_many', no_encoder)
    again = cached_features(cache, sim, context, source, data_config=data_config, batch_size=4)
  np.testing.assert_array_equal(first.pooled, again.pooled)
  # frames asked later: the entry is rebuilt with them, in place
  framed = cached_features(cache, sim, context, source, data_config=data_config, batch_size=4, frames=True)
  assert framed.frames.shape == (550, 4) and len(os.listdir(cache)) == 1
  other = tiny_trained('sim_deboer', seed=1)
  other.path = sim.path  # same checkpoint path and step, different weights: a new entry
  cached_features(cache, other, feature_source(other, 'context'), source, data_config=data_config,
                  batch_size=4)
  assert len([d for d in os.listdir(cache) if not d.startswith('.')]) == 2
  with pytest.raises(ValueError, match='never cached'):
    cached_features(cache, sim, feature_source(sim, 'context', 'sample'), source,
                    data_config=data_config, batch_size=4)
