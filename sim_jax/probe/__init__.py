"""Linear probes on frozen encoder features: speakers, phones, syllables, vowels (see run.py)."""

from sim_jax.probe.features import (FeatureSource, Features, ProbeError, cached_features, extract, extract_many,
                                    feature_source, posterior_kl_source)
from sim_jax.probe.run import probe_name, run_probe
from sim_jax.probe.tasks import TASKS, make_task
