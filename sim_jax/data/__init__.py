"""Datasets and the input pipeline: LibriSpeech train-clean-100, the de Boer corpus, a demo corpus.

  source = make_source(config.data, 'train', 'words')      # a Source (see sim_jax.data.source)
  for batch in batches(source, 8, seed=0, epoch=e, shuffle=True, drop_last=True): ...

See the module docstrings of librispeech, deboer and demo for each corpus, and pipeline for the
determinism, padding, sharding and prefetch rules of `batches`.
"""

from sim_jax.data.common import FRAME_HOP, DataError
from sim_jax.data.frames import (IGNORE_LABEL, align_frame_labels, encoder_num_frames, pad_utterances,
                                 utterance_batch)
from sim_jax.data.pipeline import Batches, batches, crop_key, epoch_order, steps_per_epoch
from sim_jax.data.source import Source, Subset, hold_out
from sim_jax.data.sources import CORPORA, VARIANTS, default_data_config, make_source

__all__ = [
    'Batches', 'CORPORA', 'DataError', 'FRAME_HOP', 'IGNORE_LABEL', 'Source', 'Subset', 'VARIANTS', 'hold_out',
    'align_frame_labels', 'batches', 'crop_key', 'default_data_config', 'encoder_num_frames',
    'epoch_order', 'make_source', 'pad_utterances', 'steps_per_epoch', 'utterance_batch',
]
