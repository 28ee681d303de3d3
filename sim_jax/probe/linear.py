"""The linear probe: parameters, the jitted masked train / eval steps on feature batches.

A probe is `logits = ((x - mean) / std) @ kernel (+ bias)` over the last axis of any (..., D)
feature batch, so the same step serves time-averaged items (B, D) and frame-wise utterance batches
(B, L, D). `mean` / `std` are fixed per-dimension statistics of the training features (`Norm`;
identity by default: the original's probes see raw features). Standardising is the option for
features of a barely trained encoder, which vary by ~1e-4 around a large offset that Adam at lr 1e-3
cannot resolve in 50 epochs; it gives a bias-free probe the implicit bias −(mean/std)·W, and
`raw_scale` maps its weights back to raw features. A mask (same
leading shape) marks the real items / frames; padded ones add nothing to the loss, the gradient or
the counts, so a padded last batch trains and scores exactly like a short one.
"""

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sim_jax.models.layers import torch_uniform

INITS = ('torch', 'xavier_normal')


@dataclasses.dataclass(frozen=True)
class ProbeSpec:
  """What a probe is: input width, classes, bias on/off, initialiser ('torch' | 'xavier_normal')."""

  dim: int
  num_classes: int
  bias: bool = True
  init: str = 'torch'


def init_probe(key, spec: ProbeSpec) -> dict:
  """Probe parameters {'kernel': (D, C)[, 'bias': (C,)]}.

  'torch' is PyTorch's `nn.Linear` default, U(±1/√D) for kernel and bias (the syllable and speaker
  probes); 'xavier_normal' draws the kernel from N(0, 2/(D+C)) and keeps the default bias (the
  original's phone probe).
  """
  if spec.init not in INITS:
    raise ValueError(f'probe init {spec.init!r}: use one of {INITS}')
  k_kernel, k_bias = jax.random.split(key)
  shape = (spec.dim, spec.num_classes)
  if spec.init == 'xavier_normal':
    kernel = jax.random.normal(k_kernel, shape) * np.sqrt(2.0 / (spec.dim + spec.num_classes))
  else:
    kernel = torch_uniform(spec.dim ** -0.5)(k_kernel, shape)
  params = {'kernel': kernel}
  if spec.bias:
    params['bias'] = torch_uniform(spec.dim ** -0.5)(k_bias, (spec.num_classes,))
  return params


class Norm(NamedTuple):
  """Fixed feature standardisation: mean (D,) and std (D,)."""

  mean: np.ndarray
  std: np.ndarray


def identity_norm(dim: int) -> Norm:
  """No standardisation (raw features)."""
  return Norm(np.zeros(dim, np.float32), np.ones(dim, np.float32))


def feature_norm(data: 'ProbeData', chunk: int = 1 << 16) -> Norm:
  """Per-dimension mean and std of the labelled rows of `data` (streamed: rows may be memory-mapped).

  A constant dimension gets std 1 (it then carries nothing, instead of amplified rounding noise).
  """
  total = np.zeros(data.x.shape[1])
  squares = np.zeros(data.x.shape[1])
  count = 0
  for start in range(0, len(data.labels), chunk):
    keep = data.labels[start:start + chunk] >= 0
    rows = np.asarray(data.x[start:start + chunk], np.float64)[keep]  # (n, D)
    total += rows.sum(0)
    squares += np.square(rows).sum(0)
    count += len(rows)
  mean = total / max(count, 1)
  std = np.sqrt(np.maximum(squares / max(count, 1) - np.square(mean), 0.0))
  std = np.where(std > 1e-7 * max(np.abs(mean).max(), 1e-30), std, 1.0)
  return Norm(mean.astype(np.float32), std.astype(np.float32))


def raw_scale(params: dict, norm: Norm) -> dict:
  """The probe on raw features equivalent to `params` on standardised ones: kernel / std and
  bias − (mean / std) · kernel ('bias' present whenever the standardisation gives one)."""
  kernel = np.asarray(params['kernel'], np.float64)  # (D, C)
  scale = 1.0 / np.asarray(norm.std, np.float64)  # (D,)
  shift = -(np.asarray(norm.mean, np.float64) * scale) @ kernel  # (C,)
  out = {'kernel': (kernel * scale[:, None]).astype(np.float32)}
  if 'bias' in params or np.any(shift):
    out['bias'] = (np.asarray(params.get('bias', 0.0), np.float64) + shift).astype(np.float32)
  return out


def probe_logits(params: dict, norm: Norm, x):  # (..., D) -> (..., C)
  """The probe's logits on raw features x."""
  logits = ((x - norm.mean) / norm.std) @ params['kernel']
  return logits + params['bias'] if 'bias' in params else logits


def make_optimizer(learning_rate: float, gradient_clipping: float = 0.0) -> optax.GradientTransformation:
  """Adam (the original's betas / eps), after clipping the global gradient norm if `gradient_clipping` > 0."""
  adam = optax.adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8)
  return optax.chain(optax.clip_by_global_norm(gradient_clipping), adam) if gradient_clipping > 0 else adam


def _masked_terms(params, norm, x, labels, mask):
  """Per-item cross-entropy and correctness, zeroed where mask is 0."""
  logits = probe_logits(params, norm, x)  # (..., C)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)  # (...)
  pred = jnp.argmax(logits, axis=-1)
  mask = mask.astype(logits.dtype)
  return ce * mask, (pred == labels) * mask, pred


