"""Linear probes on the frozen features of a trained encoder (reference-semantics §5).

  python probe.py --config=configs/sim_deboer.py --workdir=workdirs/sim_deboer --config.probe.task=syllables
  python probe.py --config=configs/sim_deboer.py --workdir=workdirs/sim_deboer --config.probe.task=vowels \
      --config.probe.source=module_2 --config.probe.bias=False
  python probe.py --config=configs/sim_librispeech.py --workdir=workdirs/sim_librispeech --config.probe.task=phones
  python probe.py --config=configs/demo.py --workdir=workdirs/demo --config.probe.task=speakers --config.probe.seeds=3

The encoder (and its architecture) comes from the workdir's checkpoint (config.probe.checkpoint:
best | latest | <step>); --config gives the data and the probe settings (config.probe: task, source,
features, bias, epochs, ...). By default the probe is the original's: with a bias on the GRU context
and mean features, without one on the last module's samples (SIM), raw features, the task's recipe.
Writes <workdir>/probes/<task>_<source>[_nobias][_sample][_std]/:
results.json, confusion.png, learning_curve.png, weights.npz, metrics.jsonl. Features are cached in
<workdir>/probes/cache/ and reused by later runs.
"""

from absl import app, flags

from sim_jax.cli import define_config_and_workdir, parse_flags, run_main

FLAGS = flags.FLAGS
define_config_and_workdir('Experiment config file (configs/*.py).',
                          'Training workdir (train.py --workdir) holding the encoder.')


def main(argv):
  del argv

  def run():
    from sim_jax.probe import run_probe
    result = run_probe(FLAGS.config, FLAGS.workdir)
    if result['differs_from_original']:
      print(f'note: differs from the original\'s probe in {"; ".join(result["differs_from_original"])}')
    for name, e in result['evaluations'].items():
      spread = f' ± {e["accuracy_std"]:.4f}' if result['num_seeds'] > 1 else ''
      print(f'{result["task"]} ({name}): accuracy {e["accuracy"]:.4f}{spread} over '
            f'{e["num_test_targets"]} test targets; chance {e["chance"]:.4f}, majority {e["majority"]:.4f}')
    print(f'done: {FLAGS.workdir}/probes/{result["name"]}')

  run_main(run)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
