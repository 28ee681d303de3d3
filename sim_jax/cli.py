"""What every entry point shares: user-facing errors become one line on stderr, not a traceback."""

import re
import sys
from typing import Callable, Sequence

from absl import flags, logging


def user_errors() -> tuple[type, ...]:
  """Exception types reported as one line: bad input (config, data, workdir) and a diverged run."""
  return (ValueError, KeyError, FileNotFoundError, NotADirectoryError, PermissionError,
          ArithmeticError)


def run_main(main: Callable[[], object]) -> None:
  """Run `main()`; on a user-facing error print `error: <message>` and exit with status 2."""
  logging.set_verbosity(logging.WARNING)
  try:
    main()
  except user_errors() as e:
    message = e.args[0] if isinstance(e, KeyError) and e.args else e
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:
    print('interrupted — rerun the same command to resume from the last checkpoint', file=sys.stderr)
    sys.exit(130)


def parse_flags(argv: Sequence[str]) -> list[str]:
  """The entry points' absl flags parser (`app.run(main, flags_parser=parse_flags)`).

  A --config file that cannot be loaded, a --config.<path> override naming no key of the config, or
  a value of the wrong type exits with status 2 and one line naming the flag, not a traceback.
  """
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:  # a value of the wrong type: absl's message names the flag
    _exit_with(str(e))
  except (AttributeError, KeyError) as e:  # ml_collections: an override path that is not in the config
    _exit_with(_unknown_key_message(argv, e))
  if 'config' in flags.FLAGS and flags.FLAGS['config'].value is not None:
    try:
      flags.FLAGS['config'].value.keys()  # ml_collections defers a file's load error to first use
    except OSError as e:
      reason = str(e).strip().splitlines()[-1].strip()
      _exit_with(f'--config: cannot load the config file: {reason}; pass one of configs/*.py')
  return rest


def _unknown_key_message(argv: Sequence[str], error: Exception) -> str:
  text = str(error.args[0]) if error.args else str(error)
  text = text.replace("\\'", "'").replace('\\n', '\n')  # a KeyError's repr inside an AttributeError
  found = re.search(r"'([^'\n]+)'", text)
  key = found.group(1) if found else text
  guess = re.search(r'Did you mean "([^"]+)"', text)
  overrides = [a[2:].split('=')[0] for a in argv[1:] if a.startswith('--config.')]
  flag = next((o for o in overrides if key in o.split('.')), 'config')
  path = flag.split('.')
  parent = '.'.join(path[:path.index(key)]) if key in path else 'config'
  hint = f'; did you mean "{guess.group(1)}"?' if guess else '; the config file lists every key'
  return f'--{flag}: {parent} has no key "{key}"{hint}'


def _exit_with(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)
