"""`config.data` defaults and the factory from (config.data, split, variant) to a Source."""

import ml_collections

from sim_jax.data.errors import BAD_FILE_POLICIES

CORPORA = ('librispeech', 'deboer', 'demo', 'folder')
SPLITS = ('train', 'test')
VARIANTS = {
    'librispeech': ('words', 'utterances'),
    'deboer': ('words', 'syllables'),
    'demo': ('words', 'syllables'),
    'folder': ('words', 'utterances'),
}
# Corpora whose 'words' are random crops of longer clips (a fresh crop every epoch).
CROPPED = ('librispeech', 'folder')
# The variant whose items carry the labels the analyses colour and score by.
LABELLED_VARIANT = {'librispeech': 'words', 'deboer': 'syllables', 'demo': 'syllables', 'folder': 'words'}


def default_data_config(name: str) -> ml_collections.ConfigDict:
  """The full default `config.data` of corpus `name` ('librispeech' | 'deboer' | 'demo' | 'folder').

  root is '' (no guess): set it in the experiment config or with --config.data.root; a source made
  with an empty root raises an error naming the setting and the download command.
  """
  if name not in CORPORA:
    raise ValueError(f"config.data.name={name!r} is not one of {', '.join(CORPORA)}")
  config = ml_collections.ConfigDict(dict(
      name=name,
      root='',            # librispeech: folder of LibriSpeech/ and LibriSpeech100_labels_split/;
                          # deboer: folder of reshuffledv2/ and 'split up data padded/'; folder: your
                          # recordings (see sim_jax/data/folder.py); demo: unused
      cache_dir='',       # '' = $SIM_JAX_CACHE or ~/.cache/sim_jax (decoded audio, manifests, labels)
      on_bad_file='error',  # 'error': stop at a broken file | 'skip': skip it, count it in a summary
      num_threads=2,      # FLAC decode threads (librispeech)
      decoded_cache=False,  # librispeech: decode each split once into a memory-mapped int16 file in
                            # the cache folder and crop from it (same samples, no per-step decoding)
      prefetch=2,         # batches prepared ahead on a background thread
  ))
  if name in ('deboer', 'folder'):
    config.resampler = 'sinc'  # 'sinc': the original's torchaudio resampler, exactly | 'soxr_hq'
  if name == 'folder':
    config.manifest = ''        # the CSV of the files ('path' column, label columns, optional 'split');
                                # '' = <root>/labels.csv, else every audio file under root by its folder
    config.frame_labels = ''    # a CSV path,start,end,<label> of segments (seconds): a frame-wise probe task
    config.test_fraction = 0.2  # without a split column: this seeded fraction of the files is the test split
    config.split_by = ''        # a label column: split its values instead of files (no value in both splits)
    config.split_seed = 0       # the split is a function of this seed and the names only
    config.item_length = 20480  # training crops (the LibriSpeech recipe's 1.28 s); shorter clips zero-padded
    config.min_length = 0       # clips shorter than this many samples (at 16 kHz) are left out
  if name == 'demo':
    config.demo_seed = 0           # the corpus is a function of this seed only
    config.demo_num_speakers = 8
    config.demo_num_train = 640    # items per split (both variants)
    config.demo_num_test = 160
  return config


def make_source(data_config, split: str, variant: str = 'words'):
  """The Source of `split` ('train' | 'test') and `variant` of corpus config.data.name.

  variant: 'words' (encoder training and the decoder: LibriSpeech and folder crops, de Boer
  10240-sample words, demo words), 'syllables' (de Boer padded syllables, demo syllables) or
  'utterances' (LibriSpeech and folder whole clips, variable length).
  """
  name = data_config.name
  if name not in CORPORA:
    raise ValueError(f"config.data.name={name!r} is not one of {', '.join(CORPORA)}")
  if split not in SPLITS:
    raise ValueError(f"split={split!r} is not one of {', '.join(SPLITS)}")
  if variant not in VARIANTS[name]:
    raise ValueError(f"variant={variant!r} is not available for {name}; "
                     f"valid: {', '.join(VARIANTS[name])}")
  if data_config.on_bad_file not in BAD_FILE_POLICIES:
    raise ValueError(f"config.data.on_bad_file={data_config.on_bad_file!r} is not one of "
                     f"{', '.join(BAD_FILE_POLICIES)}")
  if name == 'librispeech':
    from sim_jax.data.librispeech import LibriSpeechSource
    return LibriSpeechSource(data_config, split, variant)
  if name == 'deboer':
    from sim_jax.data.deboer import DeBoerSource
    return DeBoerSource(data_config, split, variant)
  if name == 'folder':
    from sim_jax.data.folder import FolderSource
    return FolderSource(data_config, split, variant)
  from sim_jax.data.demo import DemoSource
  return DemoSource(data_config, split, variant)
