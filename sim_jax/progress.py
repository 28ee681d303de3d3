"""Progress bars that share the terminal with logs: tqdm bars with log records and warnings above them."""

import contextlib
import logging
import sys
import warnings


class _AboveBars(logging.Handler):
  """Passes records to `inner` with the progress bars cleared first and redrawn after."""

  def __init__(self, inner: logging.Handler):
    super().__init__(inner.level)
    self.inner = inner

  def emit(self, record: logging.LogRecord) -> None:
    from tqdm import tqdm
    with tqdm.external_write_mode(file=sys.stderr):
      self.inner.handle(record)


@contextlib.contextmanager
def progress_bar(**kwargs):
  """`with progress_bar(total=…, desc=…) as bar:` a tqdm bar (kwargs as tqdm's) whose line is ended
  however the block ends, so an error printed after it starts on a fresh line; log records and
  warnings emitted while it is drawn are written above it, on lines of their own."""
  from tqdm import tqdm
  root = logging.getLogger()
  handlers = root.handlers[:]
  show = warnings.showwarning

  def show_above(*args, **kw):
    with tqdm.external_write_mode(file=sys.stderr):
      show(*args, **kw)
  root.handlers[:] = [_AboveBars(h) for h in handlers or [logging.lastResort]]
  warnings.showwarning = show_above
  try:
    with tqdm(**kwargs) as bar:
      yield bar
  finally:
    root.handlers[:] = handlers
    warnings.showwarning = show
