"""The paper's SIM-vs-GIM experiment on de Boer, one command: train, probe, decode, analyse, tabulate.

  python reproduce.py --config=configs/reproduce.py --scale=smoke --config.data_root=data/de_boer
  python reproduce.py --config=configs/reproduce.py --scale=cpu --betas=0,0.001,0.01,0.1

Writes <workdir>/<model>/ (each β's training workdir, probes, decoder, report) and <workdir>/table.md,
table.json, tradeoff.png (see sim_jax/reproduce.py). Rerunning the same command resumes: finished stages
are skipped, training and the decoder continue from their last checkpoint.
"""

import os

from absl import app, flags

from sim_jax.cli import define_config_and_workdir, parse_flags, run_main

FLAGS = flags.FLAGS
define_config_and_workdir('The reproduce config (configs/reproduce.py).',
                          'Output folder; default workdirs/reproduce_<scale>.', require_workdir=False)
flags.DEFINE_enum('scale', 'cpu', ['smoke', 'cpu', 'paper'], 'Scale (config.scales.<scale>).')
flags.DEFINE_list('betas', ['0', '0.01'], 'KL weights β, one model each: 0 = GIM, >0 = SIM '
                  '(the paper: 0 and 0.01).')


def main(argv):
  del argv

  def run():
    from sim_jax.reproduce import reproduce
    try:
      betas = [float(b) for b in FLAGS.betas]
    except ValueError:
      raise ValueError(f'--betas={",".join(FLAGS.betas)}: give numbers, e.g. --betas=0,0.01') from None
    workdir = FLAGS.workdir or os.path.join('workdirs', f'reproduce_{FLAGS.scale}')
    reproduce(FLAGS.config, FLAGS.scale, betas, workdir)
    print(f'done: {workdir}/table.md, table.json, tradeoff.png')

  run_main(run)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
