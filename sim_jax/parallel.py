"""The device mesh of data parallelism: one axis 'data' over every device of every process.

The same code runs on 1 CPU, N GPUs and multi-host TPU/GPU: batches are sharded along 'data'
(`batch_sharding`), parameters and optimizer states replicated (`replicated`).
"""

import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def initialize_distributed() -> None:
  """`jax.distributed.initialize()` for a multi-process run (`config.train.distributed`).

  The cluster comes from the environment: TPU pods, SLURM and Open MPI are detected by jax; anywhere
  else set JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID
  (jax itself reads only the first).
  """
  counts = {}
  for name, arg in (('JAX_NUM_PROCESSES', 'num_processes'), ('JAX_PROCESS_ID', 'process_id')):
    if os.environ.get(name):
      if not os.environ[name].isdigit():
        raise ValueError(f'{name}={os.environ[name]!r} is not a non-negative integer')
      counts[arg] = int(os.environ[name])
  jax.distributed.initialize(**counts)


def make_mesh() -> Mesh:
  """A 1-axis mesh 'data' over every device of every process."""
  return Mesh(np.asarray(jax.devices()), ('data',))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Arrays split along their first (batch) axis over the mesh's 'data' axis."""
  return NamedSharding(mesh, P('data'))


def replicated(mesh: Mesh) -> NamedSharding:
  """Arrays held whole on every device of the mesh."""
  return NamedSharding(mesh, P())
