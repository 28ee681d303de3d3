"""The `Source` interface every corpus implements, `ArraySource` for corpora held in memory and
`ClipSource` for corpora of variable-length clips read a piece at a time."""

import concurrent.futures
import copy

import numpy as np

from sim_jax.data.audio import FRAME_HOP, SAMPLE_RATE
from sim_jax.data.errors import BadFiles, DataError, logger
from sim_jax.data.keys import mix_key_array


class Source:
  """One split of one corpus in one variant: a list of items with labels and a way to load them.

  Attributes:
    corpus, split, variant: e.g. 'deboer', 'train', 'words'.
    names: item names ('bagubi_1', 'bagigi_1_3_gi', '2911-12359-0007', 'demo_s3_00017').
    sample_rate: 16000.
    item_length: samples per item in a batch, or None for variable-length items ('utterances').
    labels: {label name: (N,) int32}; class_names: {label name: [class names]}.
    skipped: (file, problem) of every bad file skipped under on_bad_file='skip'.
  """

  corpus = ''
  sample_rate = SAMPLE_RATE
  fixed_items = False  # True: `load` gives an item the same audio whatever its crop key (no crops)
  split_record: dict | None = None  # a split computed from settings (folder corpora): what training records

  def __init__(self, split: str, variant: str, names: list[str], item_length: int | None,
               labels: dict[str, np.ndarray], class_names: dict[str, list[str]],
               skipped: list[tuple[str, str]] | None = None):
    """Stores the common attributes (labels are converted to int32)."""
    self.split = split
    self.variant = variant
    self.names = list(names)
    self.item_length = item_length
    self.labels = {k: np.asarray(v, np.int32) for k, v in labels.items()}
    self.class_names = {k: list(v) for k, v in class_names.items()}
    self.skipped = skipped if skipped is not None else []  # shared: sources may add to it later

  def __len__(self) -> int:
    """Number of items."""
    return len(self.names)

  def __repr__(self) -> str:
    """e.g. <DeBoerSource deboer/train/words: 680 items of 10240 samples>."""
    size = f'{self.item_length} samples' if self.item_length else 'variable length'
    where = f'{self.corpus}/{self.split}/{self.variant}'
    return f'<{type(self).__name__} {where}: {len(self)} items of {size}>'

  def load(self, indices: np.ndarray, crop_key: int) -> dict[str, np.ndarray]:
    """The items `indices`: {'audio': (n, T) float32, <label>: (n,) int32 for each label}.

    `crop_key` selects random crops where the corpus crops (LibriSpeech); others ignore it. A source
    may add 'valid' (n,) float32: 0 for a row whose file turned out broken while loading (skipped).
    """
    raise NotImplementedError

  def label_arrays(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """{label: (n,) int32} of the items `indices`."""
    return {k: v[indices] for k, v in self.labels.items()}

  def load_utterance(self, i: int) -> np.ndarray:
    """The whole item i as (T,) float32 (for fixed-length corpora: the item itself)."""
    return self.load(np.array([i]), 0)['audio'][0]

  def frame_labels(self, i: int) -> np.ndarray:
    """Per-10-ms phone labels (F,) int32 of item i; corpora without them raise DataError."""
    raise DataError(f'{self.corpus} {self.variant} has no per-frame phone labels '
                    '(available: librispeech with converted_aligned_phones.txt, demo)')

  def label_origin(self, label: str) -> str:
    """Where the labels `label` come from, for messages: e.g. "the deboer syllables' 'vowel' labels"."""
    return f"the {self.corpus} {self.variant}' {label!r} labels"

  def require_length(self, samples: int, why: str) -> 'Source':
    """The source without items shorter than `samples` (`why`: e.g. "the encoder's receptive field").

    Fixed-length corpora are checked once against the encoder (`sim_jax.models.check_audio`);
    `ClipSource` checks every clip.
    """
    del samples, why
    return self

  def without_classes(self, label: str, classes: list[int]) -> 'Source':
    """The source to score a probe of `label` on when its items of `classes` have no training item:
    itself (the probe notes them and cannot predict them); a corpus of user-made labels overrides it
    to report them (the folder corpus)."""
    del label, classes
    return self


class ArraySource(Source):
  """A source whose items are rows of one in-memory (N, T) float32 array (de Boer, demo)."""

  fixed_items = True

  def __init__(self, audio: np.ndarray, **kwargs):
    """`audio`: (N, T) float32; kwargs as Source (item_length is T)."""
    super().__init__(item_length=audio.shape[1], **kwargs)
    self.audio = audio  # (N, T)

  def load(self, indices: np.ndarray, crop_key: int) -> dict[str, np.ndarray]:
    """Rows `indices` of the array and their labels; `crop_key` is unused (no crops)."""
    indices = np.asarray(indices, np.int64)
    return {'audio': self.audio[indices], **self.label_arrays(indices)}  # audio (n, T)


class Subset(Source):
  """Items `indices` of another source, in that order: e.g. training items held out for model
  selection (`hold_out`). Loading maps back to the parent, so crops are the parent's."""

  def __init__(self, parent: Source, indices: np.ndarray, split: str):
    """`indices`: (n,) positions in `parent`; `split` names the part, e.g. 'train-heldout'."""
    indices = np.asarray(indices, np.int64)
    super().__init__(split=split, variant=parent.variant, names=[parent.names[i] for i in indices],
                     item_length=parent.item_length, labels=parent.label_arrays(indices),
                     class_names=parent.class_names, skipped=parent.skipped)
    self.corpus = parent.corpus
    self.fixed_items = parent.fixed_items
    self.parent = parent
    self.indices = indices
    if hasattr(parent, 'lengths'):
      self.lengths = np.asarray(parent.lengths)[indices]

  def load(self, indices: np.ndarray, crop_key: int, **kwargs) -> dict[str, np.ndarray]:
    """The parent's items at our positions `indices` (kwargs as the parent's `load`)."""
    return self.parent.load(self.indices[np.asarray(indices, np.int64)], crop_key, **kwargs)


def hold_out(source: Source, fraction: float, seed: int) -> tuple[Subset, Subset]:
  """(the rest, the held-out part) of `source`: a seeded random `fraction` of its items, at least
  one, held out; both parts keep the source's order."""
  if not 0 < fraction < 1:
    raise ValueError(f'config.train.validation_fraction={fraction}: use a fraction in (0, 1)')
  n = len(source)
  count = max(1, int(round(n * fraction)))
  held = np.zeros(n, bool)
  held[np.random.default_rng(seed).permutation(n)[:count]] = True
  return (Subset(source, np.flatnonzero(~held), f'{source.split}-rest'),
          Subset(source, np.flatnonzero(held), f'{source.split}-heldout'))


class ClipSource(Source):
  """A corpus of variable-length clips (LibriSpeech, folder corpora), read a piece at a time.

  'words' items (item_length set) are crops of `crop_length` samples: the crop of item i starts at a
  multiple of 160 samples (frames line up with 10-ms labels), uniform over every start that fits, as
  a function of (crop_key, i) — `batches` derives crop_key from (seed, epoch, step), so a batch is
  reproducible and resuming exact; a clip shorter than a crop is read whole and zero-padded at the
  end. Items with item_length None are whole clips ('utterances').

  Subclasses set `lengths` (N,) int64 samples, `paths` (N,) and `bad` (their BadFiles) before
  `super().__init__`, and implement `decode`.
  """

  lengths: np.ndarray
  paths: list[str]
  bad: BadFiles

  def __init__(self, *, crop_length: int, num_threads: int, **kwargs):
    """kwargs as Source."""
    super().__init__(**kwargs)
    self.crop_length = crop_length
    self.num_threads = num_threads
    self._pool = None

  def decode(self, i: int, start: int, frames: int) -> np.ndarray | str:
    """Samples [start, start + frames) of item i as (frames,) float32, or a problem string."""
    raise NotImplementedError

  def describe(self, i: int) -> str:
    """Item i for messages: its file."""
    return self.paths[i]

  def crop_starts(self, indices: np.ndarray, crop_key: int) -> np.ndarray:
    """(n,) int64 crop starts of items `indices` under `crop_key`: multiples of 160, in range.

    Uniform over {0, 160, ..., L' − crop_length} with L' the length rounded down to a multiple of
    160; 0 for clips shorter than a crop.
    """
    indices = np.asarray(indices, np.int64)
    usable = self.lengths[indices] - self.lengths[indices] % FRAME_HOP
    choices = np.maximum((usable - self.crop_length) // FRAME_HOP + 1, 1).astype(np.uint64)
    draws = mix_key_array(crop_key, indices)
    return (draws % choices).astype(np.int64) * FRAME_HOP

  def _read(self, i: int, start: int, frames: int) -> np.ndarray | None:
    """Samples [start, start + frames) of item i, or None if its file is broken (policy 'skip')."""
    audio = self.decode(i, start, frames)
    if not isinstance(audio, str):
      return audio
    where = self.describe(i)
    if all(p != where for p, _ in self.bad.skipped):
      self.bad.report(where, audio)
      logger.warning('%s: skipping %s: %s', self.bad.what, where, audio)
    return None

  def _map(self, fn, *args) -> list:
    """fn over the argument lists, on `num_threads` threads (libsndfile and numpy release the GIL)."""
    if self.num_threads <= 1:
      return list(map(fn, *args))
    if self._pool is None:
      self._pool = concurrent.futures.ThreadPoolExecutor(self.num_threads)
    return list(self._pool.map(fn, *args))

  def load(self, indices: np.ndarray, crop_key: int, pad_to: int | None = None
           ) -> dict[str, np.ndarray]:
    """Crops (item_length set: audio (n, crop_length)) or padded whole clips.

    Whole clips come as audio (n, Tmax) zero-padded to max(pad_to, longest) rounded up to a multiple
    of 160. Both return 'length' (n,) int32, the real samples of each row (a crop of a short clip is
    zero-padded past them; pooled features average over the frames before), 'valid' (n,) float32, 0
    for rows whose file turned out broken (zeros, policy 'skip'), and the labels (n,) int32.
    """
    indices = np.asarray(indices, np.int64)
    if self.item_length is not None:
      starts = self.crop_starts(indices, crop_key)
      frames = np.minimum(self.lengths[indices] - starts, self.crop_length)
      width = self.crop_length
    else:
      starts = np.zeros(len(indices), np.int64)
      frames = self.lengths[indices]
      longest = max(int(frames.max()) if len(frames) else 0, pad_to or 0)
      width = -(-longest // FRAME_HOP) * FRAME_HOP
    pieces = self._map(self._read, indices.tolist(), starts.tolist(), frames.tolist())
    audio = np.zeros((len(indices), width), np.float32)  # (n, T)
    valid = np.ones(len(indices), np.float32)
    for row, piece in enumerate(pieces):
      if piece is None:
        valid[row] = 0.0
      else:
        audio[row, :len(piece)] = piece
    return {'audio': audio, 'length': frames.astype(np.int32), 'valid': valid, **self.label_arrays(indices)}

  def load_utterance(self, i: int) -> np.ndarray:
    """The whole clip i, (T,) float32 (a broken file: DataError, or zeros under 'skip')."""
    audio = self._read(i, 0, int(self.lengths[i]))
    return np.zeros(int(self.lengths[i]), np.float32) if audio is None else audio

  def select(self, keep: np.ndarray) -> 'ClipSource':
    """A copy of this source holding only the items `keep` (sorted positions), in order."""
    keep = np.asarray(keep, np.int64)
    out = copy.copy(self)
    out.names = [self.names[i] for i in keep]
    out.paths = [self.paths[i] for i in keep]
    out.lengths = self.lengths[keep]
    out.labels = self.label_arrays(keep)
    out._pool = None
    return out

  def require_length(self, samples: int, why: str) -> 'ClipSource':
    """Clips shorter than `samples` are bad files: a DataError naming the first (policy 'error'), or
    left out and counted in one summary line ('skip')."""
    short = np.flatnonzero(self.lengths < samples)
    if not len(short):
      return self
    for i in short:
      self.bad.report(self.describe(i), f'{self.lengths[i] / SAMPLE_RATE:.3f} s ({self.lengths[i]} samples '
                      f'at 16 kHz), shorter than {why} ({samples} samples); drop such clips with '
                      f'--config.data.min_length={samples}')
    logger.warning('%s: skipped %d of %d clips shorter than %s (%d samples; first: %s)', self.bad.what,
                   len(short), len(self), why, samples, self.describe(short[0]))
    if len(short) == len(self):
      raise DataError(f'{self.bad.what}: every clip is shorter than {why} ({samples} samples)')
    return self.select(np.flatnonzero(self.lengths >= samples))
