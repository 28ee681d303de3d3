"""The original PyTorch code's weights <-> ours, and number-for-number checks against its outputs.

Commands:
  python -m sim_jax.reference check FILE.npz [FILE.npz ...]
      Map the file's PyTorch weights into our parameters, feed its recorded draws, and compare every
      recorded array (heads, samples, GRU outputs, losses, gradients, the parameters after one Adam
      step, BatchNorm running statistics, eval-mode features). Prints the largest error per quantity;
      exits 1 when one is over tolerance (|err| <= max(1e-6, 1e-5 * max|ref|)). The gradient of a
      conv bias followed by training-mode BatchNorm is zero in exact arithmetic (the batch mean
      cancels it) and round-off noise in both codes: ours and the reference's must each be within
      that tolerance of 0, with max|ref| replaced by the scale of the noise, the largest per-channel
      sum over batch and frames of |dL/d conv output| (`zero_gradient_scales`).
  python -m sim_jax.reference import model_N.ckpt|state.npz --config=configs/x.py --workdir=DIR [--config.x=y ...]
      Convert a checkpoint trained with the original code into a workdir that probe.py, decode.py
      and analyze.py can read (reading a .ckpt needs torch; an .npz of the state_dict does not);
      --config.<key> overrides, e.g. --config.model.channels=32, describe a model of other widths.

The file format is described in ../shared/reference/README.md.
"""

import argparse
import functools
import json
import os
import sys
from typing import Iterator

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from sim_jax import io
from sim_jax import workdir as workdir_lib
from sim_jax.cli import error_line, parse_flags, user_errors
from sim_jax.config import model_config
from sim_jax.models import encode, frame_counts, greedy_loss, make_encoder, module_specs
from sim_jax.models.layers import BatchNorm1d
from sim_jax.state import create_train_state

RTOL, ATOL = 1e-5, 1e-6


class ReferenceFileError(ValueError):
  """A reference or checkpoint file that does not fit (missing key, wrong shape)."""


def _layer_key(prefix: str, j: int, relu: bool, part: str) -> str:
  """State_dict key of conv layer j's `part` ('weight'/'bias'). A block with a ReLU is a Sequential
  (Conv1d, [BatchNorm1d,] ReLU), so its conv is `.0`; a layer without one (the CPC extra layers' 1x1
  convs) is the bare Conv1d (the original's models/cnn_encoder.py:50-59)."""
  return f'{prefix}.encoder.encoder.{j}.0.{part}' if relu else f'{prefix}.encoder.encoder.{j}.{part}'


def _mapping(specs) -> Iterator[tuple[str, str, tuple, str]]:
  """(collection, torch key, our path, transform) for every mapped tensor."""
  for i, spec in enumerate(specs):
    p = f'fullmodel.{i}'
    m = f'module_{i}'
    if spec.kind in ('conv', 'cpc'):
      for j, (_, _, _, relu) in enumerate(spec.layers):
        yield 'params', _layer_key(p, j, relu, 'weight'), (m, 'encoder', f'conv_{j}', 'kernel'), 'conv'
        yield 'params', _layer_key(p, j, relu, 'bias'), (m, 'encoder', f'conv_{j}', 'bias'), 'id'
        if relu and spec.use_batch_norm:
          bn = f'{p}.encoder.encoder.{j}.1'
          yield 'params', f'{bn}.weight', (m, 'encoder', f'bn_{j}', 'scale'), 'id'
          yield 'params', f'{bn}.bias', (m, 'encoder', f'bn_{j}', 'bias'), 'id'
          yield 'batch_stats', f'{bn}.running_mean', (m, 'encoder', f'bn_{j}', 'mean'), 'id'
          yield 'batch_stats', f'{bn}.running_var', (m, 'encoder', f'bn_{j}', 'var'), 'id'
      for head, name in (('encoder_mu', 'mu_head'), ('encoder_var', 'logvar_head')):
        yield 'params', f'{p}.encoder.{head}.weight', (m, name, 'kernel'), 'conv'
        yield 'params', f'{p}.encoder.{head}.bias', (m, name, 'bias'), 'id'
    if spec.kind in ('gru', 'cpc'):
      g = f'{p}.autoregressor.gru'
      for torch_name, ours, tf in (('weight_ih_l0', 'w_ih', 'T'), ('weight_hh_l0', 'w_hh', 'T'),
                                   ('bias_ih_l0', 'b_ih', 'id'), ('bias_hh_l0', 'b_hh', 'id')):
        yield 'params', f'{g}.{torch_name}', (m, 'gru', ours), tf
    yield 'params', f'{p}.loss.predictor.weight', (m, 'predictor'), 'T'


