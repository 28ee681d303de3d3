"""Layers with the original PyTorch semantics: Conv1d, BatchNorm1d and a single-layer GRU.

All activations are channels-last, (B, L, C). Parameters keep names that map one-to-one onto the
original `state_dict` (see `sim_jax.reference`), and are initialised like PyTorch's defaults
(U(±1/√fan_in) for conv and linear weights and biases, U(±1/√H) for the GRU).
"""

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp


def torch_uniform(bound: float) -> Callable:
  """Initializer drawing U(-bound, bound), PyTorch's default for conv, linear and GRU parameters."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def conv_frames(num_samples: int, kernel_size: int, stride: int, padding: int) -> int:
  """Output length of a 1-D convolution (PyTorch's floor arithmetic)."""
  return (num_samples + 2 * padding - kernel_size) // stride + 1


class Conv1d(nn.Module):
  """PyTorch `Conv1d` with bias on (B, L, C_in) inputs; kernel stored as (k, C_in, C_out).

  `plain`: always `lax.conv` (XLA:GPU/TPU); otherwise layers after the waveform one are
  `patch_conv` matmuls (XLA:CPU). Both compute the same function.
  """

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  plain: bool = False

  @nn.compact
  def __call__(self, x):  # (B, L, C_in) -> (B, L', C_out)
    fan_in = x.shape[-1] * self.kernel_size
    bound = fan_in ** -0.5
    kernel = self.param('kernel', torch_uniform(bound), (self.kernel_size, x.shape[-1], self.features))
    bias = self.param('bias', torch_uniform(bound), (self.features,))
    if x.shape[-1] > 1 and not self.plain:
      return patch_conv(x, kernel, self.stride, self.padding) + bias
    # the waveform layer (one input channel): XLA's conv beats a matmul with a 10-wide contraction
    y = jax.lax.conv_general_dilated(
        x, kernel, window_strides=(self.stride,), padding=[(self.padding, self.padding)],
        dimension_numbers=('NWC', 'WIO', 'NWC'))
    return y + bias


def patch_conv(x, kernel, stride: int, padding: int):
  """A 1-D convolution as one matmul over patches of whole stride-frames; equal to lax.conv.

  The padded input is cut into frames of `stride` steps (B, L + m - 1, stride * C_in),
  m = ceil(k / stride); patch t is frames t .. t + m - 1 side by side (B, L, m * stride * C_in), and
  the kernel, zero-padded to m * stride taps, is already that matmul's (m * stride * C_in, C_out)
  weight. A 1x1 convolution is the plain matmul. The gradients are plain matmuls too (see
  `_patch_matmul_bwd`), where XLA:CPU's strided-conv gradients (a dilated input-gradient conv,
  transposes of the input, and for 1x1 heads a transposed copy of the whole activation) run at a
  fraction of the matmul rate.
  x: (B, T, C_in); kernel: (k, C_in, C_out). Returns (B, L, C_out), L = conv_frames(T, k, stride, padding).
  """
  batch, length, channels = x.shape
  k, _, features = kernel.shape
  m = -(-k // stride)
  frames = conv_frames(length, k, stride, padding)
  used = (frames + m - 1) * stride  # input steps the patches cover (taps past k have zero weight)
  x = jnp.pad(x, ((0, 0), (padding, max(used - length - padding, 0)), (0, 0)))[:, :used]
  x = x.reshape(batch, frames + m - 1, stride * channels)
  kernel = jnp.pad(kernel, ((0, m * stride - k), (0, 0), (0, 0)))
  return _patch_matmul(x, kernel.reshape(m * stride * channels, features), m)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _patch_matmul(frames, kernel, m: int):
  """(B, L + m - 1, W) frames @ (m * W, C_out) kernel over patches of m frames -> (B, L, C_out)."""
  length = frames.shape[1] - m + 1
  patches = jnp.concatenate([frames[:, j:j + length] for j in range(m)], axis=-1)  # (B, L, m*W)
  return patches @ kernel


def _patch_matmul_fwd(frames, kernel, m: int):
  return _patch_matmul(frames, kernel, m), (frames, kernel)  # the frames, not the m-times-wider patches


def _patch_matmul_bwd(m: int, residuals, dy):
  """Output t reaches frame t + j through kernel block K_j. With dy_j = dy delayed by j frames
  (zero-padded), dframes = sum_j dy_j @ K_j^T and dK_j = frames^T @ dy_j: two matmuls on the m
  delayed copies of dy side by side (B, L + m - 1, m * C_out), and no patch-sized array (SIM batch 64:
  train-step temporaries 2.71 -> 2.24 GB at the same speed)."""
  frames, kernel = residuals
  width, features = frames.shape[-1], dy.shape[-1]
  delayed = jnp.concatenate([jnp.pad(dy, ((0, 0), (j, m - 1 - j), (0, 0))) for j in range(m)],
                            axis=-1)  # (B, L + m - 1, m*C_out)
  dk = frames.reshape(-1, width).T @ delayed.reshape(-1, m * features)  # (W, m*C_out), block j = dK_j
  dkernel = dk.reshape(width, m, features).swapaxes(0, 1).reshape(m * width, features)
  kernel_t = kernel.reshape(m, width, features).swapaxes(1, 2).reshape(m * features, width)  # K_j^T stacked
  return (delayed @ kernel_t).astype(frames.dtype), dkernel.astype(kernel.dtype)


_patch_matmul.defvjp(_patch_matmul_fwd, _patch_matmul_bwd)


class BatchNorm1d(nn.Module):
  """PyTorch `BatchNorm1d`: batch statistics over (B, L) in training, unbiased running variance.

  Training mode normalises with the biased batch variance and updates the running statistics as
  `r <- (1 - momentum) r + momentum * stat` (variance unbiased, n / (n - 1)); eval mode uses them.
  The batch mean is a first estimate plus the mean of the residuals, subtracted in that order, never
  rounded to one float32: the waveform layer's outputs sit on a bias far larger than their spread,
  and a plain float32 mean is off by a few ulps of it, enough to normalise a frame an ulp above the
  mean to exactly 0, where ReLU passes no gradient (sim_libri_bn.npz has one, positive in the original
  and in float64). The first estimate is a constant for autodiff; the gradient is unchanged.
  Statistics and normalisation are float32 whatever the input's dtype; the output has the input's.
  """

  momentum: float = 0.1
  epsilon: float = 1e-5

  @nn.compact
  def __call__(self, x, train: bool):  # (B, L, C) -> (B, L, C)
    dtype, x = x.dtype, x.astype(jnp.float32)
    channels = x.shape[-1]
    scale = self.param('scale', nn.initializers.ones, (channels,))
    bias = self.param('bias', nn.initializers.zeros, (channels,))
    running_mean = self.variable('batch_stats', 'mean', jnp.zeros, (channels,))
    running_var = self.variable('batch_stats', 'var', jnp.ones, (channels,))
    if train:
      shift = jax.lax.stop_gradient(jnp.mean(x, axis=(0, 1)))  # (C,) first estimate of the mean
      offset = jnp.mean(x - shift, axis=(0, 1))  # (C,) its error
      centred = (x - shift) - offset  # x - mean, the mean never rounded to one float32
      mean = shift + offset
      var = jnp.mean(jnp.square(centred), axis=(0, 1))
      if not self.is_initializing():
        n = x.shape[0] * x.shape[1]
        m = self.momentum
        running_mean.value = (1 - m) * running_mean.value + m * jax.lax.stop_gradient(mean)
        running_var.value = (1 - m) * running_var.value + m * jax.lax.stop_gradient(var) * n / (n - 1)
    else:
      centred, var = x - running_mean.value, running_var.value
    return (centred * jax.lax.rsqrt(var + self.epsilon) * scale + bias).astype(dtype)


class GRU(nn.Module):
  """Single-layer unidirectional PyTorch GRU from a zero state; gates in PyTorch's (r, z, n) order.

  The input projection of all time steps is one matmul; only the recurrent part is scanned.
  """

  hidden: int

  @nn.compact
  def __call__(self, x):  # (B, L, C_in) -> (B, L, H)
    h_dim = self.hidden
    init = torch_uniform(h_dim ** -0.5)
    w_ih = self.param('w_ih', init, (x.shape[-1], 3 * h_dim))
    w_hh = self.param('w_hh', init, (h_dim, 3 * h_dim))
    b_ih = self.param('b_ih', init, (3 * h_dim,))
    b_hh = self.param('b_hh', init, (3 * h_dim,))
    gates_x = jnp.einsum('blc,cg->lbg', x, w_ih) + b_ih  # (L, B, 3H)

    def cell(h, gx):  # h (B, H), gx (B, 3H)
      gh = h @ w_hh + b_hh
      r = jax.nn.sigmoid(gx[:, :h_dim] + gh[:, :h_dim])
      u = jax.nn.sigmoid(gx[:, h_dim:2 * h_dim] + gh[:, h_dim:2 * h_dim])
      n = jnp.tanh(gx[:, 2 * h_dim:] + r * gh[:, 2 * h_dim:])
      h = (1 - u) * n + u * h
      return h, h

    h0 = jnp.zeros((x.shape[0], h_dim), x.dtype)
    _, hs = jax.lax.scan(cell, h0, gates_x)  # (L, B, H)
    return jnp.swapaxes(hs, 0, 1)
