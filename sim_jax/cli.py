"""What every entry point shares: user-facing errors become one line on stderr, not a traceback."""

import difflib
import sys
from typing import Callable, Sequence

import ml_collections
from absl import flags, logging

from sim_jax.config import load_config_file
from sim_jax.io import DiskFull


def define_config_and_workdir(config_help: str, workdir_help: str, *, require_config: bool = True,
                              require_workdir: bool = True) -> None:
  """The --config (a config file, with --config.<key>=<value> overrides) and --workdir flags every
  entry point takes."""
  from ml_collections import config_flags
  config_flags.DEFINE_config_file('config', None, config_help, lock_config=True)
  flags.DEFINE_string('workdir', None, workdir_help)
  required = [name for name, needed in (('config', require_config), ('workdir', require_workdir)) if needed]
  if required:
    flags.mark_flags_as_required(required)


def user_errors() -> tuple[type, ...]:
  """Exception types reported as one line: bad input (config, data, workdir), a diverged run and a
  full disk."""
  return (ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError,
          ArithmeticError, DiskFull)


def error_line(e: BaseException) -> str:
  """`error: <message>` for a user-facing error (a KeyError's message without its quotes)."""
  return f'error: {e.args[0] if isinstance(e, KeyError) and e.args else e}'


def run_main(main: Callable[[], object]) -> None:
  """Run `main()`; on a user-facing error print `error: <message>` and exit with status 2."""
  logging.set_verbosity(logging.WARNING)
  from sim_jax.checkpoints import quiet_abandoned_orbax_reads  # here: flag errors need no orbax
  quiet_abandoned_orbax_reads()
  try:
    main()
  except user_errors() as e:
    print(error_line(e), file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt as e:
    print(f'interrupted: {e}' if str(e) else
          'interrupted — rerun the same command to resume from the last checkpoint', file=sys.stderr)
    sys.exit(130)


def parse_flags(argv: Sequence[str]) -> list[str]:
  """The entry points' absl flags parser (`app.run(main, flags_parser=parse_flags)`).

  A --config file that cannot be loaded, a --config.<path> override that names no key of the config
  (or goes below a plain value), or a value of the wrong type exits with status 2 and one line naming
  the flag, not a traceback. An error raised by the config file's own code keeps its traceback.
  """
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:  # a value of the wrong type: absl's message names the flag
    override = next((a.split('=')[0] for a in argv[1:] if a.startswith('--config.')), None)
    if override and not any(a == '--config' or a.startswith('--config=') for a in argv[1:]):
      _exit_with(f'{override} overrides a config file: pass --config=configs/<name>.py too')
    _exit_with(str(e).strip().splitlines()[0])
  except (AttributeError, KeyError, TypeError):  # ml_collections could not apply an override
    message = _bad_override(argv)
    if message is None:  # every override path exists: the error is the config file's own
      raise
    _exit_with(message)
  if 'config' in flags.FLAGS and flags.FLAGS['config'].value is not None:
    try:
      flags.FLAGS['config'].value.keys()  # ml_collections defers a file's load error to first use
    except OSError as e:
      reason = str(e).strip().splitlines()[-1].strip()
      _exit_with(f'--config: cannot load the config file: {reason}; pass one of configs/*.py')
  return rest


def _bad_override(argv: Sequence[str]) -> str | None:
  """The message for the first --config.<path> override whose path is not in the config file's
  config, or None if every path is (or the file itself fails to load)."""
  args = list(argv[1:])
  config_arg = next((a.split('=', 1)[1] for a in args if a.startswith('--config=')), None)
  if config_arg is None and '--config' in args[:-1]:
    config_arg = args[args.index('--config') + 1]
  try:
    config = load_config_file(config_arg)
  except Exception:  # noqa: BLE001 (the file's own error is re-raised by the caller's flags parse)
    return None
  for arg in args:
    if not arg.startswith('--config.'):
      continue
    flag = arg[2:].split('=', 1)[0]
    node, path = config, ['config']
    for key in flag.split('.')[1:]:
      if not isinstance(node, ml_collections.ConfigDict):
        return f'--{flag}: {".".join(path)} is a value ({type(node).__name__}), not a section'
      if key not in node:
        guess = difflib.get_close_matches(key, list(node.keys()), n=1)
        elsewhere = [where for where, section in _sections(config, 'config') if key in section]
        if guess:
          hint = f'; did you mean "{guess[0]}"?'
        elif elsewhere:
          hint = f'; "{key}" is in {", ".join(elsewhere)}'
        else:
          hint = f'; its keys: {", ".join(sorted(node.keys()))}'
        return f'--{flag}: {".".join(path)} has no key "{key}"{hint}'
      node, path = node[key], path + [key]
  return None


def _sections(node, path: str):
  """(dotted path, section) of every section (ConfigDict) in `node`, itself first."""
  yield path, node
  for key in sorted(node.keys()):
    if isinstance(node[key], ml_collections.ConfigDict):
      yield from _sections(node[key], f'{path}.{key}')


def _exit_with(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)
