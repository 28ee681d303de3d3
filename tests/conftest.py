"""Shared test fixtures: the real data in ../shared (required: tests fail, never skip, without it)."""

import os
import shutil
import tempfile
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), 'shared')
DATA = os.path.join(SHARED, 'data')
REFERENCE = os.path.join(SHARED, 'reference')
_XLA_CACHE = pytest.StashKey[str]()
REFERENCE_FILES = ('sim_deboer_nobn.npz', 'gim_deboer_bn.npz', 'cpc_deboer_nobn.npz', 'sim_libri_bn.npz',
                   'cpc_extra_deboer_nobn.npz')


def pytest_configure(config):
  """Markers, and one XLA compilation cache for the whole run (every xdist worker and every subprocess
  it starts): the tests build the same narrow models again and again, and compiling is most of their
  time. It lives in a folder of its own per run, so a run never reads another's entries."""
  if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:  # set here, before any test module imports jax
    folder = os.path.join(tempfile.gettempdir(), f'sim_jax_tests_xla_{uuid.uuid4().hex}')
    os.environ['JAX_COMPILATION_CACHE_DIR'] = folder  # inherited by the xdist workers started after this
    config.stash[_XLA_CACHE] = folder
  config.addinivalue_line('markers', 'slow(minutes=0): end-to-end test (runs in CI too); minutes: its '
                          'rough cost on 2 cores, to start the longest first')


def pytest_unconfigure(config):
  """Remove the run's compilation cache (the process that made it, after its workers are done)."""
  folder = config.stash.get(_XLA_CACHE, None)
  if folder:
    shutil.rmtree(folder, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
  """Slow end-to-end tests first, longest first (a stable sort), so `-n 2 --dist loadfile` starts the
  longest files at once and fills in with the quick ones."""
  del config

  def cost(item):
    slow = item.get_closest_marker('slow')
    return (slow is None, -(slow.kwargs.get('minutes', 0) if slow else 0))

  items.sort(key=cost)


@pytest.fixture(scope='session')
def shared_data() -> str:
  """Path of ../shared/data; a missing folder is a failure, not a skip."""
  assert os.path.isdir(DATA), f'real test data missing: {DATA} (CI must provide ../shared/data)'
  return DATA
