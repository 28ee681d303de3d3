"""Shared defaults of the experiment configs in `configs/` (ml_collections).

Every `configs/<name>.py` starts from `base_config()` and changes what its recipe changes; the
sections are: data (see `sim_jax.data`), model, train, probe, decoder, analysis, wandb.
"""

import ml_collections


def model_config(kind: str) -> ml_collections.ConfigDict:
  """Encoder settings; defaults are the original's (reference-semantics §1–2)."""
  return ml_collections.ConfigDict(dict(
      kind=kind,                  # 'sim' | 'gim' | 'cpc'
      cpc_variant='conventional',  # CPC only: 'conventional' | 'extra_layers'
      channels=512,               # cnn_hidden_dim
      gru_hidden=256,             # regressor_hidden_dim
      use_batch_norm=True,
      prediction_steps=10,        # K
      num_negatives=10,
      window=128,                 # positives come from a random window of this many frames
      kld_weight=0.01 if kind == 'sim' else 0.0,
      kl_reduction='sum_time',    # the original's: summed over time; 'mean': per frame and channel
  ))
