"""Datasets and the input pipeline: LibriSpeech train-clean-100, the de Boer corpus, a demo corpus and
folders of your own recordings.

  source = make_source(config.data, 'train', 'words')      # a Source (see sim_jax.data.source)
  for batch in batches(source, 8, seed=0, epoch=e, shuffle=True, drop_last=True): ...

Modules: corpora (config.data defaults, the factory), source (the Source interface), librispeech,
deboer, demo, folder (the corpora), manifest (what a folder holds; a labels.csv skeleton), audio
(reading files), resample, cache (cache files and keys), errors (DataError, the bad-file policy),
keys (deterministic integer keys), alignment (phone labels to frames), pipeline (batches:
determinism, padding, sharding, prefetch), download.
"""

from sim_jax.data.alignment import IGNORE_LABEL, align_frame_labels
from sim_jax.data.audio import FRAME_HOP, SAMPLE_RATE
from sim_jax.data.corpora import CORPORA, CROPPED, LABELLED_VARIANT, VARIANTS, default_data_config, make_source
from sim_jax.data.errors import DataError
from sim_jax.data.pipeline import Batches, batches, crop_key, epoch_order, steps_per_epoch
from sim_jax.data.source import Source, Subset, hold_out

__all__ = [
    'Batches', 'CORPORA', 'CROPPED', 'DataError', 'FRAME_HOP', 'IGNORE_LABEL', 'LABELLED_VARIANT',
    'SAMPLE_RATE', 'Source', 'Subset',
    'VARIANTS', 'align_frame_labels', 'batches', 'crop_key', 'default_data_config', 'epoch_order',
    'hold_out', 'make_source', 'steps_per_epoch',
]
