"""Decoder architectures: PyTorch ConvTranspose1d arithmetic and the original's output lengths."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sim_jax.decoder import nets
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


@pytest.mark.parametrize('taps,length,width', [(1, 5, 5), (2, 1, 5), (2, 13, 5), (3, 4, 5), (3, 17, 5), (4, 9, 5),
                                                (5, 23, 5), (7, 8, 5), (2, 11, 3), (3, 10, 1)])
def test_polyphase_products_are_the_direct_sum(taps, length, width):
  """polyphase_products (Winograd for 2-5 taps into 5 outputs from 6 inputs; the shifted products of
  one matmul for 1 or 7 taps and for taps·outputs <= inputs) against y[q] = sum_m x[q - m] @ w[m]
  summed directly in float64 (every q of 0 .. L + taps - 1, lengths on and off the tile size), and
  its gradients against autodiff of the direct sum in float32."""
  rng = np.random.default_rng(taps * 100 + length)
  x = rng.normal(size=(3, length, 6))
  w = rng.normal(size=(taps, 6, width))
  expected = np.zeros((3, length + taps, width))
  for q in range(length + taps):
    for m in range(taps):
      if 0 <= q - m < length:
        expected[:, q] += x[:, q - m] @ w[m]
  got = nets.polyphase_products(jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32))
  assert got.shape == expected.shape
  np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5 * np.abs(expected).max())

  def direct(x, w):
    return sum(jnp.pad(x, ((0, 0), (m, taps - m), (0, 0))) @ w[m] for m in range(taps))

  target = jnp.asarray(rng.normal(size=expected.shape), jnp.float32)
  def grads(f):
    return jax.grad(lambda x, w: jnp.sum(jnp.sin(f(x, w)) * target), argnums=(0, 1))(
        jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32))

  for a, b in zip(grads(nets.polyphase_products), grads(direct)):
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * float(jnp.abs(b).max()))


@pytest.mark.parametrize('module,frames', [(0, 31), (1, 17), (2, 9)])
def test_cpu_and_plain_formulations_agree(module, frames):
  """'cpu' (polyphase, Winograd-filtered matmuls, 16 items decoded as two chunks of 8) and
  'plain' (lax.conv of the dilated input over the whole batch): the same outputs and gradients."""
  z = jax.random.normal(jax.random.PRNGKey(0), (16, frames, 8))
  cpu, plain = make_decoder(module, 8, 'cpu'), make_decoder(module, 8, 'plain')
  params = cpu.init(jax.random.PRNGKey(1), z[:1])['params']
  target = jax.random.normal(jax.random.PRNGKey(2), (16, decoded_length(cpu.layers, frames)))

  def value_and_grad(decoder):
    loss = lambda p, z: jnp.mean(jnp.square(decoder.apply({'params': p}, z) - target))  # noqa: E731
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, z)

  (value_cpu, grads_cpu), (value_plain, grads_plain) = value_and_grad(cpu), value_and_grad(plain)
  np.testing.assert_allclose(value_cpu, value_plain, rtol=1e-5)
  for a, b in zip(jax.tree_util.tree_leaves(grads_cpu), jax.tree_util.tree_leaves(grads_plain)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * float(jnp.max(jnp.abs(b))))
  np.testing.assert_allclose(cpu.apply({'params': params}, z), plain.apply({'params': params}, z),
                             rtol=1e-5, atol=1e-6)


def test_chunk_sizes(monkeypatch):
  """chunk_size: 'plain' takes the batch whole; 'cpu' the largest divisor up to CPU_CHUNK."""
  from sim_jax.decoder import nets
  assert [nets.chunk_size('plain', b) for b in (8, 64, 12)] == [8, 64, 12]
  monkeypatch.setattr(nets, 'CPU_CHUNK', 8)
  assert [nets.chunk_size('cpu', b) for b in (8, 64, 12, 7, 3)] == [8, 8, 6, 7, 3]
