"""Encoders for the benchmarks: fresh (untrained) ones saved as training workdirs."""

import os


def fresh_workdir(config, workdir: str) -> str:
  """A training workdir holding the encoder of `config` at initialisation (step 0), as train.py writes one."""
  import jax
  from sim_jax import io
  from sim_jax.state import create_train_state
  from sim_jax.workdir import training_checkpoints
  _, state = create_train_state(config, jax.random.PRNGKey(0))
  io.write_json(os.path.join(workdir, 'config.json'), config.to_dict())
  checkpoints = training_checkpoints(workdir)
  checkpoints.save(state)
  checkpoints.close()
  return workdir
