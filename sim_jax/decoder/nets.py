"""Transposed-conv decoders from a conv module's latents back to audio (reference-semantics §6.1).

One architecture per conv module, the original's: a stack of PyTorch-style `ConvTranspose1d` layers
(with bias), ReLU between layers, no activation on the output, no BatchNorm. The hidden width is the
encoder's `config.model.channels`; the output is one channel, returned as (B, T).

Two formulations of the same function (`implementation`, the encoder's resolved
config.model.implementation): 'plain' is one `lax.conv` per layer with a dilated input, what
XLA:GPU/TPU lower to their convolution kernels; 'cpu' is the polyphase form as plain matmuls with a
custom gradient (`polyphase_matmul`), run `CPU_CHUNK` items at a time.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sim_jax.models.layers import torch_uniform

# Per conv module: (kernel, stride, padding, output_padding) of each transposed conv, in order.
# De Boer 511 / 129 / 64 frames and LibriSpeech 1023 / 257 / 128 frames all decode to 10240 / 20480.
DECODER_LAYERS = (
    ((8, 4, 2, 3), (3, 1, 1, 0), (3, 1, 1, 0), (10, 5, 2, 4), (3, 1, 1, 0), (3, 1, 1, 0)),
    ((4, 2, 2, 0), (4, 2, 2, 1), (8, 4, 2, 3), (10, 5, 2, 4)),
    ((4, 2, 1, 1), (4, 2, 2, 0), (4, 2, 2, 1), (8, 4, 2, 3), (10, 5, 2, 4)),
)
IMPLEMENTATIONS = ('cpu', 'plain')
# Items per decoder pass in the 'cpu' formulation. The module-0 decoder's last layers hold 512 channels
# at the full 16 kHz rate (21 MB per item and layer); 8 items keep every matmul 82k rows long while a
# training step at the recipe's batch 64 needs the memory of batch 8 (train.py accumulates gradients
# over the chunks), and a forward-only pass a chunk's temporaries.
CPU_CHUNK = 8


def transposed_frames(length: int, kernel: int, stride: int, padding: int, output_padding: int) -> int:
  """Output length of PyTorch's ConvTranspose1d: (L - 1)·stride - 2·padding + kernel + output_padding."""
  return (length - 1) * stride - 2 * padding + kernel + output_padding


def decoded_length(layers: Sequence[tuple], frames: int) -> int:
  """Samples a decoder with `layers` produces from `frames` latent frames."""
  for layer in layers:
    frames = transposed_frames(frames, *layer)
  return frames


def chunk_size(implementation: str, batch: int) -> int:
  """Items per decoder pass: the whole batch ('plain'), else the largest divisor of `batch` up to
  CPU_CHUNK ('cpu')."""
  if implementation == 'plain':
    return batch
  return max(d for d in range(1, min(CPU_CHUNK, batch) + 1) if batch % d == 0)


def _delayed(x, taps: int):
  """(B, L, C) -> (B, L + taps, taps·C): block m of row q is x[q - m] (zero outside 0..L-1)."""
  return jnp.concatenate([jnp.pad(x, ((0, 0), (m, taps - m), (0, 0))) for m in range(taps)], axis=-1)


@jax.custom_vjp
def polyphase_matmul(x, weight):
  """y[q] = sum_m x[q - m] @ weight[m] for q = 0 .. L + taps - 1: one matmul of the inputs' delayed
  copies side by side, (B, L + taps, taps·C_in) @ (taps·C_in, N).

  x: (B, L, C_in); weight: (taps, C_in, N). Returns (B, L + taps, N) (its last row is zero).
  Its gradient is two matmuls as well (`_polyphase_bwd`), where autodiff of per-tap matmuls on
  shifted slices copies each slice and runs the weight gradient as a separate dot per tap.
  """
  taps, c_in, n = weight.shape
  return _delayed(x, taps) @ weight.reshape(taps * c_in, n)


def _polyphase_fwd(x, weight):
  return polyphase_matmul(x, weight), (x, weight)  # x, not its taps-times-wider delayed copies


def _polyphase_bwd(residuals, dy):
  """dweight = delayed(x)^T @ dy, one matmul (the delayed copies rebuilt from x); dx[p] = sum_m
  dy[p + m] @ weight[m]^T, one matmul dy @ [weight[0]^T | ...] (B, L + taps, taps·C_in) whose blocks
  are summed shifted back. Every array is C_in wide per tap: for the strided layers N = stride·C_out
  is the wider side, so nothing N·taps wide is built."""
  x, weight = residuals
  taps, c_in, n = weight.shape
  length = x.shape[1]
  dweight = _delayed(x, taps).reshape(-1, taps * c_in).T @ dy.reshape(-1, n)  # (taps·C_in, N)
  blocks = dy @ weight.transpose(2, 0, 1).reshape(n, taps * c_in)  # (B, L + taps, taps·C_in)
  dx = sum(blocks[:, m:m + length, m * c_in:(m + 1) * c_in] for m in range(taps))  # (B, L, C_in)
  return dx.astype(x.dtype), dweight.reshape(weight.shape).astype(weight.dtype)


