"""embed.py: the features it writes for the de Boer test words are probe.py's (an independent path), the
files load with numpy alone; batching, compilations, resuming, settings, samples and bad files."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from sim_jax import embed_folder as embed_lib
from sim_jax.data import make_source
from sim_jax.embedding import load_encoder
from sim_jax.probe.features import cached_features, feature_source
from sim_jax.workdir import WorkdirError
from tests.conftest import REPO
from tests.probe.helpers import fabricate_workdir
from tests.train.helpers import small_config

MODULES = ('module_0', 'module_1', 'module_2', 'context')


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  return fabricate_workdir(small_config('sim_deboer', channels=16), str(tmp_path_factory.mktemp('sim') / 'w'))


def _folder(root, lengths, rate=16000, seed=0):
  """WAV files of noise at `rate`, f<i>.wav (every third in a sub-folder)."""
  rng = np.random.default_rng(seed)
  paths = []
  for i, n in enumerate(lengths):
    path = os.path.join(root, 'sub' if i % 3 == 2 else '', f'f{i:02d}.wav')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, (rng.normal(size=n) * 0.1).astype(np.float32), rate, subtype='FLOAT')
    paths.append(path)
  return paths


def _embed_cli(*args):
  return subprocess.run([sys.executable, os.path.join(REPO, 'embed.py'), *args], capture_output=True, text=True,
                        cwd=REPO, timeout=600)


@pytest.mark.slow(minutes=1)
def test_embed_writes_probe_features_of_the_de_boer_test_words(workdir, tmp_path):
  """The done criterion: embed.py on reshuffledv2/test (44.1-kHz files, whole) against the probe's
  cached features of the same checkpoint (the de Boer source: resampled, first 10240 samples). The
  frames whose field lies inside those 10240 samples are the same frames."""
  config = small_config('sim_deboer', channels=16)
  words = os.path.join(config.data.root, 'reshuffledv2', 'test')
  out = str(tmp_path / 'out')
  run = _embed_cli(f'--workdir={workdir}', f'--input={words}', f'--output={out}')
  assert run.returncode == 0, run.stderr
  assert 'embedded 171 files' in run.stdout

  # the written files, read with numpy alone (no jax, no sim_jax) in a fresh interpreter
  check = ('import csv, os, sys, numpy as np\n'
           f'out = {out!r}\n'
           'rows = list(csv.DictReader(open(os.path.join(out, "index.csv"))))\n'
           'for row in rows:\n'
           '  with np.load(os.path.join(out, row["file"])) as z:\n'
           f'    for m in {MODULES!r}:\n'
           '      assert z[m].dtype == np.float32 and z[m].shape[0] == int(row["frames_" + m]) == z[m + "_frames"]\n'
           '    assert int(z["samples"]) == int(row["samples"])\n'
           'assert "jax" not in sys.modules and "sim_jax" not in sys.modules\n'
           'print(len(rows))\n')
  loaded = subprocess.run([sys.executable, '-c', check], capture_output=True, text=True, cwd=str(tmp_path))
  assert loaded.returncode == 0 and loaded.stdout.strip() == '171', loaded.stderr

  trained = load_encoder(workdir).trained
  data = make_source(config.data, 'test', 'words')
  enc = load_encoder(workdir)
  for name in ('module_1', 'context'):  # the context: through every module
    probe = cached_features(str(tmp_path / 'cache'), trained, feature_source(trained, name), data,
                            data_config=config.data, batch_size=32, frames=True)
    keep = int(enc.valid_frames(name, 10240))
    for i, word in enumerate(data.names):
      with np.load(os.path.join(out, f'{word}.wav.npz')) as z:
        ours = z[name][:keep]
      theirs = probe.frames[probe.offsets[i]:probe.offsets[i] + keep]
      np.testing.assert_allclose(ours, theirs, atol=2e-6 * np.abs(theirs).max(), err_msg=f'{word} {name}')
  results = json.load(open(os.path.join(out, 'embed.json')))
  assert results['written'] == 171 and results['compilations'] <= 8 and results['settings']['step'] == 0


def test_batches_equal_files_one_by_one_and_compile_once_per_bucket(workdir, tmp_path):
  lengths = np.random.default_rng(1).integers(3000, 30000, 24)
  paths = _folder(str(tmp_path / 'in'), lengths, rate=22050)
  results = embed_lib.embed_folder(workdir, str(tmp_path / 'in'), str(tmp_path / 'out'), max_buckets=3,
                                   batch_seconds=3.0)
  assert results['written'] == 24 and len(results['buckets']) <= 3 and results['compilations'] <= 3
  enc = load_encoder(workdir)
  for path in paths[:4]:
    wave, rate = sf.read(path, dtype='float32')
    alone = enc.encode(wave, sample_rate=rate, resample=True, buckets=results['buckets'])
    rel = os.path.relpath(path, str(tmp_path / 'in'))
    with np.load(str(tmp_path / 'out' / f'{rel}.npz')) as z:
      for name in MODULES:
        np.testing.assert_allclose(z[name], alone[name].features[0], atol=1e-6)
  rows = list(csv.DictReader(open(tmp_path / 'out' / 'index.csv')))
  assert [r['path'] for r in rows] == sorted(os.path.relpath(p, str(tmp_path / 'in')) for p in paths)
  assert {r['hop_module_1'] for r in rows} == {'80'}
  assert float(rows[0]['duration']) == pytest.approx(int(rows[0]['samples']) / 16000)


def test_a_rerun_resumes_and_refuses_other_settings(workdir, tmp_path, monkeypatch):
  _folder(str(tmp_path / 'in'), [8000, 9000, 12000, 7000])
  out = str(tmp_path / 'out')
  written = []
  real_save = embed_lib.io.save_npz

  def save_then_die(path, **arrays):
    if len(written) == 2:
      raise KeyboardInterrupt  # killed while writing the third file
    real_save(path, **arrays)
    written.append(path)
  monkeypatch.setattr(embed_lib.io, 'save_npz', save_then_die)
  with pytest.raises(KeyboardInterrupt):
    embed_lib.embed_folder(workdir, str(tmp_path / 'in'), out, max_buckets=1)
  monkeypatch.setattr(embed_lib.io, 'save_npz', real_save)
  files = sorted(os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs)
  assert sum(f.endswith('.npz') for f in files) == 2 and not [f for f in files if f.endswith('.tmp')]
  before = {p: os.path.getmtime(p) for p in written}
  results = embed_lib.embed_folder(workdir, str(tmp_path / 'in'), out, max_buckets=1)
  assert (results['kept'], results['written']) == (2, 2)
  assert {p: os.path.getmtime(p) for p in written} == before  # not rewritten
  assert len(list(csv.DictReader(open(os.path.join(out, 'index.csv'))))) == 4
  with pytest.raises(WorkdirError, match=r"holds features made with settings.features='mean' \(now 'sample'\)"
                                         r".*; embed into another --output"):
    embed_lib.embed_folder(workdir, str(tmp_path / 'in'), out, features='sample')


def test_samples_follow_each_file_not_its_folder(workdir, tmp_path):
  paths = _folder(str(tmp_path / 'in'), [8000, 9000, 12000])
  run = lambda out, **kw: embed_lib.embed_folder(workdir, str(tmp_path / 'in'), str(tmp_path / out),  # noqa: E731
                                                  max_buckets=1, **kw)
  first = run('a', features='sample', seed=3)
  os.remove(paths[1])  # then one file fewer, one row fewer in the batch
  run('b', features='sample', seed=3)
  run('c', features='sample', seed=4)
  means = run('m')
  assert first['settings']['seed'] == 3 and means['settings']['seed'] is None
  for name in ('f00.wav.npz', 'sub/f02.wav.npz'):
    a, b, c, m = (np.load(str(tmp_path / d / name)) for d in 'abcm')
    np.testing.assert_allclose(a['module_2'], b['module_2'], atol=1e-6)  # another folder, another batch
    assert not np.allclose(a['module_2'], c['module_2']) and not np.allclose(a['module_2'], m['module_2'])


def test_bad_files_stop_or_are_counted(workdir, tmp_path):
  _folder(str(tmp_path / 'in'), [8000, 50])
  (tmp_path / 'in' / 'cut.wav').write_bytes(b'RIFF\x00\x00\x00\x00WAVEjunk')
  with open(tmp_path / 'in' / 'labels.csv', 'w') as f:
    f.write('path,speaker\nf00.wav,a\nf01.wav,b\ncut.wav,c\nmissing.flac,d\n')
  results = embed_lib.embed_folder(workdir, str(tmp_path / 'in' / 'labels.csv'), str(tmp_path / 'out'),
                                   on_bad_file='skip', modules='module_1')
  assert results['written'] == 1 and list(results['modules']) == ['module_1']
  problems = {os.path.basename(b['file'].split(': ')[-1]): b['problem'] for b in results['bad']}
  assert problems['f01.wav'].startswith('too short: 50 samples at 16 kHz, the encoder needs at least 93')
  assert problems['missing.flac'] == 'no such file' and 'not a readable audio file' in problems['cut.wav']
  with np.load(str(tmp_path / 'out' / 'f00.wav.npz')) as z:
    assert sorted(z.files) == ['module_1', 'module_1_frames', 'samples']
  run = _embed_cli(f'--workdir={workdir}', f'--input={tmp_path / "in"}', f'--output={tmp_path / "out2"}')
  lines = run.stderr.strip().splitlines()
  assert run.returncode == 2 and 'Traceback' not in run.stderr, run.stderr
  assert lines[-1].startswith(f'error: {tmp_path / "in" / "labels.csv"} row 3: f01.wav: too short')
  assert lines[-1].endswith('(set --on_bad_file=skip to skip such files)')
  run = _embed_cli(f'--workdir={workdir}', f'--input={tmp_path / "in"}', f'--output={tmp_path / "out3"}',
                   '--modules=module_9')
  assert run.returncode == 2 and run.stderr.strip().splitlines()[-1] == (
      "error: modules='module_9' is not an output of this sim encoder; use 'all' or some of module_0, module_1, "
      'module_2, context')


def test_output_names_stay_inside_the_output_folder():
  assert embed_lib.output_name('a/b.wav') == 'a/b.wav.npz'
  assert embed_lib.output_name('/data/x/../c.flac') == 'data/x/_/c.flac.npz'
  assert embed_lib.output_name('../up.wav') == '_/up.wav.npz'