_TO_OURS = {'conv': lambda w: np.transpose(w, (2, 1, 0)), 'T': lambda w: np.transpose(w),
            'id': lambda w: w}


def _set(tree: dict, path: tuple, value) -> None:
  for name in path[:-1]:
    tree = tree.setdefault(name, {})
  tree[path[-1]] = value


def _get(tree: dict, path: tuple):
  for name in path:
    tree = tree[name]
  return tree


def torch_to_variables(state: dict, specs, expected=None, source: str = 'state_dict') -> dict:
  """Our variables {'params', 'batch_stats'} from an original `state_dict` (numpy arrays).

  Keys may carry the DataParallel prefix 'module.'. With `expected` (our freshly initialised
  variables) every shape is checked; a missing key or a shape mismatch raises a one-line error
  naming the key and both shapes.
  """
  state = {k[len('module.'):] if k.startswith('module.') else k: np.asarray(v)
           for k, v in state.items()}
  variables = {'params': {}, 'batch_stats': {}}
  for collection, key, path, transform in _mapping(specs):
    if key not in state:
      raise ReferenceFileError(f'{source}: missing key {key!r} (needed for {"/".join(path)})')
    value = _TO_OURS[transform](state[key]).astype(np.float32)
    if expected is not None:
      want = tuple(_get(expected[collection], path).shape)
      if tuple(value.shape) != want:
        raise ReferenceFileError(
            f'{source}: {key!r} has shape {tuple(state[key].shape)}, which maps to {value.shape}, '
            f'but the model built from the config needs {want} (check channels/gru_hidden/'
            'prediction_steps)')
    _set(variables[collection], path, jnp.asarray(value))
  return variables


def torch_to_variables_partial(state: dict, specs, tree: dict) -> dict:
  """`tree` (our params) with the entries present in `state` (torch keys) replaced."""
  tree = jax.tree_util.tree_map(lambda x: x, tree)
  for collection, key, path, transform in _mapping(specs):
    if collection == 'params' and key in state:
      _set(tree, path, jnp.asarray(_TO_OURS[transform](state[key]), jnp.float32))
  return tree


def variables_to_torch(tree: dict, specs, collection: str = 'params') -> dict:
  """Inverse of `torch_to_variables` for one collection: {torch key: numpy array in torch layout}."""
  out = {}
  for coll, key, path, transform in _mapping(specs):
    if coll != collection:
      continue
    value = np.asarray(_get(tree, path))
    out[key] = np.transpose(value, (2, 1, 0)) if transform == 'conv' else (
        value.T if transform == 'T' else value)
  return out


def config_from_meta(meta: dict) -> ml_collections.ConfigDict:
  """The `config.model` (+ learning rate) described by a reference file's `meta`."""
  modules = meta['modules']
  arch = meta['architecture']
  if modules == ['CPCIndependentModule']:
    kind = 'cpc'
  else:
    kind = 'sim' if arch[0]['predict_distributions'] else 'gim'
  cfg = model_config(kind)
  cfg.channels = meta['cnn_hidden_dim']
  cfg.gru_hidden = meta['regressor_hidden_dim']
  cfg.prediction_steps = meta['prediction_step']
  cfg.num_negatives = meta['negative_samples']
  cfg.kld_weight = float(meta['kld_weight'])
  cfg.use_batch_norm = bool(meta['use_batch_norm'])
  if kind == 'cpc':
    cfg.cpc_variant = 'extra_layers' if len(arch[0]['kernel_sizes']) == 8 else 'conventional'
  specs = module_specs(cfg)
  for spec, a in zip(specs, arch):
    ours = [(k, s, p) for k, s, p, _ in spec.layers]
    theirs = list(zip(a['kernel_sizes'], a['strides'], a['padding']))
    if ours != theirs:
      raise ReferenceFileError(f'meta.architecture {theirs} is not the {kind} architecture {ours}')
  return cfg


def _require(data, key: str, shape=None):
  if key not in data:
    raise ReferenceFileError(f'reference file: missing key {key!r}')
  value = np.asarray(data[key])
  if shape is not None and tuple(value.shape) != tuple(shape):
    raise ReferenceFileError(f'reference file: {key!r} has shape {tuple(value.shape)}, expected {tuple(shape)}')
  return value


