"""The de Boer "Artificial Speech" corpus of the Smooth InfoMax paper (reference-semantics §4.2).

Layout under `config.data.root`:
  reshuffledv2/{train,test}/{word}_{take}.wav                     words, 44.1 kHz ('words')
  split up data padded/{train,test}/{word}_{take}_{pos}_{syl}.wav  syllables, 22.05 kHz ('syllables')

Every file's sample rate is checked like the original does. Words are resampled to 16 kHz and cut to
their first 10240 samples; syllables are resampled to 16 kHz (12156 -> 8821 samples; a longer file
keeps its first 8821). A file shorter than that after resampling is a bad file. The decoded arrays
are cached once per (variant, split) in `{cache}/deboer/`, keyed by the file list (names, sizes,
mtimes), rates, length and resampler, so a changed setting or file rebuilds the cache.

Labels: syllables get 'syllable' (ba bi bu da di du ga gi gu -> 0..8, the last two letters of the
name), 'vowel' (a/i/u -> 0/1/2), 'consonant' (b/d/g -> 0/1/2) and 'position' (the syllable's place in
its word, the name's third field: 1/2/3 -> 0/1/2); words get 'syllable_1..3' (their three syllables,
same classes). Consonant, vowel and position are the syllables' generative factors; 'syllable' is
consonant × vowel.
"""

import glob
import os
import re

import numpy as np

from sim_jax import io
from sim_jax.data.audio import SAMPLE_RATE, read_audio
from sim_jax.data.cache import file_stats, fingerprint, load_npz_cache, resolve_cache_dir
from sim_jax.data.errors import BadFiles, DataError
from sim_jax.data.resample import RESAMPLERS, resample
from sim_jax.data.source import ArraySource

SYLLABLES = ('ba', 'bi', 'bu', 'da', 'di', 'du', 'ga', 'gi', 'gu')
VOWELS = ('a', 'i', 'u')
CONSONANTS = ('b', 'd', 'g')
POSITIONS = ('1', '2', '3')
DOWNLOAD_HINT = ('download it with: python -m sim_jax.data.download deboer --root DIR, then pass '
                 '--config.data.root=DIR/de_boer')
# variant: (folder, file sample rate, samples kept at 16 kHz, name pattern)
VARIANTS = {
    'words': ('reshuffledv2', 44100, 10240, re.compile(r'^((?:[bdg][aiu]){3})_(\d+)$')),
    'syllables': ('split up data padded', 22050, 8821,
                  re.compile(r'^((?:[bdg][aiu]){3})_(\d+)_([123])_([bdg][aiu])$')),
}
_CACHE_VERSION = 1


def _labels_from_name(variant: str, name: str) -> dict[str, int] | None:
  """The labels encoded in a file name, or None if the name does not follow the corpus pattern."""
  m = VARIANTS[variant][3].match(name)
  if not m:
    return None
  word = m.group(1)
  if variant == 'words':
    return {f'syllable_{k + 1}': SYLLABLES.index(word[2 * k:2 * k + 2]) for k in range(3)}
  syllable = m.group(4)
  return {'syllable': SYLLABLES.index(syllable), 'vowel': VOWELS.index(syllable[1]),
          'consonant': CONSONANTS.index(syllable[0]), 'position': POSITIONS.index(m.group(3))}


def _decode(paths: list[str], variant: str, resampler: str, bad: BadFiles) -> tuple[list, list]:
  """Decodes, checks and resamples `paths`; returns (names, arrays) of the good ones."""
  _, rate, length, _ = VARIANTS[variant]
  names, arrays = [], []
  for path in paths:
    name = os.path.splitext(os.path.basename(path))[0]
    if _labels_from_name(variant, name) is None:
      bad.report(path, f'file name does not match the de Boer {variant} pattern '
                       f"(e.g. {'bagigi_1' if variant == 'words' else 'bagigi_1_3_gi'})")
      continue
    audio = read_audio(path, rate)
    if isinstance(audio, str):
      bad.report(path, audio)
      continue
    audio = resample(audio, rate, SAMPLE_RATE, resampler)
    if len(audio) < length:
      bad.report(path, f'too short: {len(audio)} samples at 16 kHz, need {length}')
      continue
    names.append(name)
    arrays.append(audio[:length])
  return names, arrays


class DeBoerSource(ArraySource):
  """de Boer words or syllables of one split, decoded once and held in memory as (N, T) float32."""

  corpus = 'deboer'

  def __init__(self, data_config, split: str, variant: str):
    """Lists, checks, decodes (or loads from the cache) the files of `split`/`variant`."""
    folder_name, rate, length, _ = VARIANTS[variant]
    root = data_config.root
    if not root:
      raise DataError('config.data.root is empty: set it to the folder holding reshuffledv2/; '
                      + DOWNLOAD_HINT)
    folder = os.path.join(root, folder_name, split)
    if not os.path.isdir(folder):
      raise DataError(f'de Boer folder {folder} does not exist; {DOWNLOAD_HINT}')
    paths = sorted(glob.glob(os.path.join(glob.escape(folder), '*.wav')))
    if not paths:
      raise DataError(f'de Boer folder {folder} holds no .wav files; {DOWNLOAD_HINT}')
    resampler = data_config.get('resampler', 'sinc')
    if resampler not in RESAMPLERS:
      raise ValueError(f"config.data.resampler={resampler!r} is not one of {', '.join(RESAMPLERS)}")
    bad = BadFiles(data_config.on_bad_file, f'de Boer {variant} ({split}, {folder})')
    key = fingerprint(_CACHE_VERSION, os.path.realpath(folder), file_stats(paths), rate, length,
                      resampler)
    cache_path = os.path.join(resolve_cache_dir(data_config.cache_dir), 'deboer',
                              f'{variant}-{split}-{key}.npz')
    cached = load_npz_cache(cache_path)
    if cached is not None:
      names, audio = [str(n) for n in cached['names']], cached['audio']
      for path, problem in zip(cached['bad_paths'], cached['bad_problems']):
        bad.report(str(path), str(problem))  # an 'error' run raises on what a 'skip' run cached
    else:
      names, arrays = _decode(paths, variant, resampler, bad)
      if not names:
        raise DataError(f'de Boer folder {folder}: none of its {len(paths)} files is usable')
      audio = np.stack(arrays).astype(np.float32)  # (N, T)
      io.save_npz(cache_path, names=np.array(names), audio=audio,
                      bad_paths=np.array([p for p, _ in bad.skipped], dtype=str),
                      bad_problems=np.array([q for _, q in bad.skipped], dtype=str))
    bad.summary(len(paths))
    per_item = [_labels_from_name(variant, n) for n in names]
    labels = {k: [d[k] for d in per_item] for k in per_item[0]}
    class_names = {k: list(SYLLABLES) for k in labels if k.startswith('syllable')}
    if 'vowel' in labels:
      class_names.update(vowel=list(VOWELS), consonant=list(CONSONANTS), position=list(POSITIONS))
    super().__init__(audio, split=split, variant=variant, names=names, labels=labels,
                     class_names=class_names, skipped=bad.skipped)
