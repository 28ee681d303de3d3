"""Train a decoder from one conv module of a trained encoder back to audio, and write what it hears:
reconstructions, N(0, I) samples (SIM), latent traversals and the interpolation contribution score.

  python decode.py --config=configs/sim_deboer.py --workdir=workdirs/sim_deboer
  python decode.py --config=configs/sim_deboer.py --workdir=workdirs/sim_deboer \\
      --config.decoder.module=2 --config.decoder.interpolate_from=bibibi_1 --config.decoder.interpolate_to=bagaga_1

The encoder (and its config) come from the training workdir; --config gives the decoder settings
(config.decoder) and the data location. Outputs go to <workdir>/decoder/module_<i>/ (see
sim_jax/decoder/run.py); rerunning the command resumes training from the last decoder checkpoint.
"""

from absl import app, flags

from sim_jax.cli import define_config_and_workdir, parse_flags, run_main

FLAGS = flags.FLAGS
define_config_and_workdir('Experiment config file (configs/*.py).',
                          'Training workdir holding the encoder (train.py --workdir).')


def main(argv):
  del argv

  def run():
    from sim_jax.decoder.run import run as run_decoder
    results = run_decoder(FLAGS.config, FLAGS.workdir)
    rec = results['reconstruction']
    print(f"done: {FLAGS.workdir}/decoder/module_{results['module']}  test MSE {rec['test_mse']:.3g} "
          f"(decoding the mean latent: {rec['mean_latent_mse']:.3g}), SNR {rec['snr_db']:.1f} dB")

  run_main(run)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
