"""Transposed-conv decoders from a conv module's latents back to audio (reference-semantics §6.1).

One architecture per conv module, the original's: a stack of PyTorch-style `ConvTranspose1d` layers
(with bias), ReLU between layers, no activation on the output, no BatchNorm. The hidden width is the
encoder's `config.model.channels`; the output is one channel, returned as (B, T).

Two formulations of the same function (`implementation`, the encoder's resolved
config.model.implementation): 'plain' is one `lax.conv` per layer with a dilated input, what
XLA:GPU/TPU lower to their convolution kernels; 'cpu' is the polyphase form (no products with a
dilated input's zeros) whose per-tap products run as Winograd-filtered batched matmuls
(`polyphase_products`: half to 3/5 of the multiplications), `CPU_CHUNK` items at a time.
"""

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


# Winograd's minimal filtering for the polyphase products: tiles of `tile` output rows from
# tile + taps - 1 = 6 input rows, interpolated at these points and infinity (F(4, 3) and F(5, 2)).
# With 0, ±1, ±1/2 every transform entry is within [-5, 5] and the float32 results are within ~1.4e-6
# of the direct products (relative norm; ±2 in place of ±1/2 measured the same). Larger tiles
# (8 points, F(6, 3)) were slower on XLA:CPU despite fewer products.
WINOGRAD_POINTS = (0.0, 1.0, -1.0, 0.5, -0.5)


@functools.lru_cache
def winograd_transforms(tile: int, taps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """A^T (tile, a), G (a, taps), B^T (a, a), a = tile + taps - 1 = len(WINOGRAD_POINTS) + 1, of the
  correlation y[i] = sum_k d[i + k]·g[k] (i < tile): y = A^T ((G g) * (B^T d)).

  Toom-Cook: a polynomial product evaluated at the points and infinity, multiplied pointwise and
  interpolated back, c = C ((E_n a) * (E_r b)); the correlation is its transpose in a, so A^T = E_n^T,
  G = E_r and B^T = C^T."""
  a = tile + taps - 1
  if a != len(WINOGRAD_POINTS) + 1:
    raise ValueError(f'Winograd tile {tile} with {taps} taps needs {a - 1} finite points')

  def evaluation(k: int) -> np.ndarray:  # (a, k): a degree-(k-1) polynomial's values, its top coefficient last
    rows = np.vander(np.asarray(WINOGRAD_POINTS), k, increasing=True)
    return np.concatenate([rows, np.eye(1, k, k - 1)])

  return evaluation(tile).T, evaluation(taps), np.linalg.inv(evaluation(a)).T


def _combine(coefficients: np.ndarray, arrays: list) -> jax.Array:
  """sum_i coefficients[i]·arrays[i], skipping zero coefficients (a fused elementwise sum)."""
  terms = [a if c == 1 else -a if c == -1 else float(c) * a for c, a in zip(coefficients, arrays) if c != 0]
  return functools.reduce(jnp.add, terms)


def polyphase_products(x, weight):
  """y[q] = sum_m x[q - m] @ weight[m] for q = 0 .. L + taps - 1.

  x: (B, L, C_in); weight: (taps, C_in, N). Returns (B, L + taps, N), its last row zero (to rounding).
  Wide outputs (taps·N > C_in) with 2 to 5 taps, every hidden layer of the original's decoders, by
  Winograd's minimal filtering: the rows are cut into tiles of 7 - taps outputs; each tile's 6
  transformed inputs (sums of its 6 input rows) meet the 6 transformed weights in 6 matmuls
  (6, B·tiles, C_in) @ (6, C_in, N): 1/2 of the direct form's multiplications at 3 taps, 3/5 at 2.
  The transforms are elementwise sums XLA fuses, and autodiff gives both gradients as the same kind
  of batched matmuls. Otherwise (the 1- or 5-channel output layers, where transforming the wide
  input costs more than the products) one matmul gives every tap's products, (B, L, taps·N), summed
  shifted.
  """
  taps, c_in, n = weight.shape
  if taps * n <= c_in or not 2 <= taps <= len(WINOGRAD_POINTS):
    products = x @ weight.transpose(1, 0, 2).reshape(c_in, taps * n)  # (B, L, taps·N)
    return sum(jnp.pad(products[..., m * n:(m + 1) * n], ((0, 0), (m, taps - m), (0, 0))) for m in range(taps))
  tile = len(WINOGRAD_POINTS) + 2 - taps
  a = tile + taps - 1
  at, g, bt = winograd_transforms(tile, taps)
  batch, length, _ = x.shape
  rows = length + taps
  tiles = -(-rows // tile)
  # y[q] = sum_k xp[q + k] @ weight[taps - 1 - k], xp: x after taps - 1 zero rows, zeros to the last tile
  xp = jnp.pad(x, ((0, 0), (taps - 1, tiles * tile - length), (0, 0)))
  d = [xp[:, i:i + tiles * tile:tile] for i in range(a)]  # a x (B, tiles, C_in): row i of every tile
  v = jnp.stack([_combine(bt[i], d) for i in range(a)]).reshape(a, batch * tiles, c_in)
  u = jnp.stack([_combine(g[i], list(weight[::-1])) for i in range(a)])  # (a, C_in, N)
  m = jax.lax.dot_general(v, u, (((2,), (1,)), ((0,), (0,))))  # (a, B·tiles, N)
  y = jnp.stack([_combine(at[j], list(m)) for j in range(tile)], axis=1)  # (B·tiles, tile, N)
  return y.reshape(batch, tiles * tile, n)[:, :rows]


class ConvTranspose1d(nn.Module):
  """PyTorch `ConvTranspose1d` with bias on (B, L, C_in) inputs.

  kernel[j, i, o] is PyTorch's weight[i, o, j]: input frame t adds x[t, i]·kernel[j, i, o] to output
  sample t·stride + j - padding; `output_padding` (< stride) extra samples are appended at the end.
  Initialised like PyTorch, whose fan-in for a transposed conv is C_out·kernel.

  'cpu' computes it in polyphase form: output sample q·stride + r (before cropping `padding`) is
  sum_m x[q - m]·kernel[r + stride·m], so all phases together are one `polyphase_products` with
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
    y = polyphase_products(x, weight)  # (B, L + taps, s·C_out)
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
