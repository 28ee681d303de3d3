"""The patch-matmul convolution against XLA's convolution, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sim_jax.models.layers import conv_frames, patch_conv


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
