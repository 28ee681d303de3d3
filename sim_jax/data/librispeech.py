"""LibriSpeech train-clean-100 with the CPC split and phone alignments (reference-semantics §4.1).

Layout under `config.data.root`:
  LibriSpeech/train-clean-100/{spk}/{chapter}/{spk}-{chapter}-{utt}.flac   16 kHz mono FLAC
  LibriSpeech100_labels_split/{train,test}_split.txt                     one utterance id per line
  LibriSpeech100_labels_split/converted_aligned_phones.txt               `id p1 p2 ...` (41 classes)

Variants:
  'words'      — 20480-sample crops (1.28 s), the encoder's and speaker probe's training items, drawn
                 as `ClipSource` draws them (a start at a multiple of 160 samples, uniform over every
                 start that fits, a function of the batch's crop key and the item). Only the crop's
                 frames are decoded.
                 Differences from the original (which draws from range(160, len − 20480, 160)): start
                 0 and the last fitting start are allowed, and an utterance shorter than a crop (the
                 original crashes) is read whole and zero-padded at the end.
  'utterances' — whole utterances (variable length), for phone probes and whole-utterance evaluation.

Speaker labels: 251 classes in the original's order — first appearance in train_split.txt, then
speakers found only in test_split.txt. Ids listed in a split file without audio on disk (a partial
download) are reported once with a count and skipped. The file manifest (lengths read from the FLAC
headers) and the parsed phone labels are cached in `{cache}/librispeech/`.

config.data.decoded_cache=True (off by default) decodes every usable utterance of the split once into
`{cache}/librispeech/decoded-{split}-{key}.int16`, all samples concatenated, with an npz index beside
it (offsets, decode problems, the data file's size), and reads crops from it memory-mapped: the same
float32 samples as the FLAC reader (int16 / 32768, libsndfile's scaling) without decoding, for
accelerator steps that consume thousands of crops/s. The key covers the audio folder (resolved),
the split, its ids, every file's size and mtime, the sample rate and a version; a data file of the
wrong size is reported as damaged in one warning line and rebuilt. A file that fails to decode is
recorded in the index and treated as the FLAC reader treats it when a batch reaches it.
"""

import concurrent.futures
import os
import re

import numpy as np
import soundfile as sf
from tqdm import tqdm

from sim_jax import io
from sim_jax.data.audio import SAMPLE_RATE, audio_header, read_audio
from sim_jax.data.cache import (file_stats, fingerprint, load_json_cache, load_npz_cache, resolve_cache_dir,
                                save_json_cache, warn_damaged_cache)
from sim_jax.data.errors import BadFiles, DataError, logger
from sim_jax.data.source import ClipSource

CROP_LENGTH = 20480
NUM_PHONES = 41
AUDIO_DIR = os.path.join('LibriSpeech', 'train-clean-100')
SPLIT_DIR = 'LibriSpeech100_labels_split'
PHONE_FILE = 'converted_aligned_phones.txt'
DOWNLOAD_HINT = ('download it with: python -m sim_jax.data.download librispeech --root DIR, then '
                 'pass --config.data.root=DIR')
_ID = re.compile(r'^(\d+)-(\d+)-(\d+)$')
_CACHE_VERSION = 2  # 2: the manifest is stored with its sha256
_DECODED_VERSION = 1
_DECODE_CHUNK = 256  # utterances decoded at a time while building the decoded cache
_warned: set = set()


def read_split(path: str) -> list[str]:
  """Utterance ids of a split file, in order; a malformed line is a DataError naming file and line."""
  if not os.path.isfile(path):
    raise DataError(f'LibriSpeech split file {path} does not exist; {DOWNLOAD_HINT}')
  ids = []
  with open(path) as f:
    for lineno, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      if not _ID.match(line):
        raise DataError(f'{path}:{lineno}: {line[:40]!r} is not a speaker-chapter-utterance id')
      ids.append(line)
  if not ids:
    raise DataError(f'LibriSpeech split file {path} is empty')
  return ids


