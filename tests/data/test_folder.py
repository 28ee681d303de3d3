"""The folder corpus on real recordings: decoding any format / rate / channel count, the manifest, the
split, the cache, crops and frame labels; the bad inputs are in test_folder_bad_inputs.py."""

import csv
import logging
import os

import numpy as np
import pytest
import soundfile as sf

from sim_jax.data import FRAME_HOP, batches, make_source
from sim_jax.data import folder as folder_lib
from sim_jax.data.audio import load_audio_file, read_audio
from sim_jax.data.librispeech import PhoneLabels
from sim_jax.data.resample import resample
from tests.data.helpers import DEBOER, LIBRI, build_folder, config

WORD = os.path.join(DEBOER, 'reshuffledv2', 'train', 'bagigi_1.wav')  # 44.1 kHz mono 16-bit


@pytest.fixture(scope='module')
def word():
  """The de Boer word as the file holds it (44.1 kHz) and resampled to 16 kHz the de Boer way."""
  audio = read_audio(WORD, 44100)
  return audio, resample(audio, 44100, 16000, 'sinc')


@pytest.mark.parametrize('ext, fmt, subtype', [('wav', 'WAV', 'PCM_16'), ('flac', 'FLAC', 'PCM_16')])
def test_lossless_files_decode_as_the_deboer_reader_resamples(shared_data, tmp_path, word, ext, fmt, subtype):
  raw, expected = word
  path = str(tmp_path / f'w.{ext}')
  sf.write(path, raw, 44100, format=fmt, subtype=subtype)
  audio, info = load_audio_file(path)
  np.testing.assert_array_equal(audio, expected)  # 16-bit samples kept exactly, the same resampler
  assert info == {'sample_rate': 44100, 'channels': 1, 'frames': len(raw), 'format': fmt}
  assert audio.dtype == np.float32


def test_channels_are_averaged_and_any_rate_resampled(shared_data, tmp_path, word):
  raw, expected = word
  path = str(tmp_path / 'stereo.flac')
  sf.write(path, np.stack([raw, -0.5 * raw], 1), 44100, subtype='PCM_24')
  audio, info = load_audio_file(path)
  assert info['channels'] == 2
  np.testing.assert_allclose(audio, 0.25 * expected, atol=2e-6)  # (x - x/2) / 2, resampled
  for rate in (8000, 22050, 48000):  # the word at another rate (soxr), read back at 16 kHz (sinc)
    other = str(tmp_path / f'r{rate}.wav')
    sf.write(other, resample(raw, 44100, rate, 'soxr_hq'), rate, subtype='FLOAT')
    audio, info = load_audio_file(other)
    assert info['sample_rate'] == rate and abs(len(audio) - len(expected)) <= 1
    n = min(len(audio), len(expected))
    band = int((3600 if rate == 8000 else 7000) * n / 16000)  # what survives the detour: compared below it
    got, want = (np.abs(np.fft.rfft(x[:n]))[:band] for x in (audio, expected))
    assert np.corrcoef(got, want)[0, 1] > 0.99


@pytest.mark.parametrize('ext, fmt, subtype', [('ogg', 'OGG', 'VORBIS'), ('mp3', 'MP3', 'MPEG_LAYER_III'),
                                               ('opus', 'OGG', 'OPUS')])
def test_lossy_files_decode_close_to_the_original(shared_data, tmp_path, word, ext, fmt, subtype):
  raw, expected = word
  rate = 48000 if subtype == 'OPUS' else 44100
  path = str(tmp_path / f'w.{ext}')
  sf.write(path, raw if rate == 44100 else resample(raw, 44100, rate, 'soxr_hq'), rate, format=fmt,
           subtype=subtype)
  audio, info = load_audio_file(path)
  assert info['format'] == fmt and info['sample_rate'] == rate
  n = min(len(audio), len(expected))
  assert abs(len(audio) - len(expected)) < 0.05 * len(expected)
  lag = np.argmax(np.correlate(audio[:n], expected[:n], 'full')) - (n - 1)  # a codec's delay
  a, b = (audio[lag:n], expected[:n - lag]) if lag >= 0 else (audio[:n + lag], expected[-lag:n])
  assert np.corrcoef(a, b)[0, 1] > 0.97