def compare(data, implementation: str = 'auto') -> dict[str, tuple[float, float]]:
  """Run our code on a reference file's weights, inputs and draws.

  `implementation`: config.model.implementation to check ('auto' | 'cpu' | 'plain').
  Returns {quantity: (max abs error, max abs of the reference)} for every recorded array.
  """
  meta = json.loads(str(_require(data, 'meta')))
  cfg = config_from_meta(meta)
  cfg.implementation = implementation
  specs = module_specs(cfg)
  encoder = make_encoder(cfg, specs)
  audio = _require(data, 'input')
  if audio.ndim != 3 or audio.shape[1] != 1:
    raise ReferenceFileError(f"reference file: 'input' has shape {audio.shape}, expected (B, 1, T)")
  audio = jnp.asarray(audio[:, 0, :])  # (B, T)
  batch, num_samples = audio.shape
  expected = jax.eval_shape(lambda: encoder.init(jax.random.PRNGKey(0), audio, True))
  state = {k[len('param/'):]: data[k] for k in data.files if k.startswith('param/')}
  variables = torch_to_variables(state, specs, expected, source='reference file param/')

  frames = frame_counts(specs, num_samples)
  draws = []
  for i, spec in enumerate(specs):
    length = frames[i]
    window = min(length, cfg.window)
    perm = _require(data, f'm{i}/neg_perm', (cfg.num_negatives, batch * length))
    start = int(_require(data, f'm{i}/window_start'))
    d = {'window_start': jnp.int32(max(start, 0)),
         'neg_idx': jnp.asarray(perm[:, batch * length - batch * (window - 1):], jnp.int32)}
    if spec.gaussian:
      shape = (batch, length, spec.channels)
      d['eps_c'] = jnp.asarray(_require(data, f'm{i}/eps_c', shape))
      d['eps_z'] = jnp.asarray(_require(data, f'm{i}/eps_z', shape))
    draws.append(d)

  n = len(specs)

  def loss_fn(params):
    return greedy_loss(params, variables['batch_stats'], audio, draws, encoder=encoder,
                       model_config=cfg, train=(True,) * n)

  with jax.default_matmul_precision(encoder.matmul_precision):
    (objective, (metrics, new_stats, outputs)), grads = jax.jit(
        jax.value_and_grad(loss_fn, has_aux=True))(variables['params'])
  errors = {}

  def record(name, ours, ref):
    ref = np.asarray(ref, np.float64)
    ours = np.asarray(ours, np.float64)
    if ours.shape != ref.shape:
      raise ReferenceFileError(f'{name}: our shape {ours.shape} != reference shape {ref.shape}')
    errors[name] = (float(np.max(np.abs(ours - ref))) if ref.size else 0.0,
                    float(np.max(np.abs(ref))) if ref.size else 0.0)

  for i, out in enumerate(outputs):
    for key in ('mu', 'logvar', 'c', 'z'):
      if f'm{i}/{key}' in data.files:
        record(f'm{i}/{key}', out[key], data[f'm{i}/{key}'])
    for key in ('nce', 'kld', 'total'):
      record(f'm{i}/{key}', metrics[key][i], _require(data, f'm{i}/{key}'))
  if 'total_loss' in meta:
    record('total_loss', objective, meta['total_loss'])

  torch_grads = variables_to_torch(grads, specs)
  zero_scales = zero_gradient_scales(loss_fn, variables['params'], specs)
  for key in sorted(k for k in data.files if k.startswith('grad/')):
    name = key[len('grad/'):]
    if name not in torch_grads:
      raise ReferenceFileError(f'reference file: {key!r} names no parameter of the model')
    if name in zero_scales:  # exactly 0: both codes' round-off is compared with 0, at its own scale
      errors[key] = (float(max(np.max(np.abs(torch_grads[name])), np.max(np.abs(data[key])))),
                     zero_scales[name])
    else:
      record(key, torch_grads[name], data[key])

  # The optimizer step is checked on the recorded gradients: Adam's first step maps any nonzero g to
  # about ±lr, so our round-off noise in a mathematically zero gradient (above) cannot reproduce theirs.
  ref_grads = jax.tree_util.tree_map(jnp.zeros_like, variables['params'])
  recorded = {k[len('grad/'):]: data[k] for k in data.files if k.startswith('grad/')}
  ref_grads = torch_to_variables_partial(recorded, specs, ref_grads)
  optimizer = optax.adam(meta['learning_rate'], b1=0.9, b2=0.999, eps=1e-8)
  updates, _ = optimizer.update(ref_grads, optimizer.init(variables['params']), variables['params'])
  new_params = optax.apply_updates(variables['params'], updates)
  after = variables_to_torch(new_params, specs)
  after.update(_torch_running_stats(new_stats, specs))
  for key in sorted(k for k in data.files if k.startswith('param_after_adam/')):
    name = key[len('param_after_adam/'):]
    if name.endswith('num_batches_tracked'):
      continue
    if name not in after:
      raise ReferenceFileError(f'reference file: {key!r} names no parameter of the model')
    record(key, after[name], data[key])

  eval_keys = [k for k in data.files if k.startswith('eval/')]
  if eval_keys:
    new_variables = {'params': new_params, 'batch_stats': new_stats} if new_stats else {'params': new_params}
    eval_outputs = jax.jit(functools.partial(encode, encoder))(new_variables, audio)
    for key in sorted(eval_keys):
      _, module, quantity = key.split('/')
      record(key, eval_outputs[int(module[1:])][quantity], data[key])
  return errors


