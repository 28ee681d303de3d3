"""reproduce: the scales' configs, the table's numbers, collapse detection, and SCALE=smoke end to end."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from sim_jax.config import load_config_file
from sim_jax.reproduce import (DISENTANGLEMENT_METRICS, NOTEBOOK_DECODER, SOURCES, STAGES, TASKS, collapsed,
                               experiment_config, model_name, score_summary)
from sim_jax.workdir import load_trained_encoder
from tests.conftest import REPO

CONFIG = os.path.join(REPO, 'configs', 'reproduce.py')


def test_each_beta_gets_its_encoder_recipe_and_the_scale_changes_only_sizes():
  config = load_config_file(CONFIG)
  paper_sim, paper_gim = experiment_config(config, 'paper', 0.01), experiment_config(config, 'paper', 0.0)
  # the original's de Boer run (reference-semantics §3): 512 channels, GRU 256, batch 64, 1000 epochs,
  # Adam 2e-4, KL weight 0.01, BatchNorm off; GIM the same without the KL
  assert (paper_sim.model.kind, paper_sim.model.kld_weight, paper_gim.model.kind) == ('sim', 0.01, 'gim')
  for c in (paper_sim, paper_gim):
    assert (c.model.channels, c.model.gru_hidden, c.train.batch_size, c.train.num_epochs,
            c.train.learning_rate, c.model.use_batch_norm) == (512, 256, 64, 1000, 2e-4, False)
    assert c.probe.seeds >= 3
  assert experiment_config(config, 'paper', 0.001).model.kld_weight == 0.001
  recipe = load_config_file(os.path.join(REPO, 'configs', 'sim_deboer.py')).to_dict()
  for scale in ('smoke', 'cpu'):
    scaled = experiment_config(config, scale, 0.01).to_dict()
    changed = {f'{s}.{k}' for s in recipe for k in (recipe[s] if isinstance(recipe[s], dict) else {})
               if recipe[s][k] != scaled[s][k]}
    allowed = {'model.channels', 'model.gru_hidden', 'train.batch_size', 'train.num_epochs',
               'train.steps_per_epoch', 'train.eval_steps', 'train.learning_rate', 'probe.num_epochs',
               'probe.train_crops',
               'probe.seeds', 'decoder.num_epochs', 'decoder.steps_per_epoch', 'decoder.eval_steps',
               'decoder.batch_size', 'decoder.score_items', 'decoder.score_pairs', 'analysis.max_items',
               'analysis.kde_max_vectors', 'analysis.batch_size', 'analysis.kde_batch_size'}
    assert changed <= allowed, changed - allowed
  assert model_name(0.0) == 'gim' and model_name(0.01) == 'sim_beta0.01'


def test_prediction_steps_option_sets_k_for_every_model():
  config = load_config_file(CONFIG)
  assert experiment_config(config, 'cpu', 0.01).model.prediction_steps == 10  # the configs' K
  config.prediction_steps = 12
  assert [experiment_config(config, 'cpu', b).model.prediction_steps for b in (0.0, 0.01)] == [12, 12]


def test_bad_scale_override_and_beta_are_one_line_errors():
  config = load_config_file(CONFIG)
  config.scales.cpu.model.chanels = 8
  with pytest.raises(ValueError, match=r'configs/reproduce.py scales.cpu: .*chanels'):
    experiment_config(config, 'cpu', 0.01)
  with pytest.raises(ValueError, match='--scale=huge'):
    experiment_config(config, 'huge', 0.01)
  with pytest.raises(ValueError, match='negative'):
    experiment_config(config, 'paper', -0.1)


def test_collapse_is_chance_infonce_with_no_kl():
  # the 64-channel runs: SIM at β = 0.01 ends at 2.42–2.62 (ln 11 ≈ 2.40) with the KL at the
  # prior; SIM at β = 0.001 learns (1.08 / 0.51 / 0.59 / 0.47)
  assert collapsed({'nce': [2.42, 2.62, 2.50, 2.45], 'kld': [0.01, 0.0, 0.02, 0.0]}, 10, 'sim')
  assert not collapsed({'nce': [1.08, 0.51, 0.59, 0.47], 'kld': [30.0, 12.0, 2.0, 0.0]}, 10, 'sim')
  assert not collapsed({'nce': [2.42, 2.62, 2.50, 2.45], 'kld': [40.0, 9.0, 3.0, 0.0]}, 10, 'sim')
  assert collapsed({'nce': [2.40] * 4, 'kld': [0.0] * 4}, 10, 'gim')
  assert not collapsed({'nce': [2.40] * 4, 'kld': [0.0] * 4}, 20, 'gim')  # chance is ln 21 ≈ 3.04


def test_score_summary_reads_the_curve_at_width_over_8_and_averages_it_over_log2_n():
  ks = [2, 4, 8, 16, 32, 64, 128, 256, 512]
  relative = [1 - math.log2(k) / 9 for k in ks]  # linear in log2 n: from 8/9 down to 0
  s = score_summary(ks, relative, 512)
  assert s['n'] == 64 and s['relative_at_n'] == pytest.approx(1 - 6 / 9)
  assert s['auc_log2'] == pytest.approx((8 / 9 + 0) / 2)  # a line's mean is its midpoint
  step = score_summary([2, 4, 8, 16], [1.0, 1.0, 0.0, 0.0], 16)  # trapezoids: 1, 0.5, 0 over 3 octaves
  assert step['n'] == 2 and step['relative_at_n'] == 1.0 and step['auc_log2'] == pytest.approx(0.5)


def test_make_reproduce_passes_scale_betas_and_workdir():
  proc = subprocess.run(['make', '-n', 'reproduce', 'SCALE=smoke', 'BETAS=0 0.1', 'DATA=d/b', 'PY=python'],
                        capture_output=True, text=True, cwd=REPO, timeout=60)
  assert proc.returncode == 0, proc.stderr
  line = [x for x in proc.stdout.replace('\\\n', ' ').splitlines() if 'reproduce.py' in x][-1]
  assert line.split() == ['python', 'reproduce.py', '--config=configs/reproduce.py', '--scale=smoke',
                          '--workdir=workdirs/reproduce_smoke', '--config.data_root=d/b', '--betas=0,0.1']


def _numbers(tree, path=''):
  """(path, value) of every number in a JSON tree."""
  if isinstance(tree, dict):
    for k, v in tree.items():
      yield from _numbers(v, f'{path}/{k}')
  elif isinstance(tree, list):
    for i, v in enumerate(tree):
      yield from _numbers(v, f'{path}/{i}')
  elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
    yield path, tree


def _reproduce(workdir, shared_data, *extra, status=0):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, 'reproduce.py'), f'--config={CONFIG}', '--scale=smoke',
       f'--workdir={workdir}', f'--config.data_root={os.path.join(shared_data, "de_boer")}',
       '--config.prediction_steps=12', *extra],  # the logged run's K: the option runs end to end
      capture_output=True, text=True, cwd=REPO, timeout=1800)  # ~4 min on 2 idle cores
  assert proc.returncode == status, proc.stderr[-3000:]
  return proc.stderr.strip().splitlines() if status else [
      x for x in proc.stdout.splitlines() if x.startswith('[reproduce]')]


@pytest.mark.slow(minutes=5)
def test_smoke_scale_end_to_end_writes_a_finite_table_and_resumes(tmp_path, shared_data):
  workdir = tmp_path / 'reproduce_smoke'
  progress = _reproduce(workdir, shared_data)
  assert sum(' done in ' in x for x in progress) == 2 * len(STAGES), progress
  table = json.loads((workdir / 'table.json').read_text())
  assert [e['model'] for e in table['models']] == ['gim', 'sim']
  assert [e['beta'] for e in table['models']] == [0.0, 0.01]
  for e in table['models']:
    assert {'model', 'beta', 'channels', 'epochs', 'probes', 'concentration', 'total_correlation',
            'minutes', 'workdir', 'checkpoint_step', 'settings'} <= set(e)
    assert (e['channels'], e['epochs'], e['checkpoint_step']) == (16, 1, 2)
    assert set(e['probes']) == {f'{t}_{s}' for t in TASKS for s in SOURCES}
    for p in e['probes'].values():  # mean ± std of the seeds' accuracies, over 360 test syllables
      assert len(p['seeds']) == 3 and p['mean'] == pytest.approx(np.mean(p['seeds']))
      assert p['std'] == pytest.approx(np.std(p['seeds']))
      assert all(round(a * 360) == pytest.approx(a * 360) for a in p['seeds'])
    c = e['concentration']
    # headline: the eval_decoder notebook's figure, from the decoder of module 2 trained as its (MSE + mel)
    decoded = json.loads((workdir / e['name'] / 'decoder' / 'module_2' / 'results.json').read_text())
    assert (decoded['module'], decoded['loss']) == (NOTEBOOK_DECODER['module'], NOTEBOOK_DECODER['loss'])
    assert decoded['latents'] == ('sample' if e['model'] == 'sim' else 'mean')
    notebook = decoded['interpolation_concentration']
    assert c['interpolation'] == notebook['concentration'] > 0
    assert notebook['distance'] == pytest.approx(np.mean(notebook['distance_per_k']))
    assert c['interpolation'] == pytest.approx(notebook['distance'] / notebook['max_distance'])
    # 16 channels: k = 1/32 … 1/4 of the width, at least 1; the contribution score's 16 pairs of 8 items
    assert c['interpolation_k'] == [1, 1, 2, 4] and c['interpolation_module'] == 2
    assert c['interpolation_pairs'] == notebook['num_pairs'] == decoded['contribution_score']['num_pairs'] == 16
    # beside it, the contribution score of module 0 (MSE, n = 2 … width), as before
    m0 = json.loads((workdir / e['name'] / 'decoder' / 'module_0' / 'results.json').read_text())
    assert m0['module'] == c['contribution_module'] == 0 and 'interpolation_concentration' not in m0
    assert c['contribution_n'] == 2 and c['contribution_curve']['k'] == [2, 4, 8, 16]
    assert c['contribution_at_n'] == c['contribution_curve']['relative'][0]
    assert c['contribution_curve']['relative'][-1] == pytest.approx(0.0, abs=1e-6)  # all dims swapped
    # K = 12: the predictor maps a 16-channel frame to 12 future frames
    assert e['settings']['prediction_steps'] == 12
    trained = load_trained_encoder(e['workdir'], 'latest')
    assert trained.variables['params']['module_0']['predictor'].shape == (16, 12 * 16)
    assert 1 <= c['dims_90'] <= 16 and 0 < c['entropy'] <= math.log(16) + 1e-9
    assert set(e['minutes']) == set(STAGES)
    d = e['disentanglement']  # the syllables' factors; 64 train + 64 test items at smoke scale
    assert d['factors'] == ['vowel', 'consonant', 'position']
    assert set(d['modules']) == {'module_0', 'module_1', 'module_2'}
    for kinds in d['modules'].values():
      assert set(kinds) == ({'mean'} if e['model'] == 'gim' else {'mean', 'sample'})
      for m in kinds.values():
        for key in DISENTANGLEMENT_METRICS:
          value = m[key]
          if key.startswith('dci_'):  # trees fitted once per probe seed
            assert len(value['seeds']) == 3 and value['mean'] == pytest.approx(np.mean(value['seeds']))
            assert value['std'] == pytest.approx(np.std(value['seeds']))
            value = value['mean']
          assert 0 <= value <= 1, (key, value)
        assert m['dims'] == 16
      assert 0 <= kinds['mean']['active_units'] <= 16
      assert ('collapsed_dims' in kinds['mean']) == (e['model'] == 'sim')
    assert e['collapsed'] == collapsed(e['validation'], 10, e['model'])
    assert os.path.exists(os.path.join(e['workdir'], 'report', 'index.html'))
  bad = [(p, v) for p, v in _numbers(table) if not math.isfinite(v)]
  assert not bad, bad
  md = (workdir / 'table.md').read_text()
  assert '| gim |' in md and '| sim_beta0.01 |' in md and 'original SIM' in md
  assert '| interpolation | SNR m2 (dB) | contribution m0 (n) |' in md and '| 0.541 |' in md
  for e in table['models']:  # the notebook's figure beside its decoder's reconstruction SNR
    c = e['concentration']
    assert f"| {c['interpolation']:.3f} | {c['interpolation_snr_db']:.1f} |" in md
  assert '| sim_beta0.01 | 2 | sample |' in md and '| gim | 0 | mean |' in md  # the disentanglement rows
  for figure in ('tradeoff.png', 'disentanglement_beta.png'):
    assert (workdir / figure).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

  rerun = _reproduce(workdir, shared_data)  # every stage skipped, the same table
  assert sum(x.endswith('skipped') for x in rerun) == 2 * len(STAGES), rerun
  again = json.loads((workdir / 'table.json').read_text())
  assert again['models'] == table['models']
  other = _reproduce(workdir, shared_data, '--config.scales.smoke.probe.num_epochs=3', status=2)
  assert len(other) == 1 and other[0].startswith('error: ')
  assert 'probes.json was made with other settings' in other[0]  # train.json still holds
