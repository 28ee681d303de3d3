"""Helpers shared by the data tests: configs pointing at ../shared/data and a private cache."""

import csv
import glob
import os

import numpy as np
import soundfile as sf

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


def one_utterance_root(tmp_path, audio: np.ndarray, subtype: str = 'PCM_16') -> tuple[str, str]:
  """A LibriSpeech root whose train split is the one utterance 19-198-0001 (`audio` at 16 kHz,
  written as FLAC of `subtype`); returns (root, FLAC path)."""
  root = tmp_path / 'libri'
  split_dir = root / 'LibriSpeech100_labels_split'
  split_dir.mkdir(parents=True)
  (split_dir / 'train_split.txt').write_text('19-198-0001\n')
  (split_dir / 'test_split.txt').write_text('19-198-0002\n')
  folder = root / 'LibriSpeech' / 'train-clean-100' / '19' / '198'
  folder.mkdir(parents=True)
  path = str(folder / '19-198-0001.flac')
  sf.write(path, audio, 16000, subtype=subtype)
  return str(root), path


def _write(path: str, audio: np.ndarray, rate: int, fmt: str, subtype: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  sf.write(path, audio, rate, format=fmt, subtype=subtype)


# (extension, format, subtype, sample rate or None = the file's own, channels) the builder cycles through
FOLDER_ENCODINGS = (
    ('flac', 'FLAC', 'PCM_16', None, 1),
    ('wav', 'WAV', 'PCM_16', 48000, 2),
    ('ogg', 'OGG', 'VORBIS', None, 1),
    ('mp3', 'MP3', 'MPEG_LAYER_III', None, 2),
    ('wav', 'WAV', 'FLOAT', 8000, 1),
    ('flac', 'FLAC', 'PCM_24', 22050, 2),
)


def build_folder(root: str, syllables_per_vowel: int = 30, words: int = 8) -> dict:
  """A folder corpus of real recordings from ../shared/data re-encoded as FOLDER_ENCODINGS (formats,
  sample rates, channel counts): the 9 LibriSpeech fixture utterances under libri/<speaker>/, de Boer
  words under deboer/words/ and syllables (the same number per vowel, from the syllable train split)
  under deboer/syllables/, with labels.csv (path, speaker, word, vowel: LibriSpeech rows have no word
  or vowel, words no vowel). Returns {name: (format, rate, channels, source file)}."""
  from sim_jax.data.resample import resample
  sources = sorted(glob.glob(os.path.join(LIBRI, 'LibriSpeech', 'train-clean-100', '*', '*', '*.flac')))
  rows, made = [], {}
  syllable_files = sorted(glob.glob(os.path.join(DEBOER, 'split up data padded', 'train', '*.wav')))
  picked = []
  for vowel in 'aiu':
    of_vowel = [p for p in syllable_files if os.path.basename(p)[-5] == vowel]
    picked += of_vowel[::max(len(of_vowel) // syllables_per_vowel, 1)][:syllables_per_vowel]
  word_files = sorted(glob.glob(os.path.join(DEBOER, 'reshuffledv2', 'train', '*.wav')))[::40][:words]
  entries = ([('libri', p) for p in sources] + [('word', p) for p in word_files] +
             [('syllable', p) for p in picked])
  for k, (kind, source) in enumerate(entries):
    ext, fmt, subtype, rate, channels = FOLDER_ENCODINGS[k % len(FOLDER_ENCODINGS)]
    stem = os.path.splitext(os.path.basename(source))[0]
    audio, own_rate = sf.read(source, dtype='float32')
    if rate is not None and rate != own_rate:
      audio = resample(audio, own_rate, rate, 'soxr_hq')
    rate = rate or own_rate
    if channels == 2:
      audio = np.stack([audio, 0.5 * audio], 1)  # (T, 2)
    if kind == 'libri':
      name, labels = f'libri/{stem.split("-")[0]}/{stem}.{ext}', [stem.split('-')[0], '', '']
    elif kind == 'word':
      name, labels = f'deboer/words/{stem}.{ext}', ['deboer', stem.split('_')[0], '']
    else:
      name, labels = f'deboer/syllables/{stem}.{ext}', ['deboer', stem.split('_')[0], stem[-1]]
    _write(os.path.join(root, name), audio, rate, fmt, subtype)
    rows.append([name] + labels)
    made[name] = (fmt, rate, channels, source)
  with open(os.path.join(root, 'labels.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['path', 'speaker', 'word', 'vowel'])
    writer.writerows(rows)
  return made
