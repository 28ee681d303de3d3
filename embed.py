"""Features of a trained encoder for a folder of recordings: one .npz per file, index.csv, embed.json.

  python embed.py --workdir=workdirs/sim_deboer --input=my_recordings --output=features
  python embed.py --workdir=W --input=my_recordings/labels.csv --output=OUT --modules=module_2,context
  python embed.py --workdir=W --input=DIR --output=OUT --features=sample --seed=1 --on_bad_file=skip

--input is a folder (every audio file under it, or its labels.csv) or a CSV manifest (a `path` column),
read as the folder corpus reads them: any format libsndfile decodes, mixed to mono, resampled to 16 kHz.
Writes OUT/<path>.npz (per module '<module>': its valid frames (T_m, C) float32, '<module>_frames',
and 'samples'), OUT/index.csv and OUT/embed.json. A rerun skips the files already written. The same
features from Python: sim_jax.load_encoder(workdir).encode(waves) (README "Use a trained encoder").
"""

from absl import app, flags

from sim_jax.cli import parse_flags, run_main

FLAGS = flags.FLAGS
flags.DEFINE_string('workdir', None, 'Training workdir (train.py --workdir, or python -m sim_jax.reference import).')
flags.DEFINE_string('input', None, 'A folder of audio files, or a CSV manifest of them.')
flags.DEFINE_string('output', None, 'Folder for the .npz files, index.csv and embed.json.')
flags.DEFINE_string('checkpoint', 'latest', "'latest', 'best' or a step number.")
flags.DEFINE_string('modules', 'all', "'all' or a comma-separated list: module_<i>, context.")
flags.DEFINE_enum('features', 'mean', ['mean', 'sample'], "'mean', or 'sample' (SIM: each module's draw).")
flags.DEFINE_integer('seed', 0, "PRNG seed of --features=sample (each file's draws follow from its path).")
flags.DEFINE_string('resampler', '', "'sinc' or 'soxr_hq'; empty: the training run's config.data.resampler.")
flags.DEFINE_enum('on_bad_file', 'error', ['error', 'skip'], "A broken or too short file: stop, or skip it "
                  'and count it.')
flags.DEFINE_float('batch_seconds', 32.0, 'Seconds of audio per batch (memory: ~30 MB a second at 512 channels).')
flags.DEFINE_integer('max_buckets', 8, 'Padded lengths, so compilations, at most.')
flags.mark_flags_as_required(['workdir', 'input', 'output'])


def main(argv):
  del argv

  def run():
    from sim_jax.embed_folder import embed_folder
    result = embed_folder(FLAGS.workdir, FLAGS.input, FLAGS.output, checkpoint=FLAGS.checkpoint,
                          modules=FLAGS.modules, features=FLAGS.features, seed=FLAGS.seed,
                          resampler=FLAGS.resampler, on_bad_file=FLAGS.on_bad_file,
                          batch_seconds=FLAGS.batch_seconds, max_buckets=FLAGS.max_buckets)
    rate = f', {result["real_time_factor"]:.1f}× real time' if result['real_time_factor'] else ''
    print(f'embedded {result["written"]} files ({result["audio_seconds"]:.1f} s of audio in {result["seconds"]:.1f} s'
          f'{rate}, {result["compilations"]} compilations); {result["kept"]} written before, '
          f'{len(result["bad"])} bad; done: {FLAGS.output}')

  run_main(run)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