def zero_gradient_scales(loss_fn, params, specs) -> dict[str, float]:
  """{torch key: noise scale} for every conv bias followed by training-mode BatchNorm.

  Such a bias's gradient is sum_(b,t) dL/dy_btc (y: the conv's output), which the batch mean makes 0
  in exact arithmetic; in float32 it is the round-off of that sum, so its scale is
  max_c sum_(b,t) |dL/dy_btc|, found here by adding a zero to every BatchNorm input.
  loss_fn(params) -> (loss, aux) runs the stack with BatchNorm in training mode.
  """
  layers = [(i, j) for i, spec in enumerate(specs) if spec.use_batch_norm
            for j, (_, _, _, relu) in enumerate(spec.layers) if relu]
  if not layers:
    return {}

  shapes = []

  def record(x):
    shapes.append(jax.ShapeDtypeStruct(x.shape, x.dtype))
    return x

  with _on_batch_norm_inputs(record):
    jax.eval_shape(loss_fn, params)
  assert len(shapes) == len(layers), (len(shapes), layers)  # ConvStack's blocks, module by module

  def loss_with(zeros):  # zeros: one (B, L, C) array per BatchNorm call, in call order
    calls = iter(zeros)
    with _on_batch_norm_inputs(lambda x: x + next(calls)):
      return loss_fn(params)[0]

  grads = jax.jit(jax.grad(loss_with))([jnp.zeros(s.shape, s.dtype) for s in shapes])
  return {_layer_key(f'fullmodel.{i}', j, True, 'bias'): float(jnp.max(jnp.sum(jnp.abs(g), axis=(0, 1))))
          for (i, j), g in zip(layers, grads)}


def _on_batch_norm_inputs(fn):
  """Context in which every BatchNorm1d call sees fn(x) instead of its input x."""

  def intercept(next_fun, args, kwargs, context):
    if isinstance(context.module, BatchNorm1d) and context.method_name == '__call__':
      args = (fn(args[0]),) + tuple(args[1:])
    return next_fun(*args, **kwargs)

  return nn.intercept_methods(intercept)


def _torch_running_stats(batch_stats, specs) -> dict:
  """BatchNorm running statistics in torch naming."""
  return variables_to_torch(batch_stats, specs, collection='batch_stats') if batch_stats else {}


def within_tolerance(error: float, scale: float) -> bool:
  """float32 round-off: |err| <= max(1e-6, 1e-5 * scale); scale is max|ref| or a zero gradient's noise scale."""
  return error <= max(ATOL, RTOL * scale)


def check_file(path: str, out=sys.stdout) -> bool:
  """Print the largest error per quantity of one reference file; True when all are in tolerance."""
  with np.load(path) as data:
    errors = compare(data)
  worst = 0.0
  ok = True
  print(f'{path}: {len(errors)} quantities (scale: max|ref|, or for the zero gradient of a conv bias '
        'before training-mode BatchNorm max_c sum |dL/d conv output|)', file=out)
  for name, (err, scale) in errors.items():
    good = within_tolerance(err, scale)
    ok &= good
    worst = max(worst, err / max(scale, ATOL / RTOL))
    print(f'  {"ok  " if good else "FAIL"} {name:60s} max|err| {err:.2e}  scale {scale:.2e}', file=out)
  print(f'{path}: {"PASS" if ok else "FAIL"} (worst relative error {worst:.2e})', file=out)
  return ok


