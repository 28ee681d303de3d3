"""`config.data` defaults and the factory from (config.data, split, variant) to a Source."""

import ml_collections

from sim_jax.data.errors import BAD_FILE_POLICIES

CORPORA = ('librispeech', 'deboer', 'demo')
SPLITS = ('train', 'test')
VARIANTS = {
    'librispeech': ('words', 'utterances'),
    'deboer': ('words', 'syllables'),
    'demo': ('words', 'syllables'),
}


def default_data_config(name: str) -> ml_collections.ConfigDict:
  """The full default `config.data` of corpus `name` ('librispeech' | 'deboer' | 'demo').

  root is '' (no guess): set it in the experiment config or with --config.data.root; a source made
  with an empty root raises an error naming the setting and the download command.
  """
  if name not in CORPORA:
    raise ValueError(f"config.data.name={name!r} is not one of {', '.join(CORPORA)}")
  config = ml_collections.ConfigDict(dict(
      name=name,
      root='',            # librispeech: folder of LibriSpeech/ and LibriSpeech100_labels_split/;
                          # deboer: folder of reshuffledv2/ and 'split up data padded/'; demo: unused
      cache_dir='',       # '' = $SIM_JAX_CACHE or ~/.cache/sim_jax (decoded de Boer, manifests, labels)
      on_bad_file='error',  # 'error': stop at a broken file | 'skip': skip it, count it in a summary
      num_threads=2,      # FLAC decode threads (librispeech)
      decoded_cache=False,  # librispeech: decode each split once into a memory-mapped int16 file in
                            # the cache folder and crop from it (same samples, no per-step decoding)
      prefetch=2,         # batches prepared ahead on a background thread
  ))
  if name == 'deboer':
    config.resampler = 'sinc'  # 'sinc': the original's torchaudio resampler, exactly | 'soxr_hq'
  if name == 'demo':
    config.demo_seed = 0           # the corpus is a function of this seed only
    config.demo_num_speakers = 8
    config.demo_num_train = 640    # items per split (both variants)
    config.demo_num_test = 160
  return config


def make_source(data_config, split: str, variant: str = 'words'):
  """The Source of `split` ('train' | 'test') and `variant` of corpus config.data.name.

  variant: 'words' (encoder training and the decoder: LibriSpeech 20480-sample crops, de Boer
  10240-sample words, demo words), 'syllables' (de Boer padded syllables, demo syllables) or
  'utterances' (LibriSpeech whole utterances, variable length).
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
  from sim_jax.data.demo import DemoSource
  return DemoSource(data_config, split, variant)
