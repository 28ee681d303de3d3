"""Every bad input of a folder corpus: one line naming the CSV, the row, the column or the file and the
fix — or, with data.on_bad_file=skip, left out and counted in one summary line; never a traceback,
never a half-written cache entry. Good files are links to the real de Boer words."""

import logging
import os

import numpy as np
import pytest
import soundfile as sf

from sim_jax.config import base_config
from sim_jax.data import DataError, make_source
from sim_jax.models import fit_to_receptive_field, module_specs
from sim_jax.probe.features import ProbeError
from sim_jax.probe.tasks import check_labels, class_names, make_task
from tests.data.helpers import DEBOER, config

WORDS = ['bababa_1', 'bubuga_1', 'diduba_1', 'gagaga_1', 'bababi_1', 'babada_1']
NOISE = np.random.default_rng(0).uniform(-0.5, 0.5, 22050).astype(np.float32)
SPECS = module_specs(base_config('folder', 'sim').model)


def _folder(tmp_path, rows: list[str], header: str = 'path,speaker,split', text: str | None = None) -> str:
  """A folder with the de Boer words linked as <word>.wav and labels.csv of `rows` (or raw `text`)."""
  root = tmp_path / 'rec'
  root.mkdir(exist_ok=True)
  for word in WORDS:
    if not (root / f'{word}.wav').exists():
      os.symlink(os.path.join(DEBOER, 'reshuffledv2', 'train', word + '.wav'), root / f'{word}.wav')
  (root / 'labels.csv').write_text(text if text is not None else '\n'.join([header] + rows) + '\n')
  return str(root)


def _rows(speakers=('a', 'b', 'a', 'b', 'a', 'b'), splits=('train',) * 4 + ('test',) * 2) -> list[str]:
  return [f'{w}.wav,{s},{t}' for w, s, t in zip(WORDS, speakers, splits)]


def _one_line(e) -> str:
  message = str(e.value)
  assert '\n' not in message and 'Traceback' not in message
  return message


def _no_partial_cache(cache) -> None:
  files = [f for _, _, names in os.walk(cache) for f in names]
  assert not [f for f in files if f.endswith('.tmp')]
  assert {f[:-4] for f in files if f.endswith('.npy')} <= {f[:-5] for f in files if f.endswith('.json')}


def test_csv_without_path_column(tmp_path):
  root = _folder(tmp_path, [], text='file,speaker\nbababa_1.wav,a\n')
  with pytest.raises(DataError) as e:
    make_source(config('folder', root, tmp_path / 'cache'), 'train')
  assert _one_line(e) == (f"{root}/labels.csv row 1: no 'path' column (its columns: file, speaker); the first "
                          'row must name the columns, e.g. path,speaker')
  root = _folder(tmp_path, [], text='Path,speaker\nbababa_1.wav,a\n')
  with pytest.raises(DataError, match="rename column 'Path' to 'path'"):
    make_source(config('folder', root, tmp_path / 'cache'), 'train')


