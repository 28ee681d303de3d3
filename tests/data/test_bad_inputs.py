"""Bad input gets a one-line error naming the file and the problem, or is skipped and counted.

Every case writes real files into tmp_path; good files are links to the real corpora.
"""

import logging
import os

import numpy as np
import pytest
import soundfile as sf

from sim_jax.data import DataError, batches, make_source
from tests.data.helpers import DEBOER, LIBRI, config

GOOD_WORDS = ['bababa_1', 'bubuga_1', 'diduba_1']
NOISE = np.random.default_rng(0).uniform(-0.5, 0.5, 44100).astype(np.float32)


def _deboer_root(tmp_path, bad_name: str, write_bad) -> tuple[str, str]:
  """A de Boer root whose train words are three real ones plus one bad file; returns (root, bad path)."""
  folder = tmp_path / 'de_boer' / 'reshuffledv2' / 'train'
  folder.mkdir(parents=True)
  for name in GOOD_WORDS:
    os.symlink(os.path.join(DEBOER, 'reshuffledv2', 'train', name + '.wav'), folder / (name + '.wav'))
  bad = folder / bad_name
  write_bad(bad)
  return str(tmp_path / 'de_boer'), str(bad)


def _truncated_wav(path):
  sf.write(path, NOISE, 44100, subtype='PCM_16')
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:len(data) // 2])


DEBOER_CASES = {
    'empty': ('gagaga_1.wav', lambda p: open(p, 'wb').close(), 'empty file'),
    'corrupt': ('gagaga_1.wav', lambda p: open(p, 'wb').write(b'RIFF\x10\x00\x00\x00garbage!' * 4),
                'not a readable audio file'),
    'truncated': ('gagaga_1.wav', _truncated_wav, 'truncated'),
    'stereo': ('gagaga_1.wav', lambda p: sf.write(p, np.stack([NOISE, NOISE], 1), 44100), '2 channels'),
    'rate': ('gagaga_1.wav', lambda p: sf.write(p, NOISE, 16000), 'sample rate 16000 Hz, expected 44100 Hz'),
    'short': ('gagaga_1.wav', lambda p: sf.write(p, NOISE[:20000], 44100), 'too short: 7257 samples'),
    'name': ('hello_1.wav', lambda p: sf.write(p, NOISE, 44100), 'does not match'),
}


@pytest.mark.parametrize('case', sorted(DEBOER_CASES))
def test_deboer_bad_file_error(shared_data, tmp_path, case):
  name, write, problem = DEBOER_CASES[case]
  root, bad = _deboer_root(tmp_path, name, write)
  with pytest.raises(DataError) as e:
    make_source(config('deboer', root, tmp_path / 'cache'), 'train', 'words')
  message = str(e.value)
  assert bad in message and problem in message and '\n' not in message
  assert not os.path.exists(tmp_path / 'cache' / 'deboer') or not os.listdir(tmp_path / 'cache' / 'deboer')


@pytest.mark.parametrize('case', ['truncated', 'rate'])
def test_deboer_bad_file_skip(shared_data, tmp_path, caplog, case):
  name, write, problem = DEBOER_CASES[case]
  root, bad = _deboer_root(tmp_path, name, write)
  c = config('deboer', root, tmp_path / 'cache', on_bad_file='skip')
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    source = make_source(c, 'train', 'words')
  assert source.names == GOOD_WORDS and source.skipped == [(bad, source.skipped[0][1])]
  assert problem in source.skipped[0][1]
  (summary,) = [r.getMessage() for r in caplog.records]
  assert 'skipped 1 bad file(s) of 4' in summary and bad in summary
  again = make_source(c, 'train', 'words')  # from the cache: still counted
  assert again.skipped == source.skipped
  with pytest.raises(DataError, match='expected 44100|truncated'):  # and an 'error' run still refuses it
    make_source(config('deboer', root, tmp_path / 'cache'), 'train', 'words')


