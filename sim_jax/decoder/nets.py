"""Transposed-conv decoders from a conv module's latents back to audio (reference-semantics §6.1).

One architecture per conv module, the original's: a stack of PyTorch-style `ConvTranspose1d` layers
(with bias), ReLU between layers, no activation on the output, no BatchNorm. The hidden width is the
encoder's `config.model.channels`; the output is one channel, returned as (B, T).
"""

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
  sample t·stride + j - padding; `output_padding` extra samples are appended at the end. Initialised
  like PyTorch, whose fan-in for a transposed conv is C_out·kernel.
  """

  features: int
  kernel_size: int
  stride: int = 1
  padding: int = 0
  output_padding: int = 0

  @nn.compact
  def __call__(self, x):  # (B, L, C_in) -> (B, L', C_out)
    bound = (self.features * self.kernel_size) ** -0.5
    kernel = self.param('kernel', torch_uniform(bound), (self.kernel_size, x.shape[-1], self.features))
    bias = self.param('bias', torch_uniform(bound), (self.features,))
    # A transposed conv is a conv over the stride-dilated input with the flipped kernel.
    edge = self.kernel_size - 1 - self.padding
    y = jax.lax.conv_general_dilated(
        x, jnp.flip(kernel, 0), window_strides=(1,), padding=[(edge, edge + self.output_padding)],
        lhs_dilation=(self.stride,), dimension_numbers=('NWC', 'WIO', 'NWC'))
    return y + bias


class Decoder(nn.Module):
  """Latents (B, L, C) of one conv module -> waveform (B, T).

  layers: (kernel, stride, padding, output_padding) per transposed conv (`DECODER_LAYERS[module]`).
  channels: hidden width (the encoder's).
  """

  layers: tuple
  channels: int

  @nn.compact
  def __call__(self, z, length: int | None = None):  # (B, L, C) -> (B, T)
    x = z
    for j, (kernel, stride, padding, output_padding) in enumerate(self.layers):
      last = j == len(self.layers) - 1
      x = ConvTranspose1d(1 if last else self.channels, kernel, stride, padding, output_padding,
                          name=f'deconv_{j}')(x)
      if not last:
        x = nn.relu(x)
    audio = x[..., 0]  # (B, T')
    if length is not None:
      audio = fit_length(audio, length)
    return audio


def fit_length(audio, length: int):
  """Crop or zero-pad (B, T') waveforms at the end to `length` samples."""
  if audio.shape[1] >= length:
    return audio[:, :length]
  return jnp.pad(audio, ((0, 0), (0, length - audio.shape[1])))


def make_decoder(module: int, channels: int) -> Decoder:
  """The original's decoder for conv module `module` (0, 1 or 2) of an encoder `channels` wide."""
  return Decoder(DECODER_LAYERS[module], channels)
