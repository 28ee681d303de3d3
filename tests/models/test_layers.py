"""The patch-matmul convolution against XLA's convolution, values and gradients; BatchNorm against float64."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sim_jax.models.layers import BatchNorm1d, conv_frames, patch_conv


def _lax_conv(x, kernel, stride, padding):
  return jax.lax.conv_general_dilated(x, kernel, (stride,), [(padding, padding)],
                                      dimension_numbers=('NWC', 'WIO', 'NWC'))


@pytest.mark.parametrize('length,channels,k,stride,padding', [
    (2048, 6, 8, 4, 2),    # the base stack's layer 1 (k = 2 * stride)
    (257, 5, 4, 2, 2),     # odd length: the last input step is never read
    (129, 4, 4, 2, 1),
    (100, 3, 3, 2, 1),     # k not a multiple of the stride (zero-padded taps)
    (50, 2, 7, 3, 0),
    (64, 3, 1, 2, 0),      # k < stride: frames skip input steps
    (511, 6, 1, 1, 0),     # the 1x1 mean / log-variance heads: a plain matmul
    (40, 3, 3, 1, 1),      # stride 1, k > 1
])
def test_patch_conv_equals_lax_conv(length, channels, k, stride, padding):
  kx, kk, kg = jax.random.split(jax.random.PRNGKey(length), 3)
  x = jax.random.normal(kx, (2, length, channels))
  kernel = jax.random.normal(kk, (k, channels, 5))
  want = _lax_conv(x, kernel, stride, padding)
  got = patch_conv(x, kernel, stride, padding)
  assert got.shape == want.shape == (2, conv_frames(length, k, stride, padding), 5)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  cotangent = jax.random.normal(kg, want.shape)
  grad = lambda f: jax.grad(lambda x, w: jnp.sum(f(x, w, stride, padding) * cotangent), (0, 1))  # noqa: E731
  for g_got, g_want in zip(grad(patch_conv)(x, kernel), grad(_lax_conv)(x, kernel)):
    np.testing.assert_allclose(g_got, g_want, rtol=1e-4, atol=1e-4)


def test_batch_norm_centres_to_the_float32_input_exactly():
  """Training-mode BatchNorm on the waveform layer's kind of output (a bias of 0.3, spread 0.01, over
  B * 4095 frames) against float64 statistics of the same float32 input. Near the mean, where ReLU
  decides whether a frame passes a gradient, the output is exact to float32 round-off of the output
  (sim_libri_bn.npz has a frame 1.2 ulps of the input above the mean); a plain float32 mean is off
  by ulps of 0.3, 2.6e-6 in normalised units here."""
  x = (0.3 + 0.01 * np.random.default_rng(0).standard_normal((4, 4095, 8))).astype(np.float32)
  bn = BatchNorm1d()
  variables = bn.init(jax.random.PRNGKey(0), x, True)
  y, _ = jax.jit(lambda x: bn.apply(variables, x, True, mutable=['batch_stats']))(x)
  x64 = x.astype(np.float64)
  want = (x64 - x64.mean((0, 1))) / np.sqrt(x64.var((0, 1)) + bn.epsilon)
  err = np.abs(np.asarray(y, np.float64) - want)
  assert err[np.abs(want) < 0.1].max() < 1e-7
  assert np.max(err / (1 + np.abs(want))) < 3e-7
