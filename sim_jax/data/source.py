"""The `Source` interface every corpus implements, and `ArraySource` for corpora held in memory."""

import numpy as np

from sim_jax.data.audio import SAMPLE_RATE
from sim_jax.data.errors import DataError


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


class ArraySource(Source):
  """A source whose items are rows of one in-memory (N, T) float32 array (de Boer, demo)."""

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
