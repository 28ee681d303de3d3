"""Stopping a long run cleanly: Ctrl-C or a scheduler's SIGTERM ends it at the next step, saved."""

import signal
import sys
import threading


class Interrupted(KeyboardInterrupt):
  """A run stopped on request after saving a checkpoint; the message says where."""


class StopRequest:
  """`with StopRequest() as stop:` turns the first SIGINT (Ctrl-C) or SIGTERM (a scheduler's
  preemption) into `stop.requested = True`, for a loop to see at its next step and end with
  `save_and_stop`; a second signal interrupts at once. Outside the main thread it does nothing."""

  def __init__(self):
    self.requested = False
    self._previous = {}

  def __enter__(self) -> 'StopRequest':
    if threading.current_thread() is threading.main_thread():
      for sig in (signal.SIGINT, signal.SIGTERM):
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def _handle(self, signum, frame) -> None:
    del frame
    if self.requested:
      raise KeyboardInterrupt
    self.requested = True
    print(f'\n{signal.Signals(signum).name}: stopping at the next step (after the validation, if one '
          'is running) and saving a checkpoint; again to quit at once', file=sys.stderr, flush=True)

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)


def save_and_stop(checkpoints, state) -> None:
  """Save `state` into `checkpoints` (a `sim_jax.checkpoints.Checkpoints`; unless its step is saved
  already) and raise Interrupted."""
  step = int(state.step)
  if checkpoints.latest_step() != step:
    checkpoints.save(state)
  raise Interrupted(f'stopped at step {step}, checkpoint saved — rerun the same command to resume')
