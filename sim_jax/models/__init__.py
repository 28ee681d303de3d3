"""Encoder modules (conv + Gaussian heads, GRU, CPC), the greedy objective and feature extraction."""

from sim_jax.models.encoder import (Encoder, EncoderModule, ModuleSpec, check_audio, frame_counts,
                                    module_specs, stack_receptive_field)
from sim_jax.models.objective import (chain_modules, draw_randomness, encode, greedy_loss, make_encoder,
                                     module_loss)
