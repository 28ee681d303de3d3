"""Traversal paths, item lookup and sweep-dimension choice (pure functions)."""

import numpy as np
import pytest

from sim_jax.decoder.latents import DecoderError
from sim_jax.decoder.traversals import (find_item, interpolate, parse_sweep_dims, partial_interpolate, sweep,
                                        sweep_dimensions)


def _pair():
  rng = np.random.default_rng(0)
  z_a = rng.standard_normal((6, 5)).astype(np.float32)
  z_b = z_a.copy()
  z_b[:, 3] += 4.0  # dim 3 differs most, then dim 1
  z_b[:, 1] -= 2.0
  return z_a, z_b


def test_interpolation_runs_from_a_to_b():
  z_a, z_b = _pair()
  path = np.asarray(interpolate(z_a, z_b, 5))
  assert path.shape == (5, 6, 5)
  np.testing.assert_allclose(path[0], z_a)
  np.testing.assert_allclose(path[-1], z_b)
  np.testing.assert_allclose(path[2], (z_a + z_b) / 2, rtol=1e-6)


def test_partial_interpolation_moves_only_the_top_dims():
  z_a, z_b = _pair()
  z_b[:, 0] += 0.1
  path, dims = partial_interpolate(z_a, z_b, 4, 2)
  path = np.asarray(path)
  assert list(np.asarray(dims)) == [3, 1]
  np.testing.assert_allclose(path[-1][:, [1, 3]], z_b[:, [1, 3]])
  np.testing.assert_allclose(path[:, :, [0, 2, 4]], np.broadcast_to(z_a[:, [0, 2, 4]], (4, 6, 3)))


def test_sweep_sets_one_dimension_everywhere():
  z_a, _ = _pair()
  path = np.asarray(sweep(z_a, 2, [-3.0, 0.0, 3.0]))
  assert path.shape == (3, 6, 5)
  np.testing.assert_allclose(path[:, :, 2], [[-3.0] * 6, [0.0] * 6, [3.0] * 6])
  np.testing.assert_allclose(np.delete(path, 2, axis=2), np.broadcast_to(np.delete(z_a, 2, axis=1), (3, 6, 4)))


def test_find_item_searches_splits_in_order_and_suggests_names():
  names = {'test': ['bagubi_1', 'babadu_1'], 'train': ['bibibi_2']}
  assert find_item(names, 'babadu_1') == ('test', 1)
  assert find_item(names, 'bibibi_2') == ('train', 0)
  with pytest.raises(DecoderError, match=r"no item named 'bagubi1'.*did you mean bagubi_1"):
    find_item(names, 'bagubi1')


def test_sweep_dimensions_config_probe_and_fallback(tmp_path):
  std = np.array([0.1, 0.5, 0.3, 0.9])
  assert parse_sweep_dims('2, 0', 4) == [2, 0] and parse_sweep_dims(' ', 4) is None
  assert sweep_dimensions([2, 0], '', 3, std)[0] == [2, 0]
  with pytest.raises(DecoderError, match='out of range 0..3'):
    parse_sweep_dims('7', 4)
  with pytest.raises(DecoderError, match='comma-separated integers'):
    parse_sweep_dims('a,b', 4)
  assert sweep_dimensions(None, str(tmp_path / 'missing.npz'), 2, std)[0] == [3, 1]
  probe = tmp_path / 'weights.npz'
  np.savez(probe, kernel=np.array([[0.0, 0.1], [2.0, 0.0], [0.0, -3.0], [0.1, 0.1]]))
  dims, why = sweep_dimensions(None, str(probe), 2, std)
  assert dims == [2, 1] and 'probe' in why
  with pytest.raises(DecoderError, match='rerun the probe'):
    sweep_dimensions(None, str(probe), 2, np.ones(5))


def test_sweep_dimensions_read_a_standardised_probe_on_the_raw_scale(tmp_path):
  """A kernel on standardised features weighs dimension d per std_d: on raw features it is
  kernel_d / std_d, so a large kernel row of a wide dimension ranks below a small one of a narrow one."""
  kernel = np.array([[4.0, 0.0], [0.0, 1.0], [0.5, 0.5]])  # (D, classes)
  std = np.array([10.0, 0.5, 1.0])  # raw norms 0.4, 2.0, 0.71
  probe = tmp_path / 'weights.npz'
  np.savez(probe, kernel=kernel, feature_mean=np.zeros(3), feature_std=std)
  dims, why = sweep_dimensions(None, str(probe), 3, np.ones(3))
  assert dims == [1, 2, 0] and 'mapped back to raw-feature scale' in why
  np.savez(probe, kernel=kernel, feature_mean=np.zeros(3), feature_std=np.ones(3))
  dims, why = sweep_dimensions(None, str(probe), 3, np.ones(3))
  assert dims == [0, 1, 2] and 'trained on raw features' in why
