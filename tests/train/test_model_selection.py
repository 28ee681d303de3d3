"""Which encoder checkpoint the later stages read: the last one by default, as the
original; a `best` one only on request, chosen on training items held out from training, never on the
test split."""

import glob
import os

import numpy as np
import pytest

from sim_jax import io
from sim_jax.data import hold_out, make_source
from sim_jax.checkpoints import checkpoint_steps
from sim_jax.workdir import load_trained_encoder
from sim_jax.train.loop import train_and_evaluate
from tests.conftest import REPO
from tests.train.helpers import small_config


EXPERIMENT_CONFIGS = sorted(f for f in glob.glob(os.path.join(REPO, 'configs', '*.py'))
                            if os.path.basename(f) != 'reproduce.py')  # reproduce.py configures `make reproduce`


@pytest.mark.parametrize('config_file', EXPERIMENT_CONFIGS)
def test_the_later_stages_read_the_last_checkpoint_by_default(config_file):
  """The original's probes, decoders and analyses load model_{encoder_num}.ckpt with
  encoder_num = num_epochs - 1 (config_code/sim_setup.py:131, utils/model_utils.py:78,
  linear_classifiers/logistic_regression.py:236): the last epoch's model, with no selection."""
  config = small_config(os.path.basename(config_file)[:-3])
  assert (config.probe.checkpoint, config.decoder.checkpoint, config.analysis.checkpoint) == ('latest',) * 3
  assert config.train.select_best is False


def test_hold_out_is_a_seeded_disjoint_part_of_the_split(shared_data):
  source = make_source(small_config('demo').data, 'train', 'words')
  rest, held = hold_out(source, 0.1, seed=3)
  again_rest, again_held = hold_out(source, 0.1, seed=3)
  assert held.names == again_held.names and rest.names == again_rest.names
  assert len(held) == round(0.1 * len(source)) and len(held) + len(rest) == len(source)
  assert sorted(held.names + rest.names) == sorted(source.names)
  assert held.names != hold_out(source, 0.1, seed=4)[1].names
  i = 2
  np.testing.assert_array_equal(held.load(np.array([i]), 0)['audio'][0],
                                source.load(np.array([held.indices[i]]), 0)['audio'][0])


@pytest.mark.slow(minutes=1)
def test_select_best_chooses_on_held_out_training_items_and_latest_stays_the_default(tmp_path):
  config = small_config('demo', channels=8, steps=2, epochs=3, train__select_best=True)
  config.data.demo_num_train, config.data.demo_num_test = 40, 8
  train_and_evaluate(config, str(tmp_path))
  held = io.read_json(str(tmp_path / 'heldout_items.json'))
  train_names = make_source(config.data, 'train', 'words').names
  test_names = make_source(config.data, 'test', 'words').names
  assert held['seed'] == config.seed and held['fraction'] == 0.1 and len(held['names']) == 4
  assert set(held['names']) <= set(train_names) and not set(held['names']) & set(test_names)
  records = io.read_jsonl(str(tmp_path / 'metrics.jsonl'))
  heldout = {r['step']: float(np.sum(r['heldout/total'])) for r in records if 'heldout/total' in r}
  test = {r['step']: float(np.sum(r['val/total'])) for r in records if 'val/total' in r}
  assert sorted(heldout) == sorted(test) == [2, 4, 6]  # the test curve is still logged each epoch
  (best,) = checkpoint_steps(str(tmp_path / 'best'))
  assert best == min(heldout, key=heldout.get)
  chosen_by = io.read_json(str(tmp_path / 'best' / str(best) / 'metrics' / 'metrics'))['val_loss']
  assert chosen_by == pytest.approx(heldout[best]) and chosen_by != pytest.approx(test[best])
  assert load_trained_encoder(str(tmp_path)).step == 6  # the default: the last checkpoint
  assert load_trained_encoder(str(tmp_path), 'best').step == best

