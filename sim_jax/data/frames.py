"""Frame arithmetic of the encoder, the original's label alignment, and padded utterance batches.

The full conv stack (reference-semantics §1.1: kernel/stride/padding 10/5/2, 8/4/2, 4/2/2, 4/2/2,
4/2/1) turns T samples into encoder_num_frames(T) frames, 160 samples (10 ms) apart — the rate of the
CPC phone labels. The alignment file has 1–2 labels fewer than the encoder has frames; the original
phone probe keeps the encoder's LAST len(labels) frames ("cutting from the front gave better
results"), i.e. label j belongs to frame j + (F − len(labels)).
"""

import numpy as np

from sim_jax.data.common import FRAME_HOP

CONV_STACK = ((10, 5, 2), (8, 4, 2), (4, 2, 2), (4, 2, 2), (4, 2, 1))  # (kernel, stride, padding)
IGNORE_LABEL = -1


def encoder_num_frames(num_samples: int, layers=CONV_STACK) -> int:
  """Frames after the conv layers `layers` (default: the full stack) for num_samples inputs.

  Each layer: floor((L + 2·padding − kernel) / stride) + 1. 20480 -> 128, 10240 -> 64, 8821 -> 55.
  """
  length = num_samples
  for kernel, stride, padding in layers:
    length = (length + 2 * padding - kernel) // stride + 1
  return length


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


def pad_utterances(utterances: list[np.ndarray], multiple: int = FRAME_HOP
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Zero-pads (T_i,) arrays at the end to one length, rounded up to a multiple of `multiple`.

  Returns audio (n, Tmax) float32 and lengths (n,) int32. The first encoder_num_frames(T_i) encoder
  frames of a padded row equal those of the unpadded utterance (the convs zero-pad anyway and the
  GRU is causal), so padding does not change the features a probe sees.
  """
  lengths = np.array([len(u) for u in utterances], np.int32)
  longest = int(lengths.max()) if len(lengths) else 0
  target = -(-longest // multiple) * multiple
  audio = np.zeros((len(utterances), target), np.float32)  # (n, Tmax)
  for row, u in zip(audio, utterances):
    row[:len(u)] = u
  return audio, lengths


def utterance_batch(source, indices: np.ndarray, multiple: int = FRAME_HOP) -> dict[str, np.ndarray]:
  """Padded whole items with aligned frame targets — what a frame-wise (phone) probe trains on.

  Returns 'audio' (n, Tmax) float32, 'length' (n,) int32 samples, 'num_frames' (n,) int32
  (encoder_num_frames of each unpadded item), 'frame_labels' (n, Fmax) int32 aligned with
  align_frame_labels and −1 beyond each item's frames, 'frame_mask' (n, Fmax) float32 (1 where a
  label exists), and each item label (n,) int32. Fmax = encoder_num_frames(Tmax).
  """
  indices = np.asarray(indices, np.int64)
  audio, lengths = pad_utterances([source.load_utterance(int(i)) for i in indices], multiple)
  num_frames = np.array([encoder_num_frames(int(n)) for n in lengths], np.int32)
  targets = np.full((len(indices), encoder_num_frames(audio.shape[1])), IGNORE_LABEL, np.int32)
  for row, i, n in zip(targets, indices, num_frames):
    row[:n] = align_frame_labels(int(n), source.frame_labels(int(i)))
  return {'audio': audio, 'length': lengths, 'num_frames': num_frames, 'frame_labels': targets,
          'frame_mask': (targets != IGNORE_LABEL).astype(np.float32), **source.label_arrays(indices)}
