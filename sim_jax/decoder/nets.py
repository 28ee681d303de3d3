"""Transposed-conv decoders from a conv module's latents back to audio (reference-semantics §6.1).

One architecture per conv module, the original's: a stack of PyTorch-style `ConvTranspose1d` layers
(with bias), ReLU between layers, no activation on the output, no BatchNorm. The hidden width is the
encoder's `config.model.channels`; the output is one channel, returned as (B, T).
"""

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from sim_jax.models.layers import torch_uniform

# Per conv module: (kernel, stride, padding, output_padding) of each transposed conv, in order.
# De Boer 511 / 129 / 64 frames and LibriSpeech 1023 / 257 / 128 frames all decode to 10240 / 20480.
DECODER_LAYERS = (
    ((8, 4, 2, 3), (3, 1, 1, 0), (3, 1, 1, 0), (10, 5, 2, 4), (3, 1, 1, 0), (3, 1, 1, 0)),
    ((4, 2, 2, 0), (4, 2, 2, 1), (8, 4, 2, 3), (10, 5, 2, 4)),
    ((4, 2, 1, 1), (4, 2, 2, 0), (4, 2, 2, 1), (8, 4, 2, 3), (10, 5, 2, 4)),
)


def transposed_frames(length: int, kernel: int, stride: int, padding: int, output_padding: int) -> int:
  """Output length of PyTorch's ConvTranspose1d: (L - 1)·stride - 2·padding + kernel + output_padding."""
  return (length - 1) * stride - 2 * padding + kernel + output_padding


def decoded_length(layers: Sequence[tuple], frames: int) -> int:
  """Samples a decoder with `layers` produces from `frames` latent frames."""
  for layer in layers:
    frames = transposed_frames(frames, *layer)
  return frames


class ConvTranspose1d(nn.Module):
  """PyTorch `ConvTranspose1d` with bias on (B, L, C_in) inputs.

  kernel[j, i, o] is PyTorch's weight[i, o, j]: input frame t adds x[t, i]·kernel[j, i, o] to output
  sample t·stride + j - padding; `output_padding` (< stride) extra samples are appended at the end.
  Initialised like PyTorch, whose fan-in for a transposed conv is C_out·kernel.

  Computed in polyphase form: output sample q·stride + r (before cropping `padding`) is
  sum_m x[q - m]·kernel[r + stride·m], so all phases together are ceil(kernel / stride) matmuls of
  shifted inputs with (C_in, stride·C_out) weights, reshaped. This skips the zeros a stride-dilated
  input would multiply, and avoids XLA:CPU's very slow weight gradient of short convolutions.
  """

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  output_padding: int = 0

  @nn.compact
  def __call__(self, x):  # (B, L, C_in) -> (B, L', C_out)
    k, s, c_in, c_out = self.kernel_size, self.stride, x.shape[-1], self.features
    bound = (c_out * k) ** -0.5
    kernel = self.param('kernel', torch_uniform(bound), (k, c_in, c_out))
    bias = self.param('bias', torch_uniform(bound), (c_out,))
    taps = -(-k // s)
    phases = jnp.pad(kernel, ((0, taps * s - k), (0, 0), (0, 0))).reshape(taps, s, c_in, c_out)
    # phases[m, r] = kernel[r + s·m]
    weight = phases.transpose(0, 2, 1, 3).reshape(taps, c_in, s * c_out)
    padded = jnp.pad(x, ((0, 0), (taps - 1, taps), (0, 0)))  # x[q - m] = padded[q + taps - 1 - m]
    rows = x.shape[1] + taps
    y = sum(padded[:, taps - 1 - m:taps - 1 - m + rows] @ weight[m] for m in range(taps))  # (B, rows, s·C_out)
    y = y.reshape(x.shape[0], rows * s, c_out)  # sample q·s + r = output sample + padding
    length = transposed_frames(x.shape[1], k, s, self.padding, self.output_padding)
    return y[:, self.padding:self.padding + length] + bias


class Decoder(nn.Module):
  """Latents (B, L, C) of one conv module -> waveform (B, T).

  layers: (kernel, stride, padding, output_padding) per transposed conv (`DECODER_LAYERS[module]`).
  channels: hidden width (the encoder's).
  """

  layers: tuple
  channels: int

  @nn.compact
  def __call__(self, z):  # (B, L, C) -> (B, T)
    x = z
    for j, (kernel, stride, padding, output_padding) in enumerate(self.layers):
      last = j == len(self.layers) - 1
      x = ConvTranspose1d(1 if last else self.channels, kernel, stride, padding, output_padding,
                          name=f'deconv_{j}')(x)
      if not last:
        x = nn.relu(x)
    return x[..., 0]


def make_decoder(module: int, channels: int) -> Decoder:
  """The original's decoder for conv module `module` (0, 1 or 2) of an encoder `channels` wide."""
  return Decoder(DECODER_LAYERS[module], channels)
