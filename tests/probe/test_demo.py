"""Probes on the built-in demo corpus after the demo training run (configs/demo.py as it ships),
against chance and against the same probes on the encoder at initialisation."""

import os

import pytest

from sim_jax.config import load_config_file
from sim_jax.probe import run_probe
from sim_jax.train.loop import train_and_evaluate
from tests.conftest import REPO
from tests.probe.helpers import fabricate_workdir

TASKS = ('speakers', 'vowels')


@pytest.fixture(scope='module')
def demo_accuracies(tmp_path_factory):
  """{task: (trained, initial, chance, majority)} accuracies of the demo config's probe (module 2)."""
  config = load_config_file(os.path.join(REPO, 'configs', 'demo.py'))
  trained = str(tmp_path_factory.mktemp('demo_trained'))
  train_and_evaluate(config, trained)
  initial = fabricate_workdir(config, str(tmp_path_factory.mktemp('demo_init')))
  out = {}
  for task in TASKS:
    config.probe.task = task
    ours, init = run_probe(config, trained), run_probe(config, initial)
    out[task] = (ours['accuracy'], init['accuracy'], ours['chance'], ours['majority'])
  print({task: dict(zip(('trained', 'init', 'chance', 'majority'), v)) for task, v in out.items()})
  return out


@pytest.mark.slow(minutes=6)
def test_trained_demo_encoder_beats_chance(demo_accuracies):
  """Measured (CPU, the demo recipe, raw features): speakers 0.68 (chance 0.125), vowels 0.84 (chance 0.33)."""
  for task in TASKS:
    trained, _, chance, majority = demo_accuracies[task]
    assert trained > max(chance, majority) + 0.25, (task, demo_accuracies[task])


@pytest.mark.slow(minutes=6)
def test_trained_demo_encoder_beats_its_initialisation(demo_accuracies):
  """The untrained encoder's raw features sit at chance (speakers 0.125, vowels 0.30 measured; standardised
  they are a strong baseline, 0.60 / 0.74); the demo training must add to them (measured: 0.68, 0.84)."""
  for task in TASKS:
    trained, initial, _, _ = demo_accuracies[task]
    assert trained > initial + 0.05, (task, demo_accuracies[task])
