"""The whole pipeline on real de Boer data: a short CPU training of a narrow SIM, probes, a decoder,
then analyze: every section filled, results.json numbers, the report's media open in Chromium."""

import copy
import os

import numpy as np
import pytest

from sim_jax import io
from sim_jax.analysis.run import analyze
from tests.analysis import helpers

QUICK = {
    'train.num_epochs': 2, 'train.steps_per_epoch': 4, 'train.eval_steps': 1, 'train.batch_size': 16,
    'train.log_every_steps': 1,
    'probe.num_epochs': 3,
    'decoder.num_epochs': 1, 'decoder.steps_per_epoch': 2, 'decoder.eval_steps': 1,
    'decoder.batch_size': 16, 'decoder.score_items': 8, 'decoder.num_reconstructions': 2,
    'decoder.num_samples': 2, 'decoder.interpolation_steps': 3, 'decoder.sweep_steps': 3,
    'decoder.num_sweeps': 1,
    'analysis.max_items': 150,
}


@pytest.mark.slow(minutes=2)
def test_deboer_workdir_full_report(shared_data, tmp_path):
  from sim_jax.decoder.run import run as run_decoder
  from sim_jax.probe import run_probe
  from sim_jax.train.loop import train_and_evaluate
  workdir = str(tmp_path / 'sim_deboer')
  config = helpers.narrow_config('sim_deboer', os.path.join(shared_data, 'de_boer'), **QUICK)
  train_and_evaluate(config, workdir)
  # the original's probes: bias-free on module 2's samples, and with a bias on the context's means
  for task, source, bias in (('vowels', 'module_2', False), ('syllables', 'context', True)):
    probe_config = copy.deepcopy(config)
    probe_config.probe.task, probe_config.probe.source, probe_config.probe.bias = task, source, bias
    run_probe(probe_config, workdir)
  run_decoder(config, workdir)

  results = analyze(config, workdir, config_file='configs/sim_deboer.py')
  for key in ('training', 'probes', 'weights', 'latents', 'entanglement', 'decoder'):
    assert 'missing' not in results[key], (key, results[key].get('missing'))
  run = results['run']['items']['']['numbers']
  assert (run['dataset'], run['features'], run['labels']) == ('deboer', 'sample',
                                                              'syllable, vowel, consonant, position')
  # 150 items of each split, then whole loader batches: 128 (batch 128), 128 (batch 128), 150 → 128 (batch 64)
  assert run['t-SNE / 3-D scatter items'] == '128 train syllables'
  assert run['histogram items'] == '128 train words' and run['total-correlation items'] == '150 test words'
  weights = results['weights']['items']['vowels_module_2_nobias_sample']['numbers']
  assert weights['classes'] == 3 and 1 <= weights['mean dims holding 50 % of |w|'] <= 32
  assert weights['probe features'] == 'raw'
  assert os.path.isfile(os.path.join(workdir, 'report', 'weights', 'vowels_module_2_nobias_sample',
                                     'vowel_classifier_weights.csv'))
  latent = results['latents']['items']['']
  assert latent['numbers']['dimensions'] == 32 and latent['numbers']['frames'] == 128 * 64
  assert latent['numbers']['t-SNE items (fitted)'] == 128
  ent = results['entanglement']['items']['']['details']
  assert np.isfinite(ent['gaussian']['tc']) and [r['channels'] for r in ent['kde']] == [10, 32, 32]
  assert [r['items'] for r in ent['kde']] == [64, 128, 128]
  # the syllables' factors; syllable = consonant × vowel is left out; 150 items of each split
  dis = results['disentanglement']['items']
  assert set(dis) == {f'module_{m} {kind}' for m in range(3) for kind in ('mean', 'sample')}
  for item in dis.values():
    v = item['values']
    assert v['factors'] == 'vowel, consonant, position' and v['items'] == '150 / 150' and v['dims'] == 32
    assert item['details']['left_out'] == {'syllable': 'the product of vowel × consonant'}
    for key in ('mig', 'dci_disentanglement', 'dci_completeness', 'dci_informativeness', 'sap', 'modularity'):
      assert 0 <= v[key] <= 1, (key, v[key])
  assert 0 <= dis['module_0 mean']['values']['collapsed_dims'] <= 32
  assert 'collapsed_dims' not in dis['module_0 sample']['values']
  decoder_results = io.read_json(os.path.join(workdir, 'decoder', 'module_0', 'results.json'))
  assert decoder_results['settings']['features'] == 'sample'
  assert decoder_results['settings']['encoder_step'] == results['settings']['effective']['encoder_step']
  assert {'syllables_context', 'vowels_module_2_nobias_sample'} <= set(results['probes']['items'])
  decoder = results['decoder']['items']['module_0']
  assert any(f['type'] == 'wav' for g in decoder['groups'] for f in g['files'])
  assert io.read_json(os.path.join(workdir, 'report', 'results.json'))['run'] == results['run']

  page = os.path.join(workdir, 'report', 'index.html')
  check = helpers.check_media(page, str(tmp_path))
  assert check['bad'] == [] and check['audio'] > 4 and check['images'] > 10
  helpers.screenshot(page, str(tmp_path / 'report.png'), str(tmp_path))


@pytest.mark.slow(minutes=1)
def test_librispeech_fixture_speakers_are_its_factor(shared_data, tmp_path):
  """LibriSpeech crops, the section analyze.py writes: speaker is the one item-level factor (phones
  are per frame); DCI disentanglement and modularity, which need two factors, are None."""
  from sim_jax.analysis.run import disentanglement_section
  from sim_jax.workdir import load_trained_encoder
  from tests.probe.helpers import fabricate_workdir
  config = helpers.narrow_config('sim_librispeech', os.path.join(shared_data, 'librispeech_mini'), **{
      'model.channels': 8, 'model.gru_hidden': 4, 'analysis.disentanglement_modules': (1,),
      'probe.extract_batch_size': 4, 'data.cache_dir': str(tmp_path / 'cache')})
  workdir = fabricate_workdir(config, str(tmp_path / 'workdir'))
  section = disentanglement_section(config, load_trained_encoder(workdir), workdir)
  assert set(section['items']) == {'module_1 mean', 'module_1 sample'}
  v = section['items']['module_1 mean']['values']
  assert v['factors'] == 'speaker' and v['dims'] == 8 and v['items'] == '4 / 5'  # the crops on disk
  assert v['dci_disentanglement'] is None and v['modularity'] is None
  assert 0 <= v['mig'] <= 1 and 0 <= v['sap'] <= 1 and 0 <= v['dci_completeness'] <= 1
  assert 0 <= v['collapsed_dims'] <= 8
