"""Shared test fixtures: the real data in ../shared (required: tests fail, never skip, without it)."""

import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), 'shared')
DATA = os.path.join(SHARED, 'data')
REFERENCE = os.path.join(SHARED, 'reference')
REFERENCE_FILES = ('sim_deboer_nobn.npz', 'gim_deboer_bn.npz', 'cpc_deboer_nobn.npz')


def pytest_configure(config):
  config.addinivalue_line('markers', 'slow: end-to-end test (runs in CI too)')


@pytest.fixture(scope='session')
def shared_data() -> str:
  """Path of ../shared/data; a missing folder is a failure, not a skip."""
  assert os.path.isdir(DATA), f'real test data missing: {DATA} (CI must provide ../shared/data)'
  return DATA