def speaker_order(split_dir: str) -> list[str]:
  """Speaker ids in the original's class order: first appearance in train, then test-only speakers."""
  order, seen = [], set()
  for split in ('train', 'test'):
    for utt in read_split(os.path.join(split_dir, f'{split}_split.txt')):
      speaker = utt.split('-')[0]
      if speaker not in seen:
        seen.add(speaker)
        order.append(speaker)
  return order


def audio_path(root: str, utt: str) -> str:
  """{root}/LibriSpeech/train-clean-100/{spk}/{chapter}/{utt}.flac."""
  speaker, chapter, _ = utt.split('-')
  return os.path.join(root, AUDIO_DIR, speaker, chapter, utt + '.flac')


def _inspect(path: str) -> int | str:
  """Number of samples from a FLAC header, or a problem string (empty, unreadable, rate, channels)."""
  info = audio_header(path, SAMPLE_RATE)
  return info if isinstance(info, str) else int(info.frames)


def _manifest(root: str, split: str, ids: list[str], cache_dir: str, num_threads: int
              ) -> tuple[dict, list[str], str]:
  """({id: num_samples or problem string} of the ids with a file, [ids without a file], key).

  Cached as JSON keyed by the audio folder, the ids and every present file's size and mtime (`key`).
  """
  paths = {utt: audio_path(root, utt) for utt in ids}
  present = [utt for utt in ids if os.path.exists(paths[utt])]
  present_set = set(present)
  missing = [utt for utt in ids if utt not in present_set]
  key = fingerprint(_CACHE_VERSION, os.path.realpath(os.path.join(root, AUDIO_DIR)), ids,
                    file_stats([paths[u] for u in present]))
  cache_path = os.path.join(cache_dir, 'librispeech', f'manifest-{split}-{key}.json')
  entries = load_json_cache(cache_path)
  if entries is not None:
    return entries, missing, key
  with concurrent.futures.ThreadPoolExecutor(max(num_threads, 1)) as pool:
    headers = tqdm(pool.map(_inspect, [paths[u] for u in present]), total=len(present),
                   desc=f'LibriSpeech {split} manifest (once)', disable=len(present) < 1000 or None)
    entries = dict(zip(present, headers))
  save_json_cache(cache_path, entries)
  return entries, missing, key


def _decode_int16(path: str) -> np.ndarray | str:
  """The whole file as (T,) int16, or a problem string (read_audio's); not 16-bit: DataError."""
  subtype = sf.info(path).subtype
  if subtype != 'PCM_16':
    raise DataError(f'{path}: {subtype} audio, but the decoded cache holds 16-bit samples: set '
                    'config.data.decoded_cache=False')
  return read_audio(path, SAMPLE_RATE, dtype='int16')


