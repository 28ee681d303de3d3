"""The package installs: its wheel, built offline from pyproject.toml, installs into a fresh virtual
environment and `sim_jax.load_encoder` imports there from outside the checkout."""

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO


def _run(*args, cwd):
  run = subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=600)
  assert run.returncode == 0, f'{" ".join(args)}\n{run.stdout}\n{run.stderr}'
  return run


@pytest.mark.slow(minutes=1)
def test_the_wheel_installs_and_imports_outside_the_checkout(tmp_path):
  have = importlib.metadata.version('setuptools')
  assert tuple(int(p) for p in have.split('.')[:2]) >= (70, 1), (
      f'setuptools {have} builds no wheel without the `wheel` package: pip install -r requirements.txt')
  # what the package is built from, copied: setuptools writes build/ and *.egg-info/ beside the sources
  source = tmp_path / 'source'
  shutil.copytree(os.path.join(REPO, 'sim_jax'), source / 'sim_jax', ignore=shutil.ignore_patterns('__pycache__'))
  for name in ('pyproject.toml', 'requirements.txt', 'README.md'):
    shutil.copy(os.path.join(REPO, name), source / name)
  wheels = tmp_path / 'wheels'
  # no network here: the build backend is the installed setuptools (requirements.txt), not a download
  _run(sys.executable, '-m', 'pip', 'wheel', str(source), '--no-deps', '--no-build-isolation', '-q', '-w',
       str(wheels), cwd=str(tmp_path))
  (wheel,) = wheels.glob('sim_jax-*.whl')
  with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    metadata = z.read(next(n for n in names if n.endswith('.dist-info/METADATA'))).decode()
  assert 'sim_jax/embedding.py' in names and 'sim_jax/models/encoder.py' in names
  assert not [n for n in names if not n.startswith(('sim_jax/', 'sim_jax-0.1.0.dist-info/'))]
  with open(os.path.join(REPO, 'requirements.txt')) as f:  # the one list of dependencies
    wanted = [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]
  assert [line[len('Requires-Dist: '):] for line in metadata.splitlines()
          if line.startswith('Requires-Dist: ')] == wanted

  # a fresh venv that sees this interpreter's packages (jax, flax, ...) after its own, as
  # --system-site-packages would: the dependencies are there, sim_jax only from the wheel
  venv = tmp_path / 'venv'
  _run(sys.executable, '-m', 'venv', '--without-pip', str(venv), cwd=str(tmp_path))
  python = str(venv / 'bin' / 'python')
  own = _run(python, '-c', 'import site; print(site.getsitepackages()[0])', cwd=str(tmp_path)).stdout.strip()
  parents = [p for p in sys.path if os.path.basename(p) in ('site-packages', 'dist-packages') and os.path.isdir(p)]
  with open(os.path.join(own, 'parent_packages.pth'), 'w') as f:  # addsitedir: their .pth files too
    f.write(''.join(f'import site; site.addsitedir({p!r})\n' for p in parents))
  _run(sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps', '--no-index', '-q', str(wheel),
       cwd=str(tmp_path))
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  check = ('import os, sim_jax\n'
           'from sim_jax import load_encoder, FeatureExtractor\n'
           'assert callable(load_encoder) and FeatureExtractor.sample_rate == 16000\n'
           'print(os.path.dirname(sim_jax.__file__))\n')
  run = subprocess.run([python, '-c', check], capture_output=True, text=True, cwd=str(elsewhere), env=env,
                       timeout=600)
  assert run.returncode == 0, run.stderr
  assert run.stdout.strip() == os.path.join(own, 'sim_jax')  # the installed copy, not the checkout
