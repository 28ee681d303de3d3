"""Encoder modules (conv + Gaussian heads, GRU, CPC), their frame arithmetic, the greedy objective."""

from sim_jax.models.encoder import (Encoder, EncoderModule, ModuleSpec, check_audio, encode,
                                    fit_to_receptive_field, frame_counts, head_modules, layers_frames, layers_hop,
                                    layers_receptive_field, layers_start, layers_valid_frames, make_encoder,
                                    module_specs, stack_layers)
from sim_jax.models.objective import chain_modules, draw_randomness, greedy_loss, module_loss
