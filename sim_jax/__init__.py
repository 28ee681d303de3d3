"""sim-jax: Smooth InfoMax (SIM), Greedy InfoMax (GIM) and CPC for speech in JAX/Flax."""