def test_read_manifest_csv_names_rows_and_paths(tmp_path):
  folder = tmp_path / 'rec'
  (folder / 'a').mkdir(parents=True)
  outside = tmp_path / 'elsewhere.wav'
  (tmp_path / 'rec' / 'labels.csv').write_text(
      '\ufeffpath, speaker ,split\n'  # a byte-order mark and spaces around names are fine
      'a/one.wav,alice,train\n\n'
      f'{outside},bob,TEST\n'
      './a/../a/two.flac,,train\n', encoding='utf-8')
  m = folder_lib.read_manifest(str(folder))
  assert m.csv_path == str(folder / 'labels.csv') and m.label_columns == ['speaker']
  assert [(i.name, i.row, i.split, i.labels) for i in m.items] == [
      ('a/one.wav', 2, 'train', {'speaker': 'alice'}), (str(outside), 4, 'test', {'speaker': 'bob'}),
      ('a/two.flac', 5, 'train', {'speaker': ''})]
  assert m.items[0].path == str(folder / 'a' / 'one.wav') and m.items[1].path == str(outside)
  assert m.classes('speaker') == ['alice', 'bob']
  assert m.where(m.items[2]) == f'{folder / "labels.csv"} row 5: a/two.flac'
  other = tmp_path / 'other.csv'  # data.manifest: paths relative to that CSV's folder
  other.write_text('path,mood\nrec/a/one.wav,calm\n')
  (item,) = folder_lib.read_manifest(str(folder), str(other)).items
  assert (item.path, item.name, item.split) == (str(folder / 'a' / 'one.wav'), 'rec/a/one.wav', None)


def test_read_manifest_without_csv_labels_by_parent_folder(tmp_path):
  for name in ('alice/x.wav', 'alice/deep/y.FLAC', 'bob/z.mp3', 'top.ogg', 'bob/notes.txt', '.hidden/q.wav',
               'bob/.q.wav'):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'')
  m = folder_lib.read_manifest(str(tmp_path))
  assert m.csv_path is None and m.label_columns == ['label']
  assert [(i.name, i.labels['label']) for i in m.items] == [
      ('alice/deep/y.FLAC', 'deep'), ('alice/x.wav', 'alice'), ('bob/z.mp3', 'bob'), ('top.ogg', '')]
  flat = tmp_path / 'flat'
  flat.mkdir()
  (flat / 'a.wav').write_bytes(b'')
  assert folder_lib.read_manifest(str(flat)).label_columns == []


def test_split_is_seeded_sized_grouped_and_stable(tmp_path):
  def manifest(n, speakers):
    items = [folder_lib.ManifestItem(f'/x/{k}.wav', f'{k}.wav', {'speaker': f's{k % speakers}'}, None, k + 2)
             for k in range(n)]
    return folder_lib.Manifest('/x', '/x/labels.csv', ['speaker'], items)

  m = manifest(100, 10)
  split = folder_lib.assign_splits(m, 0.2)
  assert split.count('test') == 20 and split == folder_lib.assign_splits(m, 0.2)
  assert split != folder_lib.assign_splits(m, 0.2, seed=1)
  grouped = folder_lib.assign_splits(m, 0.3, 'speaker')
  test_speakers = {i.labels['speaker'] for i, s in zip(m.items, grouped) if s == 'test'}
  train_speakers = {i.labels['speaker'] for i, s in zip(m.items, grouped) if s == 'train'}
  assert len(test_speakers) == 3 and not test_speakers & train_speakers
  more = folder_lib.assign_splits(manifest(110, 10), 0.2)  # ten files added: few of the others move
  assert sum(a != b for a, b in zip(split, more)) <= 3
  tiny = folder_lib.assign_splits(manifest(3, 3), 0.01)  # at least one file in each split
  assert sorted(tiny) == ['test', 'train', 'train']


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
  """A built folder (folder_helpers: several formats, rates, channels) and a private cache."""
  root = tmp_path_factory.mktemp('rec')
  made = build_folder(str(root), syllables_per_vowel=3, words=3)
  return str(root), made, tmp_path_factory.mktemp('cache')


def test_source_items_labels_and_summary(shared_data, corpus, capsys):
  root, made, cache = corpus
  train = make_source(config('folder', root, cache), 'train', 'words')
  test = make_source(config('folder', root, cache), 'test', 'utterances')
  assert sorted(train.names + test.names) == sorted(made) and not set(train.names) & set(test.names)
  assert len(test) == round(0.2 * len(made)) and test.item_length is None and train.item_length == 20480
  rows = list(csv.DictReader(open(os.path.join(root, 'labels.csv'))))
  for source in (train, test):
    assert source.class_names['speaker'] == sorted({r['speaker'] for r in rows})  # over both splits
    for i, name in enumerate(source.names):
      row = next(r for r in rows if r['path'] == name)
      for column in ('speaker', 'word', 'vowel'):
        value = source.labels[column][i]
        assert (source.class_names[column][value] if value >= 0 else '') == row[column]
  err = capsys.readouterr().err
  fmts = {f: sum(made[n][0] == f for n in train.names) for f in ('FLAC', 'MP3', 'OGG', 'WAV')}
  assert (f'folder train split: {len(train)} of {len(train)} clips' in err and
          ', '.join(f'{n} {f}' for f, n in fmts.items() if n) in err)
  assert f'{sum(made[n][2] == 2 for n in train.names)} mixed down to mono' in err
  assert train.split_record['test'] == test.names and train.split_record['train'] == train.names