def test_deboer_missing_root_and_folder(tmp_path):
  with pytest.raises(DataError, match='config.data.root is empty.*sim_jax.data.download deboer'):
    make_source(config('deboer', '', tmp_path), 'train', 'words')
  missing = str(tmp_path / 'nowhere')
  with pytest.raises(DataError) as e:
    make_source(config('deboer', missing, tmp_path), 'test', 'syllables')
  assert os.path.join(missing, 'split up data padded', 'test') in str(e.value)
  assert 'python -m sim_jax.data.download deboer --root DIR' in str(e.value)


def _libri_root(tmp_path, ids=('2911-12359-0007',), phones: str | None = None) -> str:
  """A LibriSpeech root with the real split files restricted to `ids`, audio linked from the fixture."""
  root = tmp_path / 'libri'
  split_dir = root / 'LibriSpeech100_labels_split'
  split_dir.mkdir(parents=True)
  (split_dir / 'train_split.txt').write_text('\n'.join(ids) + '\n')
  (split_dir / 'test_split.txt').write_text('6476-57446-0019\n')
  for utt in ids:
    speaker, chapter, _ = utt.split('-')
    folder = root / 'LibriSpeech' / 'train-clean-100' / speaker / chapter
    folder.mkdir(parents=True, exist_ok=True)
    real = os.path.join(LIBRI, 'LibriSpeech', 'train-clean-100', speaker, chapter, utt + '.flac')
    if os.path.exists(real):
      os.symlink(real, folder / (utt + '.flac'))
  if phones is not None:
    (split_dir / 'converted_aligned_phones.txt').write_text(phones)
  return str(root)


def _flac_path(root, utt):
  speaker, chapter, _ = utt.split('-')
  return os.path.join(root, 'LibriSpeech', 'train-clean-100', speaker, chapter, utt + '.flac')


