"""Decoder architectures: PyTorch ConvTranspose1d arithmetic and the original's output lengths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sim_jax.decoder.nets import DECODER_LAYERS, ConvTranspose1d, decoded_length, make_decoder


def _scatter_transpose_conv(x, kernel, bias, stride, padding, output_padding):
  """PyTorch's definition, written as a loop: x (L, C_in), kernel (k, C_in, C_out)."""
  length, _ = x.shape
  k = kernel.shape[0]
  out_len = (length - 1) * stride - 2 * padding + k + output_padding
  y = np.tile(bias, (out_len, 1)).astype(np.float64)
  for t in range(length):
    for j in range(k):
      o = t * stride + j - padding
      if 0 <= o < out_len:
        y[o] += x[t] @ kernel[j]
  return y


@pytest.mark.parametrize('kernel,stride,padding,output_padding',
                         [(8, 4, 2, 3), (3, 1, 1, 0), (10, 5, 2, 4), (4, 2, 2, 1), (4, 2, 1, 1)])
def test_conv_transpose_matches_pytorch_definition(kernel, stride, padding, output_padding):
  layer = ConvTranspose1d(5, kernel, stride, padding, output_padding)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 13, 3))
  variables = layer.init(jax.random.PRNGKey(1), x)
  y = np.asarray(layer.apply(variables, x))
  w, b = (np.asarray(variables['params'][n]) for n in ('kernel', 'bias'))
  for i in range(2):
    np.testing.assert_allclose(
        y[i], _scatter_transpose_conv(np.asarray(x[i]), w, b, stride, padding, output_padding),
        rtol=1e-5, atol=1e-5)


def test_conv_transpose_init_is_pytorch_default():
  layer = ConvTranspose1d(7, 10)
  params = layer.init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 64)))['params']
  bound = (7 * 10) ** -0.5  # PyTorch's fan-in of a transposed conv is C_out · kernel
  assert float(jnp.max(jnp.abs(params['kernel']))) <= bound
  assert float(jnp.max(jnp.abs(params['kernel']))) > 0.9 * bound


@pytest.mark.parametrize('module,frames,samples', [(0, 511, 10240), (1, 129, 10240), (2, 64, 10240),
                                                   (0, 1023, 20480), (1, 257, 20480), (2, 128, 20480)])
def test_original_output_lengths(module, frames, samples):
  assert decoded_length(DECODER_LAYERS[module], frames) == samples
  decoder = make_decoder(module, 8)
  z = jax.ShapeDtypeStruct((2, frames, 8), jnp.float32)
  variables = jax.eval_shape(lambda a: decoder.init(jax.random.PRNGKey(0), a), z)
  out = jax.eval_shape(decoder.apply, variables, z)
  assert out.shape == (2, samples)