def decoded_cache(paths: list[str], lengths: np.ndarray, cache_dir: str, split: str, key: str,
                  num_threads: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
  """(samples (sum T,) int16 memmap, offsets (N + 1,) int64, problems [N]) of the files `paths`.

  Loaded from `{cache_dir}/librispeech/decoded-{split}-{key}.*`, or decoded and written atomically
  (data file first, then its index). problems[i] is '' or why file i could not be decoded (its span
  is then empty). `key` identifies the files (the manifest's key); the sample rate and a version are
  folded in here.
  """
  key = fingerprint(_DECODED_VERSION, key, split, SAMPLE_RATE)
  base = os.path.join(cache_dir, 'librispeech', f'decoded-{split}-{key}')
  data_path, index_path = base + '.int16', base + '.npz'
  index = load_npz_cache(index_path)
  if index is not None:
    size = os.path.getsize(data_path) if os.path.exists(data_path) else None
    if size == int(index['nbytes']):
      return (_open_samples(data_path, size), index['offsets'],
              [str(p) for p in index['problems']])
    warn_damaged_cache(data_path, f'{size} bytes, the index expects {int(index["nbytes"])}'
                       if size is not None else 'missing')
  problems = [''] * len(paths)
  offsets = np.zeros(len(paths) + 1, np.int64)

  def write(tmp):
    """Decodes the files in chunks on `num_threads` threads, appending their samples to `tmp`."""
    with open(tmp, 'wb') as out, concurrent.futures.ThreadPoolExecutor(max(num_threads, 1)) as pool, \
        tqdm(total=len(paths), desc=f'LibriSpeech {split} decoded cache (once)',
             disable=len(paths) < 1000 or None) as bar:
      for first in range(0, len(paths), _DECODE_CHUNK):
        chunk = range(first, min(first + _DECODE_CHUNK, len(paths)))
        decoded = pool.map(_decode_int16, [paths[i] for i in chunk])
        for i, audio in zip(chunk, decoded):
          if isinstance(audio, str):
            problems[i] = audio
            audio = np.zeros(0, np.int16)
          out.write(audio.astype('<i2').tobytes())
          offsets[i + 1] = offsets[i] + len(audio)
          bar.update()

  io.atomic_write(data_path, write, int(np.sum(lengths)) * 2)
  nbytes = int(offsets[-1]) * 2
  io.save_npz(index_path, offsets=offsets, problems=np.array(problems, dtype=str), nbytes=nbytes)
  return _open_samples(data_path, nbytes), offsets, problems


def _open_samples(path: str, nbytes: int) -> np.ndarray:
  """The data file as a read-only (nbytes / 2,) int16 memmap (an empty array for an empty file)."""
  if nbytes == 0:
    return np.zeros(0, np.int16)
  return np.memmap(path, dtype='<i2', mode='r')


class PhoneLabels:
  """The CPC alignment file, parsed once and cached as npz: {utterance id: (F,) int32 phone ids}."""

  def __init__(self, path: str, cache_dir: str):
    """Loads `path` from the cache or parses it (non-integer or out-of-range label: DataError)."""
    if not os.path.isfile(path):
      raise DataError(f'LibriSpeech phone labels {path} do not exist; {DOWNLOAD_HINT}')
    self.path = path
    key = fingerprint(_CACHE_VERSION, os.path.realpath(path), file_stats([path]))
    cache_path = os.path.join(cache_dir, 'librispeech', f'phones-{key}.npz')
    cached = load_npz_cache(cache_path)
    if cached is None:
      cached = self._parse(path)
      io.save_npz(cache_path, **cached)
    self._index = {str(u): k for k, u in enumerate(cached['ids'])}
    self._offsets = cached['offsets']  # (N + 1,)
    self._values = cached['values']    # (sum F,) int8

  @staticmethod
  def _parse(path: str) -> dict[str, np.ndarray]:
    """{'ids', 'offsets', 'values'} of the file; errors name the file and line number."""
    ids, chunks = [], []
    with open(path) as f:
      for lineno, line in enumerate(f, 1):
        fields = line.split(None, 1)
        if not fields:
          continue
        utt, rest = fields[0], fields[1] if len(fields) > 1 else ''
        try:
          values = np.fromstring(rest, dtype=np.int64, sep=' ')  # text mode: fast, strict
        except ValueError:
          bad = next(p for p in rest.split() if not p.lstrip('-').isdigit())
          raise DataError(f'{path}:{lineno}: phone label {bad[:20]!r} is not an integer') from None
        if len(values) == 0:
          raise DataError(f'{path}:{lineno}: utterance {utt} has no labels')
        outside = values[(values < 0) | (values >= NUM_PHONES)]
        if len(outside):
          raise DataError(f'{path}:{lineno}: phone label {int(outside[0])} is out of range '
                          f'0..{NUM_PHONES - 1}')
        ids.append(utt)
        chunks.append(values.astype(np.int8))
    offsets = np.concatenate([[0], np.cumsum([len(c) for c in chunks])]).astype(np.int64)
    values = np.concatenate(chunks) if chunks else np.zeros(0, np.int8)
    return {'ids': np.array(ids, dtype=str), 'offsets': offsets, 'values': values}

  def __contains__(self, utt: str) -> bool:
    """Whether the file has labels for utterance `utt`."""
    return utt in self._index

  def __getitem__(self, utt: str) -> np.ndarray:
    """(F,) int32 phone labels of utterance `utt` (KeyError-free: DataError if absent)."""
    k = self._index.get(utt)
    if k is None:
      raise DataError(f'{self.path} has no phone labels for utterance {utt}')
    return self._values[self._offsets[k]:self._offsets[k + 1]].astype(np.int32)


class LibriSpeechSource(ClipSource):
  """LibriSpeech train-clean-100 items of one CPC split: crops ('words') or whole 'utterances'."""

  corpus = 'librispeech'

  def __init__(self, data_config, split: str, variant: str):
    """Reads the split, builds (or loads) the manifest, reports missing and bad files."""
    root = data_config.root
    if not root:
      raise DataError('config.data.root is empty: set it to the folder holding LibriSpeech/ and '
                      f'{SPLIT_DIR}/; {DOWNLOAD_HINT}')
    if not os.path.isdir(root):
      raise DataError(f'LibriSpeech root {root} does not exist; {DOWNLOAD_HINT}')
    self.root = root
    self.cache_dir = resolve_cache_dir(data_config.cache_dir)
    split_dir = os.path.join(root, SPLIT_DIR)
    split_file = os.path.join(split_dir, f'{split}_split.txt')
    ids = read_split(split_file)
    speakers = speaker_order(split_dir)
    audio_dir = os.path.join(root, AUDIO_DIR)
    if not os.path.isdir(audio_dir):
      raise DataError(f'LibriSpeech audio folder {audio_dir} does not exist; {DOWNLOAD_HINT}')
    num_threads = int(data_config.get('num_threads', 2))
    entries, missing, key = _manifest(root, split, ids, self.cache_dir, num_threads)
    if missing and (split_file, len(missing)) not in _warned:
      _warned.add((split_file, len(missing)))
      logger.warning('LibriSpeech %s: %d of the %d ids in %s have no audio under %s (a partial '
                     'download?); they are skipped', split, len(missing), len(ids), split_file,
                     audio_dir)
    self.bad = BadFiles(data_config.on_bad_file, f'LibriSpeech {split}')
    names, lengths = [], []
    for utt, entry in entries.items():
      if isinstance(entry, str):
        self.bad.report(audio_path(root, utt), entry)
      else:
        names.append(utt)
        lengths.append(entry)
    self.bad.summary(len(entries))
    if not names:
      raise DataError(f'none of the {len(ids)} ids in {split_file} has usable audio under '
                      f'{audio_dir}; {DOWNLOAD_HINT}')
    self.lengths = np.array(lengths, np.int64)  # (N,) samples per utterance
    self.paths = [audio_path(root, utt) for utt in names]
    self._decoded = None  # (samples, offsets, problems) with config.data.decoded_cache
    if data_config.get('decoded_cache', False):
      self._decoded = decoded_cache(self.paths, self.lengths, self.cache_dir, split, key, num_threads)
    speaker_index = {s: k for k, s in enumerate(speakers)}
    labels = {'speaker': [speaker_index[u.split('-')[0]] for u in names]}
    super().__init__(split=split, variant=variant, names=names,
                     item_length=CROP_LENGTH if variant == 'words' else None, labels=labels,
                     class_names={'speaker': speakers}, skipped=self.bad.skipped,
                     crop_length=CROP_LENGTH, num_threads=num_threads)
    self._phones = None

  def decode(self, i: int, start: int, frames: int) -> np.ndarray | str:
    """Samples [start, start + frames) of item i: from the decoded cache when there is one, else
    decoded from its FLAC file; a problem string if the file is broken."""
    if self._decoded is not None:
      samples, offsets, problems = self._decoded
      if problems[i]:
        return problems[i]
      begin = int(offsets[i]) + start
      return samples[begin:begin + frames].astype(np.float32) * np.float32(1 / 32768)  # (frames,)
    try:
      with sf.SoundFile(self.paths[i]) as f:
        f.seek(start)
        audio = f.read(frames, dtype='float32', always_2d=False)  # (frames,)
      if len(audio) < frames:
        return (f'truncated: the header declares {self.lengths[i]} samples, reading '
                f'[{start}, {start + frames}) gave {len(audio)}')
      return audio
    except (RuntimeError, sf.LibsndfileError) as e:
      return f'corrupt or truncated audio data: {e}'

  def frame_labels(self, i: int) -> np.ndarray:
    """(F,) int32 per-10-ms phone labels (41 classes) of utterance i from the alignment file."""
    if self._phones is None:
      self._phones = PhoneLabels(os.path.join(self.root, SPLIT_DIR, PHONE_FILE), self.cache_dir)
    return self._phones[self.names[i]]
