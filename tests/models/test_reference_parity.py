"""Number-for-number parity with the original PyTorch code on its recorded outputs (../shared/reference)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sim_jax import reference
from tests.conftest import REFERENCE, REFERENCE_FILES, REPO


@pytest.mark.parametrize('implementation', ['cpu', 'plain'])
@pytest.mark.parametrize('name', REFERENCE_FILES)
def test_every_recorded_array_matches(name, implementation):
  """Both formulations of the step (config.model.implementation) reproduce the original."""
  with np.load(os.path.join(REFERENCE, name)) as data:
    errors = reference.compare(data, implementation)
    meta = json.loads(str(data['meta']))
    recorded = [k for k in data.files if k.startswith(('grad/', 'param_after_adam/', 'eval/'))
                and not k.endswith('num_batches_tracked')]
  # Every recorded gradient, post-Adam parameter and eval feature is compared, plus per-module
  # heads, samples, losses.
  assert set(recorded) <= set(errors)
  for i in range(len(meta['modules'])):
    assert {f'm{i}/nce', f'm{i}/kld', f'm{i}/total', f'm{i}/z'} <= set(errors)
  bad = {k: v for k, v in errors.items() if not reference.within_tolerance(*v)}
  assert not bad, bad


@pytest.mark.slow(minutes=2)
def test_check_command_passes_on_all_files():
  files = [os.path.join(REFERENCE, f) for f in REFERENCE_FILES]
  run = subprocess.run([sys.executable, '-m', 'sim_jax.reference', 'check', *files], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stdout + run.stderr
  assert run.stdout.count('PASS') == len(REFERENCE_FILES) and 'FAIL' not in run.stdout


def _copy_without(src, dst, drop=(), replace=None):
  with np.load(src) as data:
    arrays = {k: data[k] for k in data.files if k not in drop}
  arrays.update(replace or {})
  np.savez(dst, **arrays)


def test_check_command_fails_on_a_wrong_value(tmp_path):
  src = os.path.join(REFERENCE, 'sim_deboer_nobn.npz')
  with np.load(src) as data:
    nce = data['m1/nce'] + 1e-3
  bad = tmp_path / 'bad.npz'
  _copy_without(src, bad, replace={'m1/nce': nce})
  run = subprocess.run([sys.executable, '-m', 'sim_jax.reference', 'check', str(bad)], cwd=REPO,
                       capture_output=True, text=True, timeout=600)
  assert run.returncode == 1
  assert 'FAIL m1/nce' in run.stdout


def test_zero_gradient_is_compared_with_zero(tmp_path):
  """A conv bias before training-mode BatchNorm: the recorded round-off passes (far below the noise
  scale, the largest per-channel sum of |dL/d conv output|), a gradient that is not zero does not."""
  src = os.path.join(REFERENCE, 'gim_deboer_bn.npz')
  key = 'grad/fullmodel.0.encoder.encoder.0.0.bias'
  with np.load(src) as data:
    errors = reference.compare(data)
    noise = np.abs(data[key]).max()
    # dL/dW[k, 0, c] = sum_(b,t) audio[b, 5t + k - 2] dL/dy[b, t, c], so sum_(b,t) |dL/dy| bounds it
    floor = np.abs(data['grad/fullmodel.0.encoder.encoder.0.0.weight']).max() / np.abs(data['input']).max()
  err, scale = errors[key]
  assert floor <= scale and noise <= err < 1e-6 * scale and reference.within_tolerance(err, scale)
  bad = tmp_path / 'nonzero.npz'
  _copy_without(src, bad, replace={key: np.full(32, 1e-3 * scale, np.float32)})
  with np.load(bad) as data:
    assert not reference.within_tolerance(*reference.compare(data)[key])


def test_missing_key_is_named(tmp_path):
  src = os.path.join(REFERENCE, 'gim_deboer_bn.npz')
  bad = tmp_path / 'missing.npz'
  _copy_without(src, bad, drop=('param/fullmodel.1.loss.predictor.weight',))
  with np.load(bad) as data, pytest.raises(reference.ReferenceFileError,
                                           match='fullmodel.1.loss.predictor.weight'):
    reference.compare(data)


def test_shape_mismatch_names_key_and_both_shapes(tmp_path):
  src = os.path.join(REFERENCE, 'cpc_deboer_nobn.npz')
  bad = tmp_path / 'shape.npz'
  _copy_without(src, bad, replace={'param/fullmodel.0.encoder.encoder.2.0.weight':
                                   np.zeros((32, 32, 5), np.float32)})
  with np.load(bad) as data, pytest.raises(reference.ReferenceFileError) as err:
    reference.compare(data)
  message = str(err.value)
  assert 'encoder.encoder.2.0.weight' in message and '(32, 32, 5)' in message
  assert '(4, 32, 32)' in message  # the shape the model needs, in our (k, C_in, C_out) layout


def test_wrong_draw_shape_is_named(tmp_path):
  src = os.path.join(REFERENCE, 'sim_deboer_nobn.npz')
  bad = tmp_path / 'draw.npz'
  _copy_without(src, bad, replace={'m0/eps_c': np.zeros((4, 500, 32), np.float32)})
  with np.load(bad) as data, pytest.raises(reference.ReferenceFileError,
                                           match=r"'m0/eps_c' has shape \(4, 500, 32\), expected \(4, 511, 32\)"):
    reference.compare(data)


@pytest.mark.parametrize('name', REFERENCE_FILES)
def test_npz_state_dict_round_trips_through_the_mapping(name):
  """The import path: an original state_dict (.npz, DataParallel 'module.' prefix) -> ours -> back,
  every key (BatchNorm, the CPC extra layers' bare 1x1 convs) mapped."""
  from sim_jax.models import module_specs
  with np.load(os.path.join(REFERENCE, name)) as data:
    meta = json.loads(str(data['meta']))
    state = {'module.' + k[len('param/'):]: data[k] for k in data.files if k.startswith('param/')}
  specs = module_specs(reference.config_from_meta(meta))
  variables = reference.torch_to_variables(state, specs)
  back = reference.variables_to_torch(variables['params'], specs)
  back.update(reference.variables_to_torch(variables['batch_stats'], specs, 'batch_stats'))
  for key, value in back.items():
    np.testing.assert_array_equal(value, state['module.' + key])
  mapped = {k for k in state if not k.endswith('num_batches_tracked')}
  assert {'module.' + k for k in back} == mapped