polyphase_matmul.defvjp(_polyphase_fwd, _polyphase_bwd)


class ConvTranspose1d(nn.Module):
  """PyTorch `ConvTranspose1d` with bias on (B, L, C_in) inputs.

  kernel[j, i, o] is PyTorch's weight[i, o, j]: input frame t adds x[t, i]·kernel[j, i, o] to output
  sample t·stride + j - padding; `output_padding` (< stride) extra samples are appended at the end.
  Initialised like PyTorch, whose fan-in for a transposed conv is C_out·kernel.

  'cpu' computes it in polyphase form: output sample q·stride + r (before cropping `padding`) is
  sum_m x[q - m]·kernel[r + stride·m], so all phases together are one `polyphase_matmul` with
  (taps, C_in, stride·C_out) weights, taps = ceil(kernel / stride), reshaped. This skips the zeros a
  stride-dilated input would multiply. 'plain' is `lax.conv` of the stride-dilated, padded input
  with the flipped kernel.
  """

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  output_padding: int = 0
  plain: bool = False

  @nn.compact
  def __call__(self, x):  # (B, L, C_in) -> (B, L', C_out)
    k, s, c_in, c_out = self.kernel_size, self.stride, x.shape[-1], self.features
    bound = (c_out * k) ** -0.5
    kernel = self.param('kernel', torch_uniform(bound), (k, c_in, c_out))
    bias = self.param('bias', torch_uniform(bound), (c_out,))
    length = transposed_frames(x.shape[1], k, s, self.padding, self.output_padding)
    if self.plain:
      edge = k - 1 - self.padding
      y = jax.lax.conv_general_dilated(x, kernel[::-1], window_strides=(1,),
                                       padding=[(edge, edge + self.output_padding)], lhs_dilation=(s,),
                                       dimension_numbers=('NWC', 'WIO', 'NWC'))
      return y + bias
    taps = -(-k // s)
    phases = jnp.pad(kernel, ((0, taps * s - k), (0, 0), (0, 0))).reshape(taps, s, c_in, c_out)
    weight = phases.transpose(0, 2, 1, 3).reshape(taps, c_in, s * c_out)  # weight[m][:, r] = kernel[r + s·m]
    y = polyphase_matmul(x, weight)  # (B, L + taps, s·C_out)
    y = y.reshape(x.shape[0], -1, c_out)  # sample q·s + r = output sample + padding
    return y[:, self.padding:self.padding + length] + bias


class Decoder(nn.Module):
  """Latents (B, L, C) of one conv module -> waveform (B, T).

  layers: (kernel, stride, padding, output_padding) per transposed conv (`DECODER_LAYERS[module]`).
  channels: hidden width (the encoder's). implementation: 'cpu' | 'plain' (see the module docstring);
  'cpu' decodes `chunk_size` items at a time (every item's output is the same either way).
  """

  layers: tuple
  channels: int
  implementation: str = 'cpu'

  @nn.compact
  def __call__(self, z):  # (B, L, C) -> (B, T)
    if self.implementation not in IMPLEMENTATIONS:
      raise ValueError(f'decoder implementation {self.implementation!r}: use one of {IMPLEMENTATIONS}')
    convs = [ConvTranspose1d(1 if j == len(self.layers) - 1 else self.channels, *layer,
                             plain=self.implementation == 'plain', name=f'deconv_{j}')
             for j, layer in enumerate(self.layers)]
    batch = z.shape[0]
    chunk = chunk_size(self.implementation, batch)
    if chunk == batch or self.is_initializing():
      return _stack(convs, z)
    # the same layers as a pure function of their parameters, mapped over chunks of items
    params = self.variables['params']
    unbound = [conv.clone(parent=None) for conv in convs]
    one = functools.partial(_apply_stack, unbound, params)
    out = jax.lax.map(one, z.reshape((batch // chunk, chunk) + z.shape[1:]))  # (n, chunk, T)
    return out.reshape(batch, -1)


def _stack(convs, z):
  """The layers in order, ReLU between them: (B, L, C) -> (B, T)."""
  x = z
  for j, conv in enumerate(convs):
    x = conv(x)
    if j < len(convs) - 1:
      x = nn.relu(x)
  return x[..., 0]


def _apply_stack(convs, params, z):
  """`_stack` of unbound layers with their parameters params['deconv_<j>']."""
  x = z
  for j, conv in enumerate(convs):
    x = conv.apply({'params': params[f'deconv_{j}']}, x)
    if j < len(convs) - 1:
      x = nn.relu(x)
  return x[..., 0]


def make_decoder(module: int, channels: int, implementation: str = 'cpu') -> Decoder:
  """The original's decoder for conv module `module` (0, 1 or 2) of an encoder `channels` wide;
  `implementation` as the encoder's resolved config.model.implementation ('cpu' | 'plain')."""
  return Decoder(DECODER_LAYERS[module], channels, implementation)