def load_torch_state(path: str) -> dict:
  """A PyTorch state_dict as numpy arrays from a `.ckpt`/`.pt` (needs torch) or an `.npz`."""
  if not os.path.isfile(path):
    raise ReferenceFileError(f'{path}: no such file')
  if path.endswith('.npz'):
    with np.load(path) as data:
      if 'meta' in data.files and any(k.startswith('param/') for k in data.files):
        raise ReferenceFileError(f'{path} is a reference-output file (test it with `python -m sim_jax.reference '
                              'check`), not a state_dict; its param/* arrays without the prefix are one')
      return {k: data[k] for k in data.files}
  try:
    import torch  # only here: reading the original's pickled checkpoints needs it
  except ImportError:
    raise ReferenceFileError(f'{path}: reading a PyTorch checkpoint needs torch (pip install torch), or '
                          'save it as .npz: np.savez(f, **{k: v.numpy() for k, v in sd.items()})'
                          ) from None
  state = torch.load(path, map_location='cpu', weights_only=True)
  return {k: v.detach().cpu().numpy() for k, v in state.items() if hasattr(v, 'numpy')}


def import_original_checkpoint(checkpoint: str, config: ml_collections.ConfigDict, workdir: str) -> None:
  """Turn a checkpoint of the original PyTorch code into a workdir the downstream stages can read;
  `config` describes its model (widths must match the checkpoint's)."""
  held = workdir_lib.holds_a_run(workdir)
  if held:
    raise workdir_lib.WorkdirError(f'{workdir} already holds a run ({", ".join(held)}); import into a new '
                                   '--workdir')
  _, state = create_train_state(config, jax.random.PRNGKey(0))
  expected = {'params': state.params, 'batch_stats': state.batch_stats}
  variables = torch_to_variables(load_torch_state(checkpoint), module_specs(config.model), expected,
                                 source=checkpoint)
  state = state.replace(params=variables['params'],
                        batch_stats=variables['batch_stats'] if state.batch_stats else {})
  os.makedirs(workdir, exist_ok=True)
  io.write_json(os.path.join(workdir, workdir_lib.CONFIG_FILE), config.to_dict())
  checkpoints = workdir_lib.training_checkpoints(workdir)
  checkpoints.save(state)
  checkpoints.close()
  print(f'imported {checkpoint} into {workdir}/{workdir_lib.CHECKPOINTS}/{int(state.step)}')


def _import_config(path: str, overrides: list[str]) -> ml_collections.ConfigDict:
  """The config file at `path` with `--config.<key>=<value>` overrides, parsed as the entry points
  parse theirs (one-line errors naming the flag)."""
  from absl import flags
  from ml_collections import config_flags
  if 'config' not in flags.FLAGS:
    config_flags.DEFINE_config_file('config', None, 'config file', lock_config=True)
  parse_flags(['python -m sim_jax.reference import', f'--config={path}', *overrides])
  return flags.FLAGS.config


def main(argv=None) -> int:
  """Command line: `check` reference files, or `import` an original checkpoint into a workdir."""
  parser = argparse.ArgumentParser(prog='python -m sim_jax.reference', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest='command', required=True)
  check = sub.add_parser('check', help='compare our outputs with a reference .npz')
  check.add_argument('files', nargs='+')
  imp = sub.add_parser('import', help='import an original checkpoint into a workdir')
  imp.add_argument('checkpoint')
  imp.add_argument('--config', required=True, help='config file, e.g. configs/sim_deboer.py; '
                   '--config.<key>=<value> overrides follow it')
  imp.add_argument('--workdir', required=True)
  args, overrides = parser.parse_known_args(argv)
  if args.command != 'import' or any(not a.startswith('--config.') for a in overrides):
    parser.parse_args(argv)  # argparse's own error for what it does not know
  try:
    if args.command == 'check':
      results = [check_file(f) for f in args.files]
      return 0 if all(results) else 1
    import_original_checkpoint(args.checkpoint, _import_config(args.config, overrides), args.workdir)
    return 0
  except (*user_errors(), OSError) as e:  # ValueError covers ReferenceFileError also when run as __main__
    print(error_line(e), file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main())