def test_cache_is_read_back_and_an_edited_file_is_read_again(shared_data, corpus, tmp_path, monkeypatch, caplog):
  root, made, _ = corpus
  c = config('folder', root, tmp_path / 'cache')
  first = make_source(c, 'test', 'utterances')
  name = first.names[0]
  fresh, _ = load_audio_file(os.path.join(root, name))
  np.testing.assert_array_equal(first.load_utterance(0), fresh)
  calls = []
  real = folder_lib.load_audio_file
  monkeypatch.setattr(folder_lib, 'load_audio_file', lambda *a: calls.append(a) or real(*a))
  again = make_source(c, 'test', 'utterances')
  assert calls == [] and np.array_equal(again.load_utterance(0), fresh)
  os.utime(os.path.join(root, name), ns=(1, 1))  # a new mtime: a new key
  make_source(c, 'test', 'utterances')
  assert [a[0] for a in calls] == [os.path.join(root, name)]
  entry = again._entries[1]
  with open(entry['file'], 'r+b') as f:  # cut the decoded samples: found on reading, rebuilt once
    f.truncate(200)
  with caplog.at_level(logging.WARNING, logger='sim_jax.data'):
    np.testing.assert_array_equal(again.load_utterance(1), load_audio_file(os.path.join(root, again.names[1]))[0])
  assert any('damaged cache' in r.getMessage() and entry['file'] in r.getMessage() for r in caplog.records)
  cached = [f for _, _, files in os.walk(tmp_path / 'cache') for f in files]
  assert not [f for f in cached if f.endswith('.tmp')]
  assert {f[:-4] for f in cached if f.endswith('.npy')} <= {f[:-5] for f in cached if f.endswith('.json')}


def test_crops_are_fresh_reproducible_slices_and_short_clips_padded(shared_data, corpus):
  root, _, cache = corpus
  train = make_source(config('folder', root, cache, item_length=16000), 'train', 'words')
  long = int(np.argmax(train.lengths))
  short = int(np.argmin(train.lengths))
  full = train.load_utterance(long)
  batch = train.load(np.array([long, short]), crop_key=7)
  start = train.crop_starts(np.array([long]), 7)[0]
  assert start % FRAME_HOP == 0 and start + 16000 <= len(full)
  np.testing.assert_array_equal(batch['audio'][0], full[start:start + 16000])
  n = train.lengths[short]
  np.testing.assert_array_equal(batch['audio'][1, :n], train.load_utterance(short))
  assert np.all(batch['audio'][1, n:] == 0) and list(batch['length']) == [16000, n]
  epochs = [next(iter(batches(train, 4, seed=0, epoch=e, shuffle=False, drop_last=True))) for e in (0, 1, 0)]
  np.testing.assert_array_equal(epochs[0]['audio'], epochs[2]['audio'])
  assert not np.array_equal(epochs[0]['audio'], epochs[1]['audio'])


def test_frame_labels_from_segments_equal_the_alignment_they_came_from(shared_data, tmp_path):
  """LibriSpeech phone alignments (one label per 10 ms) written as segments in seconds come back frame by frame."""
  phones = PhoneLabels(os.path.join(LIBRI, 'LibriSpeech100_labels_split', 'converted_aligned_phones.txt'),
                       str(tmp_path / 'cache'))
  root = tmp_path / 'rec'
  root.mkdir()
  rows = [['path', 'start', 'end', 'phone']]
  utts = ['2911-12359-0007', '4051-11218-0044']
  for utt in utts:
    speaker, chapter, _ = utt.split('-')
    os.symlink(os.path.join(LIBRI, 'LibriSpeech', 'train-clean-100', speaker, chapter, utt + '.flac'),
               root / f'{utt}.flac')
    labels = phones[utt]
    edges = np.flatnonzero(np.diff(labels)) + 1
    for a, b in zip(np.concatenate([[0], edges]), np.concatenate([edges, [len(labels)]])):
      rows.append([f'rec/{utt}.flac', f'{a / 100:.2f}', f'{b / 100:.2f}', f'p{labels[a]}'])
  with open(tmp_path / 'segments.csv', 'w', newline='') as f:
    csv.writer(f).writerows(rows)
  (root / 'labels.csv').write_text('path,split\n' + ''.join(f'{u}.flac,{s}\n' for u, s in zip(utts, ['train', 'test'])))
  c = config('folder', str(root), tmp_path / 'cache', frame_labels=str(tmp_path / 'segments.csv'))
  for split, utt in zip(('train', 'test'), utts):
    source = make_source(c, split, 'utterances')
    got = source.frame_labels(0)
    classes = source.class_names['phone']
    want = phones[utt]
    assert len(got) == source.lengths[0] // FRAME_HOP and np.all(got[len(want):] == -1)
    assert [classes[k] for k in got[:len(want)]] == [f'p{k}' for k in want]
    assert source.label_origin('phone') == f'{tmp_path / "segments.csv"} column phone'
