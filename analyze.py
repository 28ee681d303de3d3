"""Interpretability analyses of a trained encoder and one HTML report to read and listen to.

  python analyze.py --config=configs/sim_deboer.py --workdir=workdirs/sim_deboer
  python analyze.py --workdirs workdirs/sim_deboer workdirs/gim_deboer   # side by side
  python analyze.py --workdirs=workdirs/sim_deboer,workdirs/gim_deboer --reuse --out=compare/

Writes <workdir>/report/{results.json, figures/, index.html} (see sim_jax/analysis/run.py): probe
weights, t-SNE, 3-D scatter, per-dimension histograms and statistics, total correlation, plus the
training curves, probe results and decoder outputs already in the workdir. Open index.html in a
browser (no server needed). Compare mode analyses every workdir, then writes a side-by-side page to
--out (default <first workdir>/report/compare/).

The encoder comes from the workdir; --config gives the analysis settings (config.analysis) and the
data location; without --config each workdir's own config.json is used.
"""

import os

from absl import app, flags
from ml_collections import config_flags

from sim_jax.cli import define_config_and_workdir, parse_flags, run_main

FLAGS = flags.FLAGS
define_config_and_workdir('Experiment config file (configs/*.py); default: the config.json of each workdir.',
                          'Training workdir to analyse (train.py --workdir).', require_config=False,
                          require_workdir=False)
flags.DEFINE_list('workdirs', None, 'Compare mode: workdirs to analyse and put side by side '
                  '(comma-separated, or space-separated after --workdirs).')
flags.DEFINE_string('out', None, 'Compare mode: output folder (default <first workdir>/report/compare).')
flags.DEFINE_bool('reuse', False, 'Reuse a workdir\'s report/results.json instead of recomputing the '
                  'latent and entanglement analyses (the report is rebuilt).')


def _workdirs(argv) -> list[str]:
  extra = argv[1:]
  if FLAGS.workdirs:
    return list(FLAGS.workdirs) + extra
  if extra:
    raise ValueError(f'unexpected arguments {extra}; to compare workdirs use --workdirs A B')
  if not FLAGS.workdir:
    raise ValueError('give --workdir=<training workdir>, or --workdirs A B to compare')
  return [FLAGS.workdir]


def main(argv):
  def run():
    from sim_jax.analysis.run import analyze, compare
    workdirs = _workdirs(argv)
    config_file = config_flags.get_config_filename(FLAGS['config']) if FLAGS.config else None
    results = [analyze(FLAGS.config, w, config_file, FLAGS.reuse) for w in workdirs]
    for w in workdirs:
      print(f'report: {os.path.join(w, "report", "index.html")}')
    if len(workdirs) > 1:
      out = FLAGS.out or os.path.join(workdirs[0], 'report', 'compare')
      print(f'comparison: {compare(workdirs, results, out)}')

  run_main(run)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
