"""decode.py end to end on real de Boer audio: a small decoder for module 0 of a narrow encoder."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sim_jax import io
from tests.conftest import REPO
from tests.probe.helpers import fabricate_workdir
from tests.train.helpers import ROOTS, small_config

QUICK = ['--config.decoder.module=0', '--config.decoder.num_epochs=1',
         '--config.decoder.steps_per_epoch=4', '--config.decoder.batch_size=8',
         '--config.decoder.eval_steps=2', '--config.decoder.learning_rate=1e-3',
         '--config.decoder.num_reconstructions=2', '--config.decoder.num_samples=2',
         '--config.decoder.interpolation_steps=4', '--config.decoder.partial_dims=8',
         '--config.decoder.sweep_steps=3', '--config.decoder.num_sweeps=2',
         '--config.decoder.score_items=4']


def _decode(workdir: str, *flags: str) -> subprocess.CompletedProcess:
  cmd = [sys.executable, 'decode.py', '--config=configs/sim_deboer.py', f'--workdir={workdir}',
         f"--config.data.root={ROOTS['deboer']}", *QUICK, *flags]
  return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope='module')
def deboer_workdir(shared_data, tmp_path_factory) -> str:
  """An untrained 32-wide SIM encoder for de Boer words."""
  del shared_data  # asserts the real data is there
  workdir = str(tmp_path_factory.mktemp('deboer') / 'w')
  return fabricate_workdir(small_config('sim_deboer', channels=32), workdir)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
  return float(np.mean(np.square(a - b)))


@pytest.mark.slow
def test_decode_writes_audio_figures_and_score(deboer_workdir):
  done = _decode(deboer_workdir)
  assert done.returncode == 0, done.stderr[-3000:]
  assert 'done:' in done.stdout and 'test MSE' in done.stdout
  out = os.path.join(deboer_workdir, 'decoder', 'module_0')

  manifest = io.read_json(os.path.join(out, 'outputs.json'))
  names = [s['name'] for s in manifest['sections']]
  assert names == ['reconstructions', 'samples', 'interpolation', 'partial_interpolation', 'sweeps',
                   'score', 'training']
  files = [f for s in manifest['sections'] for f in s['files']]
  for f in files:
    assert re.fullmatch(r'[A-Za-z0-9_./-]+', f['path']), f['path']
    path = os.path.join(out, f['path'])
    assert os.path.getsize(path) > 1000, path
    if f['type'] == 'wav':
      info = sf.info(path)
      assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 10240, 'PCM_16')
  wavs = [f for f in files if f['type'] == 'wav']
  assert len(wavs) == 4 + 2 + 4 + 4 + 4 + 2 * 3  # recon, samples, ends, interp, partial, sweeps

  trav = os.path.join(out, 'traversals')
  read = lambda name: sf.read(os.path.join(trav, name))[0]  # noqa: E731
  a, b = read('bagubi_1_decoded.wav'), read('babadu_1_decoded.wav')
  first = read('interp_bagubi_1_to_babadu_1_00.wav')
  last = read('interp_bagubi_1_to_babadu_1_03.wav')
  assert _distance(first, a) < _distance(first, b)
  assert _distance(last, b) < _distance(last, a)
  assert _distance(a, b) > 0

  results = io.read_json(os.path.join(out, 'results.json'))
  score = results['contribution_score']
  assert score['k'] == [2, 4, 8, 16, 32] and score['num_items'] == 4 and score['num_pairs'] == 12
  assert len(score['relative']) == 5 and score['relative'][-1] < 1e-6 and score['max_error'] > 0
  notebook = results['interpolation_concentration']  # the paper's figure, on the same 12 pairs
  assert notebook['k'] == [1, 2, 4, 8] and notebook['num_pairs'] == 12 and notebook['max_distance'] > 0
  assert notebook['concentration'] == pytest.approx(notebook['distance'] / notebook['max_distance'])
  rec = results['reconstruction']
  assert np.isfinite([rec['test_mse'], rec['mean_latent_mse'], rec['snr_db']]).all()
  assert results['decoder_step'] == 4
  settings = results['settings']  # what produced these numbers
  assert (settings['features'], settings['latent_source'], settings['encoder_step']) == ('sample', 'module_0', 0)
  assert settings['decoder']['loss'] == 'mse' and results['latents'] == 'sample'
  assert os.path.getsize(os.path.join(out, 'score_curve.png')) > 1000


@pytest.mark.slow
def test_unknown_item_name_is_one_line_with_suggestions(deboer_workdir):
  """(Module range, latent kind and checkpoint width: test_train.py, through the same error type.)"""
  done = _decode(deboer_workdir, '--config.decoder.interpolate_from=bagubi1')
  assert done.returncode == 2
  assert 'Traceback' not in done.stderr
  assert re.search(r"^error: no item named 'bagubi1' in the test or train split; did you mean bagubi_1",
                   done.stderr.strip().splitlines()[-1]), done.stderr[-2000:]
