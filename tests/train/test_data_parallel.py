"""One step on 1, 2 and 4 simulated CPU devices gives the same losses and parameters."""

import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent('''
    import os
    os.environ['XLA_FLAGS'] = '--xla_force_host_platform_device_count=4'
    import jax, numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from sim_jax.config import model_config, train_config
    import ml_collections
    from sim_jax.state import create_train_state
    from sim_jax.train.step import make_train_step
    assert jax.device_count() == 4
    config = ml_collections.ConfigDict(dict(model=model_config('sim'), train=train_config('deboer')))
    # BatchNorm off: a conv bias before BatchNorm has a round-off-only gradient that Adam turns into ±lr
    config.model.channels, config.model.gru_hidden, config.model.use_batch_norm = 8, 4, False
    audio = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (8, 2400)), np.float32)
    results = []
    for n in (1, 2, 4):
      mesh = Mesh(np.asarray(jax.devices()[:n]), ('data',))
      encoder, state = create_train_state(config, jax.random.PRNGKey(0))
      state = jax.device_put(state, NamedSharding(mesh, P()))
      batch = {'audio': jax.device_put(audio, NamedSharding(mesh, P('data')))}
      step = make_train_step(config, encoder, mesh, (0, 1, 2, 3))
      state, metrics = step(state, batch, jax.random.PRNGKey(7))
      assert len(batch['audio'].sharding.device_set) == n
      results.append((jax.device_get(metrics), jax.device_get(state.params), jax.device_get(state.batch_stats)))
    base = results[0]
    for metrics, params, stats in results[1:]:
      for k in ('nce', 'kld', 'total'):
        np.testing.assert_allclose(metrics[k], base[0][k], rtol=2e-5, atol=1e-6)
      jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), params, base[1])
      jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6), stats, base[2])
    print('OK', base[0]['total'])
''')


def test_one_step_is_the_same_on_1_2_and_4_devices():
  env = dict(os.environ, PYTHONPATH=REPO)
  run = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=900)
  assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
  assert 'OK' in run.stdout