def make_train_step(tx: optax.GradientTransformation):
  """Jitted (params, opt_state, norm, x (..., D), labels (...), mask (...)) -> (params, opt_state, metrics).

  The loss is the mean cross-entropy over the real items of the batch (PyTorch's
  `CrossEntropyLoss()`); metrics holds its sums: {'loss': Σ ce, 'correct': Σ hits, 'count': Σ mask}.
  """

  def step(params, opt_state, norm, x, labels, mask):
    def loss_fn(p):
      ce, hits, _ = _masked_terms(p, norm, x, labels, mask)
      count = jnp.sum(mask.astype(ce.dtype))
      return jnp.sum(ce) / jnp.maximum(count, 1.0), (jnp.sum(ce), jnp.sum(hits), count)

    (_, (loss, correct, count)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, {'loss': loss, 'correct': correct, 'count': count}

  return jax.jit(step, donate_argnums=(0, 1))


@jax.jit
def eval_step(params, norm, x, labels, mask) -> tuple[Any, Any]:
  """Summed cross-entropy over the real items, and the predicted class of every item (...)."""
  ce, _, pred = _masked_terms(params, norm, x, labels, mask)
  return jnp.sum(ce), pred


@dataclasses.dataclass
class ProbeData:
  """Labelled features as items of one or more frames.

  x: (F, D) feature rows (pooled items: one row each; utterances: every frame, memory-mapped for
  large splits). labels: (F,) int32, −1 where a row has no target (unaligned or broken item).
  offsets: (N + 1,), item i owns rows offsets[i]:offsets[i+1].
  """

  x: np.ndarray
  labels: np.ndarray
  offsets: np.ndarray

  @classmethod
  def pooled(cls, x: np.ndarray, labels: np.ndarray) -> 'ProbeData':
    """One row per item: x (N, D), labels (N,)."""
    return cls(x, np.asarray(labels, np.int32), np.arange(len(x) + 1))

  @property
  def num_items(self) -> int:
    """Number of items N."""
    return len(self.offsets) - 1

  def trainable_items(self) -> np.ndarray:
    """Indices of the items with at least one labelled row."""
    labelled = np.concatenate([[0], np.cumsum(self.labels >= 0)])
    return np.flatnonzero(labelled[self.offsets[1:]] > labelled[self.offsets[:-1]])


def padded_length(longest: int, multiple: int = 64) -> int:
  """Frames of a batch: 1 for pooled items, else `longest` rounded up (few distinct jit shapes)."""
  return 1 if longest <= 1 else -(-longest // multiple) * multiple


def batch_of(data: ProbeData, items: np.ndarray, batch_size: int):
  """Items `items` (at most batch_size) as x (B, L, D), labels (B, L), mask (B, L); rows past an
  item's end and missing items (the padded last batch) are masked."""
  starts = data.offsets[items]
  lengths = data.offsets[items + 1] - starts
  length = padded_length(int(lengths.max()))
  rows = np.zeros((batch_size, length), np.int64)
  inside = np.zeros((batch_size, length), bool)
  rows[:len(items)] = starts[:, None] + np.arange(length)[None]
  inside[:len(items)] = np.arange(length)[None] < lengths[:, None]
  rows = np.where(inside, rows, 0)
  labels = np.where(inside, data.labels[rows], -1)  # (B, L)
  x = np.asarray(data.x[rows.reshape(-1)], np.float32).reshape(batch_size, length, -1)
  return x, np.maximum(labels, 0), (labels >= 0).astype(np.float32)


def train_epoch(train_step, params, opt_state, norm: Norm, data: ProbeData, items: np.ndarray,
                batch_size: int, order_seed, drop_last: bool = False) -> tuple[dict, Any, dict]:
  """One pass over `items` in the order drawn from `order_seed` (None: in the given order); returns
  params, opt_state and the epoch's mean loss and accuracy over the labelled rows trained on.

  drop_last: whole batches only, as the original's loaders (the last len(items) mod batch_size items
  of the order sit the epoch out); a set smaller than one batch still trains, as one short batch.
  """
  order = items if order_seed is None else np.random.default_rng(order_seed).permutation(items)
  if drop_last and len(order) >= batch_size:
    order = order[:len(order) // batch_size * batch_size]
  totals = None
  for start in range(0, len(order), batch_size):
    x, labels, mask = batch_of(data, order[start:start + batch_size], batch_size)
    params, opt_state, metrics = train_step(params, opt_state, norm, x, labels, mask)
    totals = metrics if totals is None else jax.tree_util.tree_map(jnp.add, totals, metrics)
  totals = jax.device_get(totals)
  count = max(float(totals['count']), 1.0)
  return params, opt_state, {'loss': float(totals['loss']) / count,
                             'accuracy': float(totals['correct']) / count}


def predict(params, norm: Norm, data: ProbeData, batch_size: int) -> tuple[float, np.ndarray, np.ndarray]:
  """Scores every labelled row of `data` (all items, in order, the last batch padded).

  Returns the mean cross-entropy, and the targets and predictions of the labelled rows (M,) each.
  """
  losses, targets, preds = [], [], []
  for start in range(0, data.num_items, batch_size):
    items = np.arange(start, min(start + batch_size, data.num_items))
    x, labels, mask = batch_of(data, items, batch_size)
    loss, pred = eval_step(params, norm, x, labels, mask)
    keep = mask > 0
    losses.append(loss)
    targets.append(labels[keep])
    preds.append(np.asarray(pred)[keep])
  targets = np.concatenate(targets) if targets else np.zeros(0, np.int32)
  preds = np.concatenate(preds) if preds else np.zeros(0, np.int32)
  total = float(np.sum(jax.device_get(losses))) if losses else 0.0
  return total / max(len(targets), 1), targets, preds
