"""The original's alignment of per-10-ms phone labels with encoder frames.

The CPC alignment file has 1–2 labels fewer than the encoder has frames (one frame every 160 samples);
the original phone probe keeps the encoder's LAST len(labels) frames ("cutting from the front gave
better results"), i.e. label j belongs to frame j + (F − len(labels)).
"""

import numpy as np

IGNORE_LABEL = -1


def align_frame_labels(features_len: int, labels: np.ndarray) -> np.ndarray:
  """The original's alignment: per-frame targets (features_len,) int32 for `features_len` frames.

  The last len(labels) frames get the labels in order; the first features_len − len(labels) frames
  (1–2 for CPC alignments) get IGNORE_LABEL (−1). More labels than frames is a ValueError.
  """
  labels = np.asarray(labels, np.int32)
  extra = features_len - len(labels)
  if extra < 0:
    raise ValueError(f'{len(labels)} frame labels for only {features_len} encoder frames: '
                     'labels must not outnumber frames')
  return np.concatenate([np.full(extra, IGNORE_LABEL, np.int32), labels])
