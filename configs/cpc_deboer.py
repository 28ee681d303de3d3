"""CPC on the de Boer corpus: one end-to-end conv + GRU module, BatchNorm on.

  python train.py --config=configs/cpc_deboer.py --workdir=workdirs/cpc_deboer
  python train.py --config=configs/cpc_deboer.py --config.model.cpc_variant=extra_layers ...

The original's CPC configs (configs/cpc_audio_de_boer_*.py) keep EncoderConfig's default BatchNorm
(config_code/config_classes.py:85); its README's `encoder_config.use_batch_norm=False` is the
override of its SIM / GIM de Boer runs (`--config.model.use_batch_norm=False` to match them).
`cpc_variant='extra_layers'` adds 1x1 no-ReLU layers at the ends of the SIM modules (layers 2, 5, 7;
probe them with --config.probe.source=layer_7).
Data: `python -m sim_jax.data.download deboer --root data/` then --config.data.root=data/de_boer.
Expected: the single InfoNCE falls from ln 11 ≈ 2.40.
"""

from sim_jax.config import base_config


def get_config():
  """The experiment config."""
  return base_config('deboer', 'cpc')