BAD_FILES = {
    'missing': (None, 'no such file (fix its path, or delete its row)'),
    'empty': (lambda p: open(p, 'wb').close(), 'empty file (0 bytes)'),
    'not audio': (lambda p: open(p, 'w').write('speaker,word\na,b\n' * 20), 'not a readable audio file'),
    'truncated wav': (lambda p: (sf.write(p, NOISE, 22050, subtype='PCM_16'),
                                 os.truncate(p, os.path.getsize(p) // 2)), 'truncated: the header declares'),
    'truncated flac': (lambda p: (sf.write(p, np.tile(NOISE, 3), 22050, format='FLAC'),
                                  os.truncate(p, os.path.getsize(p) // 2)), 'corrupt or truncated audio data'),
}


@pytest.mark.parametrize('case', sorted(BAD_FILES))
def test_bad_file_names_row_and_file_or_is_skipped_and_counted(shared_data, tmp_path, caplog, case):
  write, problem = BAD_FILES[case]
  name = 'bad.flac' if 'flac' in case else 'bad.wav'
  root = _folder(tmp_path, _rows() + [f'{name},a,train'])
  if write:
    write(os.path.join(root, name))
  with pytest.raises(DataError) as e:
    make_source(config('folder', root, tmp_path / 'cache'), 'train')
  message = _one_line(e)
  assert message.startswith(f'{root}/labels.csv row 8: {name}: {problem}'), message
  assert message.endswith('(set config.data.on_bad_file=skip to skip such files)')
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    source = make_source(config('folder', root, tmp_path / 'cache', on_bad_file='skip'), 'train')
  assert source.names == [f'{w}.wav' for w in WORDS[:4]] and len(source.skipped) == 1
  (summary,) = [r.getMessage() for r in caplog.records]
  assert 'skipped 1 bad file(s) of 5' in summary and f'row 8: {name}' in summary
  _no_partial_cache(tmp_path / 'cache')
  with pytest.raises(DataError, match=problem.split(' (')[0]):  # cached as bad: an 'error' run still refuses it
    make_source(config('folder', root, tmp_path / 'cache'), 'train')


def test_clip_shorter_than_the_receptive_field(shared_data, tmp_path, caplog):
  root = _folder(tmp_path, _rows() + ['click.wav,a,train'])
  sf.write(os.path.join(root, 'click.wav'), NOISE[:400], 22050)  # 291 samples at 16 kHz, the field is 465
  source = make_source(config('folder', root, tmp_path / 'cache'), 'train')
  with pytest.raises(DataError) as e:
    fit_to_receptive_field(source, SPECS)
  assert _one_line(e) == (f"{root}/labels.csv row 8: click.wav: 0.018 s (291 samples at 16 kHz), shorter than the "
                          "encoder's receptive field (465 samples); drop such clips with --config.data.min_length=465 "
                          '(set config.data.on_bad_file=skip to skip such files)')
  skipping = make_source(config('folder', root, tmp_path / 'cache', on_bad_file='skip'), 'train')
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    fitted = fit_to_receptive_field(skipping, SPECS)
  assert fitted.names == skipping.names[:4] and len(fitted.lengths) == 4 and len(fitted.labels['speaker']) == 4
  assert any('skipped 1 of 5 clips shorter than' in r.getMessage() for r in caplog.records)
  np.testing.assert_array_equal(fitted.load_utterance(3), skipping.load_utterance(3))
  dropped = make_source(config('folder', root, tmp_path / 'cache', min_length=465), 'train')
  assert dropped.names == skipping.names[:4] and fit_to_receptive_field(dropped, SPECS) is dropped


def test_duplicate_paths_name_both_rows(tmp_path):
  root = _folder(tmp_path, _rows() + ['./bubuga_1.wav,b,test'])
  with pytest.raises(DataError) as e:
    make_source(config('folder', root, tmp_path / 'cache'), 'train')
  assert _one_line(e) == f'{root}/labels.csv rows 3 and 8 both name bubuga_1.wav; keep one row per file'


def _probe_check(c, column):
  task = make_task(column, 'folder', c)
  train = make_source(c, 'train', task.train_variant)
  tests = {name: make_source(c, 'test', variant) for name, variant in task.evaluations}
  return check_labels(task, class_names(task, train), train, tests)


def test_label_column_with_one_class(shared_data, tmp_path):
  root = _folder(tmp_path, [r + ',calm' for r in _rows()], header='path,speaker,split,mood')
  with pytest.raises(ProbeError) as e:
    _probe_check(config('folder', root, tmp_path / 'cache'), 'mood')
  assert _one_line(e) == (f'{root}/labels.csv column mood: 1 class(es) (calm); a probe needs two or more — '
                          'probe another label')
  assert set(_probe_check(config('folder', root, tmp_path / 'cache'), 'speaker')) == {'crops', 'utterances'}


def test_test_class_without_training_rows(shared_data, tmp_path, capsys):
  root = _folder(tmp_path, _rows(speakers=('a', 'b', 'a', 'b', 'a', 'carol')))
  with pytest.raises(DataError) as e:
    _probe_check(config('folder', root, tmp_path / 'cache'), 'speaker')
  assert _one_line(e).startswith(f"{root}/labels.csv row 7: babada_1.wav, column speaker: class 'carol' is in "
                                 'the test split but in no training row (1 test clips of 1 such classes: carol); '
                                 'give them training rows')
  tests = _probe_check(config('folder', root, tmp_path / 'cache', on_bad_file='skip'), 'speaker')
  assert [t.names for t in tests.values()] == [['bababi_1.wav']] * 2
  assert '1 of 2 test clips left out of the speaker probe' in capsys.readouterr().err


def test_csv_that_is_not_utf8(tmp_path):
  text = 'path,speaker,split\nbababa_1.wav,a,train\nbubuga_1.wav,Jos\xe9,test\n'
  root = _folder(tmp_path, [], text='')
  with open(os.path.join(root, 'labels.csv'), 'wb') as f:
    f.write(text.encode('latin-1'))
  with pytest.raises(DataError) as e:
    make_source(config('folder', root, tmp_path / 'cache'), 'train')
  assert _one_line(e) == (f'{root}/labels.csv row 3: not UTF-8 text (byte 0xe9); save the CSV as UTF-8, e.g. '
                          'iconv -f latin1 -t utf-8 labels.csv > fixed.csv')


def test_empty_split(shared_data, tmp_path):
  root = _folder(tmp_path, _rows(splits=('train',) * 6))
  with pytest.raises(DataError) as e:
    make_source(config('folder', root, tmp_path / 'cache'), 'train')
  assert _one_line(e) == (f'{root}/labels.csv: no row has split=test, so the test split is empty; mark some rows '
                          'test, or drop the split column to split by config.data.test_fraction')
  root = _folder(tmp_path, _rows(splits=('train',) * 4 + ('test',) * 2) + ['x.wav,a,test'])  # test: all bad
  for word in WORDS[4:]:
    os.remove(os.path.join(root, f'{word}.wav'))
  with pytest.raises(DataError) as e:
    make_source(config('folder', root, tmp_path / 'cache', on_bad_file='skip'), 'test')
  assert _one_line(e).startswith(f'{root}/labels.csv: none of the 3 files of the test split is usable (3 bad')


@pytest.mark.parametrize('rows, header, problem', [
    (['bababa_1.wav,a'], 'path,speaker,split', 'row 2: 2 fields, the header names 3 (path,speaker,split)'),
    (['bababa_1.wav,a,valid'], 'path,speaker,split',
     "row 2, column split: 'valid' is not train or test; write train or test"),
    ([',a,train'], 'path,speaker,split', 'row 2, column path: empty; name the file'),
    (['bababa_1.wav,a,train'], 'path,speaker,speaker,split', "row 1: two columns are named 'speaker'"),
    (['bababa_1.wav,a,train'], 'path,speaker id,split', "row 1: column name 'speaker id' names a probe task"),
    (['bababa_1.wav,a,train'], 'path,mask,split', "row 1: a label column may not be named 'mask'"),
    ([], 'path,speaker', 'has no rows below its header; add one row per file'),
])
def test_malformed_csv_rows(tmp_path, rows, header, problem):
  root = _folder(tmp_path, rows, header=header)
  with pytest.raises(DataError) as e:
    make_source(config('folder', root, tmp_path / 'cache'), 'train')
  assert _one_line(e).startswith(f'{root}/labels.csv') and problem in str(e.value)


def test_bad_split_settings_and_missing_folder(tmp_path):
  root = _folder(tmp_path, [f'{w}.wav,a' for w in WORDS], header='path,speaker')
  for key, value, problem in (('split_by', 'speakr', "config.data.split_by='speakr' is not a label column"),
                              ('split_by', 'speaker', r'one speaker value only \(a\), nothing to split'),
                              ('test_fraction', 1.0, r'config.data.test_fraction=1.0: use a fraction in \(0, 1\)')):
    with pytest.raises(DataError, match=problem):
      make_source(config('folder', root, tmp_path / 'cache', **{key: value}), 'train')
  with pytest.raises(DataError, match=f'config.data.root={tmp_path / "nowhere"} is not a folder'):
    make_source(config('folder', str(tmp_path / 'nowhere'), tmp_path / 'cache'), 'train')
  with pytest.raises(DataError, match='config.data.root is empty'):
    make_source(config('folder', '', tmp_path / 'cache'), 'train')
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(DataError, match=f'{empty} holds no audio files .* and no labels.csv'):
    make_source(config('folder', str(empty), tmp_path / 'cache'), 'train')


@pytest.mark.parametrize('rows, problem', [
    (['path,start,end,phone', 'x.wav,0,1,a'], 'row 2: x.wav is not a file of'),
    (['path,start,end,phone', 'rec/bababa_1.wav,0,0.5,a', 'rec/bababa_1.wav,0.4,0.6,b'],
     'rows 2 and 3: segments of bababa_1.wav overlap'),
    (['path,start,end,phone', 'rec/bababa_1.wav,0,half,a'], "row 2, column end: 'half' is not a number"),
    (['path,start,end,phone', 'rec/bababa_1.wav,0.5,0.2,a'], 'row 2: start 0.5 s, end 0.2 s'),
    (['path,start,end,phone', 'rec/bababa_1.wav,30,31,a'], 'row 2: the segment starts at 30.0 s, after the end'),
    (['path,start,phone', 'rec/bababa_1.wav,0,a'], "row 1: no 'end' column"),
    (['path,start,end,speaker', 'rec/bababa_1.wav,0,1,a'], "label column 'speaker' is also an item label"),
])
def test_bad_frame_label_csv(shared_data, tmp_path, rows, problem):
  root = _folder(tmp_path, _rows())
  path = tmp_path / 'segments.csv'
  path.write_text('\n'.join(rows) + '\n')
  with pytest.raises(DataError) as e:
    make_source(config('folder', root, tmp_path / 'cache', frame_labels=str(path)), 'train', 'utterances')
  assert _one_line(e).startswith(str(path)) and problem in str(e.value)


def test_unknown_probe_column(tmp_path):
  root = _folder(tmp_path, _rows())
  with pytest.raises(ProbeError, match=r"config.probe.task='speker' is not a label column of .*labels.csv "
                                       r"\(its columns: speaker\); did you mean 'speaker'\?"):
    make_task('speker', 'folder', config('folder', root, tmp_path / 'cache'))
  assert make_task('', 'folder', config('folder', root, tmp_path / 'cache')).label == 'speaker'
