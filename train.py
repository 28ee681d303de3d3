"""Self-supervised greedy training of a SIM / GIM / CPC encoder.

  python train.py --config=configs/sim_librispeech.py --workdir=workdirs/sim_librispeech
  python train.py --config=configs/demo.py --workdir=workdirs/demo --config.train.num_epochs=3

Rerunning the same command resumes from the workdir's latest checkpoint.
"""

import os

from absl import app, flags
from ml_collections import config_flags

from sim_jax.cli import define_config_and_workdir, parse_flags, run_main

FLAGS = flags.FLAGS
define_config_and_workdir('Experiment config file (configs/*.py).',
                          'Output folder (checkpoints, metrics, figures); default workdirs/<config name>.',
                          require_workdir=False)


def main(argv):
  del argv
  config = FLAGS.config
  workdir = FLAGS.workdir or os.path.join(
      'workdirs', os.path.splitext(os.path.basename(config_flags.get_config_filename(FLAGS['config'])))[0])

  def run():
    if config.train.distributed:
      from sim_jax.parallel import initialize_distributed
      initialize_distributed()
    from sim_jax.train.loop import train_and_evaluate
    train_and_evaluate(config, workdir)
    print(f'done: {workdir}')

  run_main(run)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