def _truncated_flac(path):
  sf.write(path, np.tile(NOISE, 2)[:48000], 16000, subtype='PCM_16')
  data = open(path, 'rb').read()
  open(path, 'wb').write(data[:len(data) // 2])


LIBRI_CASES = {
    'empty': (lambda p: open(p, 'wb').close(), 'empty file'),
    'corrupt': (lambda p: open(p, 'wb').write(b'fLaC' + bytes(range(30))), 'not a readable audio file'),
    'stereo': (lambda p: sf.write(p, np.stack([NOISE, NOISE], 1), 16000, format='FLAC'), '2 channels'),
    'rate': (lambda p: sf.write(p, NOISE, 8000, format='FLAC'), 'sample rate 8000 Hz, expected 16000 Hz'),
}


@pytest.mark.parametrize('case', sorted(LIBRI_CASES))
def test_librispeech_bad_file(shared_data, tmp_path, caplog, case):
  write, problem = LIBRI_CASES[case]
  bad_id = '19-198-0001'
  root = _libri_root(tmp_path, ('2911-12359-0007', bad_id))
  write(_flac_path(root, bad_id))
  with pytest.raises(DataError) as e:
    make_source(config('librispeech', root, tmp_path / 'cache'), 'train')
  assert _flac_path(root, bad_id) in str(e.value) and problem in str(e.value)
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    source = make_source(config('librispeech', root, tmp_path / 'cache', on_bad_file='skip'), 'train')
  assert source.names == ['2911-12359-0007'] and len(source.skipped) == 1
  assert any('skipped 1 bad file(s) of 2' in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize('decoded_cache', [False, True])
def test_librispeech_truncated_flac_found_while_loading(shared_data, tmp_path, caplog, decoded_cache):
  """A FLAC cut short has an intact header: the crop read fails; 'skip' zeros the row and masks it.
  With the decoded cache the failure is found while building it and acted on at the same point."""
  bad_id = '19-198-0001'
  root = _libri_root(tmp_path, ('2911-12359-0007', bad_id))
  _truncated_flac(_flac_path(root, bad_id))
  source = make_source(config('librispeech', root, tmp_path / 'cache', decoded_cache=decoded_cache),
                       'train', 'utterances')
  with pytest.raises(DataError, match='19-198-0001.flac: (corrupt or )?truncated'):
    source.load(np.array([0, 1]), 0)
  skipping = make_source(config('librispeech', root, tmp_path / 'cache', on_bad_file='skip',
                                decoded_cache=decoded_cache), 'train', 'utterances')
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    (batch,) = list(batches(skipping, 2, seed=0, epoch=0, shuffle=False, drop_last=True))
  bad_row = list(skipping.names).index(bad_id)
  assert batch['mask'][bad_row] == 0 and batch['mask'][1 - bad_row] == 1
  assert np.all(batch['audio'][bad_row] == 0)
  assert skipping.skipped and skipping.skipped[0][0] == _flac_path(root, bad_id)


def test_librispeech_missing_root_split_and_audio(shared_data, tmp_path):
  with pytest.raises(DataError, match='config.data.root is empty.*download librispeech'):
    make_source(config('librispeech', '', tmp_path), 'train')
  missing = str(tmp_path / 'nowhere')
  with pytest.raises(DataError, match=f'{missing} does not exist.*download librispeech --root DIR'):
    make_source(config('librispeech', missing, tmp_path), 'train')
  root = _libri_root(tmp_path)
  os.remove(os.path.join(root, 'LibriSpeech100_labels_split', 'test_split.txt'))
  with pytest.raises(DataError) as e:
    make_source(config('librispeech', root, tmp_path / 'cache'), 'train')
  assert os.path.join(root, 'LibriSpeech100_labels_split', 'test_split.txt') in str(e.value)
  assert 'python -m sim_jax.data.download librispeech' in str(e.value)
  nothing = _libri_root(tmp_path / 'b', ids=('100-200-0001',))
  with pytest.raises(DataError, match='none of the 1 ids'):
    make_source(config('librispeech', nothing, tmp_path / 'cache'), 'train')


def test_librispeech_bad_split_line(shared_data, tmp_path):
  root = _libri_root(tmp_path)
  path = os.path.join(root, 'LibriSpeech100_labels_split', 'train_split.txt')
  with open(path, 'a') as f:
    f.write('2911-12359-0007.flac\n')
  with pytest.raises(DataError, match=f"{path}:2: '2911-12359-0007.flac' is not a speaker-chapter"):
    make_source(config('librispeech', root, tmp_path / 'cache'), 'train')


@pytest.mark.parametrize('line, problem', [('2911-12359-0007 0 0 3 x7 4', "phone label 'x7' is not an integer"),
                                           ('2911-12359-0007 0 41 2', 'phone label 41 is out of range 0..40'),
                                           ('2911-12359-0007', 'utterance 2911-12359-0007 has no labels')])
def test_phone_label_errors_name_file_and_line(shared_data, tmp_path, line, problem):
  root = _libri_root(tmp_path, phones=f'1-2-3 0 1 2\n{line}\n')
  source = make_source(config('librispeech', root, tmp_path / 'cache'), 'train', 'utterances')
  path = os.path.join(root, 'LibriSpeech100_labels_split', 'converted_aligned_phones.txt')
  with pytest.raises(DataError, match=f'{path}:2: {problem}'):
    source.frame_labels(0)
  assert not [f for f in os.listdir(tmp_path / 'cache' / 'librispeech') if f.startswith('phones-')]


def test_missing_phone_file(shared_data, tmp_path):
  root = _libri_root(tmp_path)
  source = make_source(config('librispeech', root, tmp_path / 'cache'), 'train', 'utterances')
  with pytest.raises(DataError, match='converted_aligned_phones.txt do not exist.*download librispeech'):
    source.frame_labels(0)


def test_bad_options(tmp_path):
  with pytest.raises(ValueError, match="on_bad_file='ignore' is not one of error, skip"):
    make_source(config('deboer', DEBOER, tmp_path, on_bad_file='ignore'), 'train', 'words')
  with pytest.raises(ValueError,
                     match="variant='syllables' is not available for librispeech; valid: words, utterances"):
    make_source(config('librispeech', LIBRI, tmp_path), 'train', 'syllables')
  with pytest.raises(ValueError, match="resampler='kaiser' is not one of sinc, soxr_hq"):
    make_source(config('deboer', DEBOER, tmp_path, resampler='kaiser'), 'test', 'words')
