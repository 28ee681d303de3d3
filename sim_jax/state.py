"""What a training checkpoint holds: the encoder's variables and one Adam state per module.

`create_train_state` builds it from the config alone (models + optax), so it is also the restore
target with which every later stage reads a workdir's checkpoints (`sim_jax.workdir`).
"""

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from sim_jax.models import Encoder, make_encoder, module_specs


@flax.struct.dataclass
class TrainState:
  """Everything a training run carries from step to step (the PRNG stream is derived from step)."""

  step: jax.Array                  # () int32, global step
  params: Any                      # {'module_<i>': ...}
  batch_stats: Any                 # BatchNorm running statistics ({} without BatchNorm)
  opt_state: Any                   # {'module_<i>': Adam state}: one optimizer per module


def make_optimizer(train_config) -> optax.GradientTransformation:
  """The per-module optimizer: Adam (betas 0.9/0.999, eps 1e-8), constant learning rate."""
  return optax.adam(train_config.learning_rate, b1=0.9, b2=0.999, eps=1e-8)


def create_train_state(config, key) -> tuple[Encoder, TrainState]:
  """Initialise the encoder (PyTorch-default init) and one Adam state per module.

  Parameter shapes do not depend on the input length, so a fixed 10240-sample dummy input is used.
  """
  specs = module_specs(config.model)
  encoder = make_encoder(config.model, specs)
  variables = jax.jit(lambda k: encoder.init(k, jnp.zeros((2, 10240), jnp.float32), True))(key)
  params = variables['params']
  tx = make_optimizer(config.train)
  opt_state = {name: tx.init(p) for name, p in params.items()}
  return encoder, TrainState(step=jnp.zeros((), jnp.int32), params=params,
                             batch_stats=variables.get('batch_stats', {}), opt_state=opt_state)
