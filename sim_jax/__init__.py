"""sim-jax: Smooth InfoMax (SIM), Greedy InfoMax (GIM) and CPC for speech in JAX/Flax."""

import importlib.metadata
import os

# XLA:CPU's default scheduler favours running independent ops concurrently, which keeps far more
# activations alive at once; its memory-aware one needs ~25% less memory for the train step (real
# model, batch 64: 3.6 instead of 4.7 GB of temporaries) at the same speed on 2 cores. The option
# must be in XLA_FLAGS before jax starts its CPU backend (passing it to jit as a compiler option has
# no effect), and XLA refuses unknown flags, so it is set only for jaxlib versions known to have it
# and never over a value the user chose.
_SCHEDULER_FLAG = 'xla_cpu_enable_concurrency_optimized_scheduler'


def _jaxlib_has_scheduler_flag() -> bool:
  try:
    major, minor = (int(p) for p in importlib.metadata.version('jaxlib').split('.')[:2])
  except (importlib.metadata.PackageNotFoundError, ValueError):
    return False
  return (major, minor) >= (0, 10)


if _SCHEDULER_FLAG not in os.environ.get('XLA_FLAGS', '') and _jaxlib_has_scheduler_flag():
  os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} --{_SCHEDULER_FLAG}=false".strip()

# The feature-extractor API, imported on first use so that `import sim_jax` stays cheap (and starts no
# jax before the flag above is set): sim_jax.load_encoder(workdir).encode(waves), see sim_jax/embedding.py.
_EMBEDDING = ('load_encoder', 'FeatureExtractor', 'ModuleFeatures')


def __getattr__(name: str):
  if name in _EMBEDDING:
    from sim_jax import embedding
    return getattr(embedding, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted(list(globals()) + list(_EMBEDDING))
