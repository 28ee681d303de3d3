"""What every entry point shares: user-facing errors become one line on stderr, not a traceback."""

import sys
from typing import Callable

from absl import logging


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
