"""The data package's error type and the bad-file policy (`config.data.on_bad_file`)."""

import logging

logger = logging.getLogger('sim_jax.data')

BAD_FILE_POLICIES = ('error', 'skip')


class DataError(ValueError):
  """Bad or missing input data; the message is one line naming the file (or folder) and the problem."""


class BadFiles:
  """Applies `config.data.on_bad_file` to broken inputs: raise at once ('error') or collect ('skip').

  `what` names the collection in the summary, e.g. 'de Boer words (train)'; `flag` the setting that
  chose the policy, in the messages (embed.py's is --on_bad_file).
  """

  def __init__(self, policy: str, what: str, flag: str = 'config.data.on_bad_file'):
    """`policy`: 'error' | 'skip'."""
    if policy not in BAD_FILE_POLICIES:
      raise ValueError(f"{flag}={policy!r} is not one of {', '.join(BAD_FILE_POLICIES)}")
    self.policy = policy
    self.what = what
    self.flag = flag
    self.skipped: list[tuple[str, str]] = []  # (file, problem)

  def report(self, path: str, problem: str) -> None:
    """A broken file: raises DataError under 'error', records it under 'skip'."""
    if self.policy == 'error':
      raise DataError(f'{path}: {problem} (set {self.flag}=skip to skip such files)')
    self.skipped.append((path, problem))

  def summary(self, total: int) -> None:
    """Logs one warning line if anything was skipped: the count and the first file and problem."""
    if self.skipped:
      path, problem = self.skipped[0]
      logger.warning('%s: skipped %d bad file(s) of %d (first: %s: %s)', self.what, len(self.skipped),
                     total, path, problem)
