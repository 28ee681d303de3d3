"""Helpers shared by the data tests: configs pointing at ../shared/data and a private cache."""

import os

from sim_jax.data import default_data_config

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(TESTS))
DATA = os.path.join(os.path.dirname(REPO), 'shared', 'data')
REFERENCE = os.path.join(os.path.dirname(REPO), 'shared', 'reference')
LIBRI = os.path.join(DATA, 'librispeech_mini')
DEBOER = os.path.join(DATA, 'de_boer')


def config(name: str, root: str, cache_dir: str, **overrides):
  """default_data_config(name) with root, cache_dir and any other fields set."""
  c = default_data_config(name)
  c.root = root
  c.cache_dir = str(cache_dir)
  for k, v in overrides.items():
    c[k] = v
  return c
