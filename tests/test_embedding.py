"""`sim_jax.load_encoder(workdir).encode(waves)`: padding-invariant valid frames, the frame arithmetic
against perturbed inputs, one compilation per length bucket, samples, input checks, and the features of
an original PyTorch checkpoint imported with `python -m sim_jax.reference import`."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

import sim_jax
from sim_jax.data.resample import resample
from sim_jax.embedding import FeatureExtractor, bucket_length, choose_buckets, count_compilations
from tests.conftest import REFERENCE, REPO
from tests.probe.helpers import fabricate_workdir, tiny_trained
from tests.train.helpers import small_config


@pytest.fixture(scope='module')
def sim():
  return FeatureExtractor(tiny_trained('sim_deboer', channels=16))


def _noise(n: int, seed: int) -> np.ndarray:
  return (np.random.default_rng(seed).normal(size=n) * 0.1).astype(np.float32)


def test_a_batch_of_different_lengths_equals_its_items_one_by_one(sim):
  items = [_noise(n, i) for i, n in enumerate((3000, 9000, 16000, 5001))]
  batch = sim.encode(items)
  assert list(batch) == ['module_0', 'module_1', 'module_2', 'context']
  # the same rows as one (B, T) array with lengths, its padding full of noise, and in a longer array
  array = np.stack([np.concatenate([w, _noise(16000 - len(w), 9)]) for w in items])
  for other in (sim.encode(array, lengths=[len(w) for w in items]),
                sim.encode(np.pad(array, ((0, 0), (0, 7000))), lengths=np.array([len(w) for w in items]))):
    for name, out in batch.items():
      np.testing.assert_array_equal(other[name].frames, out.frames)
      np.testing.assert_allclose(other[name].features, out.features, atol=1e-6)
  for b, w in enumerate(items):
    alone = sim.encode(w)  # (T,): one item
    for name, out in batch.items():
      n = out.frames[b]
      assert alone[name].frames.tolist() == [n] and alone[name].features.shape[:2] == (1, n)
      np.testing.assert_allclose(out.features[b, :n], alone[name].features[0], atol=1e-6)
      assert not out.features[b, n:].any()  # past the valid frames: zeros
  m2 = batch['module_2']
  assert (m2.hop, m2.receptive_field, m2.start) == (160, 465, -212)
  assert m2.features.shape == (4, m2.frames.max(), 16) and batch['context'].features.shape[2] == 8
  assert m2.frames.tolist() == [(n + 212 - 465) // 160 + 1 for n in (3000, 9000, 16000, 5001)]


@pytest.mark.parametrize('name', ['sim_deboer', 'cpc_deboer'])
def test_valid_frames_are_the_frames_nothing_past_the_row_can_change(name):
  """The frame arithmetic against the network itself: noise written past sample 7001 of a row changes
  exactly the frames from valid_frames(7001) on, and one sample changes exactly the frames whose
  field holds it (the context: every later one too)."""
  # CPC "extra layers": 1x1 layers between the strided ones
  extra = {'model__cpc_variant': 'extra_layers'} if name == 'cpc_deboer' else {}
  enc = FeatureExtractor(tiny_trained(name, channels=16, **extra))
  clean = np.concatenate([_noise(7001, 1), np.zeros(5000, np.float32)])
  noisy = clean.copy()
  noisy[7001:] = _noise(5000, 2) * 5
  poked = clean.copy()
  poked[3000] += 0.9
  out = enc.encode(np.stack([clean, noisy, poked]))
  for out_name, o in out.items():
    base, moved, hit = o.features[0], o.features[1], o.features[2]
    changed = np.flatnonzero(np.abs(base - moved).max(1) > 0)
    assert changed.min() == enc.valid_frames(out_name, 7001), out_name
    first = -(-(3000 - o.start - o.receptive_field + 1) // o.hop)  # the first frame whose field holds 3000
    last = (3000 - o.start) // o.hop
    hit = np.flatnonzero(np.abs(base - hit).max(1) > 0)
    assert hit.min() == first, out_name
    if out_name == 'context':  # the GRU carries it on, for as long as its memory lasts
      assert hit.max() > last
    else:
      assert hit.max() == last, out_name


def test_compiles_once_per_length_bucket():
  sim = FeatureExtractor(tiny_trained('sim_deboer', channels=12))  # a width no other test compiles
  lengths = np.random.default_rng(0).choice(np.arange(4000, 25000), 50, replace=False)
  sim.encode([_noise(4000, 0), _noise(5000, 0)])  # helpers compiled once, not per bucket
  with count_compilations() as count:
    for i, n in enumerate(lengths):
      sim.encode(_noise(int(n), i))
  buckets = {bucket_length(int(n)) for n in lengths}
  assert count['compilations'] == len(buckets) <= 6  # 4000..25000 samples: under three octaves, two per octave
  chosen = choose_buckets(lengths, count=3)
  with count_compilations() as count:
    for i, n in enumerate(lengths):
      sim.encode(_noise(int(n), i), buckets=chosen)
  assert count['compilations'] <= 3 and len(chosen) == 3


def test_samples_need_a_key_and_keep_to_it(sim):
  items = [_noise(9000, 0), _noise(6000, 1)]
  key = jax.random.key(3)
  first = sim.encode(items, features='sample', key=key)
  again = sim.encode(items, features='sample', key=key)
  other = sim.encode(items, features='sample', key=jax.random.key(4))
  means = sim.encode(items)
  for name in sim.outputs:
    np.testing.assert_array_equal(first[name].features, again[name].features)
    assert not np.allclose(first[name].features, other[name].features)
    assert not np.allclose(first[name].features, means[name].features)
  # row b draws from fold_in(key, b): given that key in another place of the batch, the same samples
  keys = jax.random.key_data(jax.vmap(lambda b: jax.random.fold_in(key, b))(np.arange(2)))
  by_row = sim.encode(items[::-1], features='sample', key=keys[::-1])  # one key per row, any order
  for name in sim.outputs:
    n = first[name].frames[0]
    np.testing.assert_allclose(by_row[name].features[1, :n], first[name].features[0, :n], atol=1e-6)
  with pytest.raises(ValueError, match=r"features='sample' needs key="):
    sim.encode(items, features='sample')


def test_int16_modules_and_resampling(sim):
  wave = _noise(8000, 5)
  pcm = np.round(wave * 32768).astype(np.int16)
  np.testing.assert_allclose(sim.encode(pcm)['context'].features, sim.encode(pcm / 32768.0)['context'].features,
                             atol=1e-6)
  some = sim.encode(wave, modules='context,module_1')
  assert list(some) == ['module_1', 'context']
  np.testing.assert_allclose(some['context'].features, sim.encode(wave)['context'].features, atol=1e-6)
  at_22k = _noise(11025, 6)
  direct = sim.encode(resample(at_22k, 22050, 16000))
  resampled = sim.encode(at_22k, sample_rate=22050, resample=True)
  np.testing.assert_allclose(resampled['module_2'].features, direct['module_2'].features, atol=1e-6)
  assert resampled['module_2'].frames[0] == (8000 + 212 - 465) // 160 + 1


@pytest.mark.parametrize('call, message', [
    (lambda e, w: e.encode(w, sample_rate=44100), 'waves are at 44100 Hz, this encoder was trained at 16000 Hz: '
     'resample them to 16000 Hz, or pass resample=True'),
    (lambda e, w: e.encode(w[None, None]), r'waves has shape \(1, 1, 8000\), \(batch, channels, samples\)\?: '
     r'give mono \(batch, samples\) — waves.mean\(axis=1\)'),
    (lambda e, w: e.encode(np.stack([w, w], 1)), r'waves has shape \(8000, 2\), \(samples, channels\)\?: give '
     r'mono \(samples,\) — waves.mean\(axis=1\)'),
    (lambda e, w: e.encode(w * 32768), 'float waveforms are in \\[-1, 1\\] — integer samples stored as floats'),
    (lambda e, w: e.encode(w[:200]), 'row 0 has 200 samples, fewer than the 253 that one frame of module_2 needs'),
    (lambda e, w: e.encode(w, modules='module_3'), "modules='module_3' is not an output of this sim encoder; "
     "use 'all' or some of module_0, module_1, module_2, context"),
    (lambda e, w: e.encode(w, features='mu'), "features='mu': use one of"),
    (lambda e, w: e.encode(np.stack([w, w]), lengths=[8000, 9000]), r'lengths\[1\] = 9000: a row holds 1 to 8000'),
])
def test_bad_input_is_one_line(sim, call, message):
  with pytest.raises(ValueError, match=message) as info:
    call(sim, _noise(8000, 0))
  assert '\n' not in str(info.value)


def test_load_encoder_of_a_gim_workdir(tmp_path):
  workdir = fabricate_workdir(small_config('gim_deboer', channels=16), str(tmp_path / 'w'))
  gim = sim_jax.load_encoder(workdir, 'best')  # no best/ (select_best off): the latest
  assert gim.step == 0 and gim.path == os.path.join(workdir, 'checkpoints', '0')
  with pytest.raises(ValueError, match="features='sample' needs a SIM encoder; this one is 'gim'"):
    gim.encode(_noise(8000, 0), features='sample', key=jax.random.key(0))


def test_the_gpu_formulation_gives_the_cpu_features():
  """config.model.implementation 'plain' (lax.conv, GPU/TPU) against 'cpu' (im2col matmuls)."""
  items = [_noise(9000, 1), _noise(5000, 2)]
  cpu = FeatureExtractor(tiny_trained('sim_deboer', channels=16, model__implementation='cpu')).encode(items)
  plain = FeatureExtractor(tiny_trained('sim_deboer', channels=16, model__implementation='plain')).encode(items)
  for name, out in cpu.items():
    np.testing.assert_array_equal(plain[name].frames, out.frames)
    np.testing.assert_allclose(plain[name].features, out.features, atol=2e-5, rtol=1e-4)


def test_features_of_an_imported_original_checkpoint(tmp_path):
  """GIM with BatchNorm (running statistics) after the original's Adam step: our features of the
  reference words are the original's eval-mode features (`eval/m<i>/mu`, `eval/m3/c`)."""
  with np.load(os.path.join(REFERENCE, 'gim_deboer_bn.npz')) as z:
    prefix = 'param_after_adam/'
    np.savez(tmp_path / 'state.npz', **{k[len(prefix):]: z[k] for k in z.files if k.startswith(prefix)})
    data = {k: z[k] for k in ('input', 'eval/m0/mu', 'eval/m1/mu', 'eval/m2/mu', 'eval/m3/c', 'meta')}
  assert json.loads(str(data['meta']))['use_batch_norm']
  workdir = str(tmp_path / 'w')
  run = subprocess.run([sys.executable, '-m', 'sim_jax.reference', 'import', str(tmp_path / 'state.npz'),
                        f'--config={os.path.join(REPO, "configs", "gim_deboer.py")}', '--config.model.channels=32',
                        '--config.model.gru_hidden=16', '--config.model.use_batch_norm=True',
                        f'--workdir={workdir}'], capture_output=True, text=True, cwd=REPO, timeout=300)
  assert run.returncode == 0, run.stderr
  out = sim_jax.load_encoder(workdir).encode(data['input'][:, 0])  # (4, 10240)
  for name, key in (('module_0', 'eval/m0/mu'), ('module_1', 'eval/m1/mu'), ('module_2', 'eval/m2/mu'),
                    ('context', 'eval/m3/c')):
    want = data[key]  # (4, L, C): every frame of the unpadded words
    n = out[name].frames
    assert (n == n[0]).all() and want.shape[1] - n[0] == {'module_0': 0, 'module_1': 2}.get(name, 1), name
    np.testing.assert_allclose(out[name].features, want[:, :n[0]], atol=1e-5 * np.abs(want).max())


def test_the_lowered_forward_pass_counts_the_convolutions_flops(sim):
  """XLA's FLOP count of `lowered` (what bench/embed.py reports) against the convolutions' multiply-adds
  counted by hand: module 0's conv layers and its mean head, 2·C_in·C_out·kernel per output frame."""
  def flops(batch, modules):
    cost = sim.lowered(batch, 8192, modules).cost_analysis()
    return (cost[0] if isinstance(cost, (list, tuple)) else cost)['flops']
  spec = sim.trained.encoder.specs[0]
  by_hand, channels_in, frames = 0, 1, 8192
  for kernel, stride, padding, *_ in spec.layers:
    frames = (frames + 2 * padding - kernel) // stride + 1
    by_hand += 2 * channels_in * spec.channels * kernel * frames
    channels_in = spec.channels
  by_hand += 2 * spec.channels * spec.channels * frames  # the 1x1 mean head
  assert by_hand <= flops(1, 'module_0') <= 1.1 * by_hand  # the rest: biases and ReLUs
  assert flops(4, 'module_0') == pytest.approx(4 * flops(1, 'module_0'), rel=1e-3)
  assert flops(1, 'all') > 1.2 * flops(1, 'module_0')
