"""Small file helpers shared by every stage: atomic writes, JSON / JSONL, figures, the metric log."""

import errno
import hashlib
import json
import os
import secrets
from io import BytesIO
from typing import Any, Callable

import numpy as np


def temp_beside(path: str, folder: bool = False) -> str:
  """Create and return a new, uniquely named hidden file (or folder) beside `path`, on the same
  filesystem so it can be renamed into place. Unlike mkstemp / mkdtemp (0o600 / 0o700) it gets the
  mode any file or folder gets here (the umask's), so results stay readable to colleagues."""
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  while True:
    tmp = os.path.join(parent, f'.{os.path.basename(path)}.{secrets.token_hex(6)}.tmp')
    try:
      if folder:
        os.mkdir(tmp)
      else:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
      return tmp
    except FileExistsError:
      continue


_FULL_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
_FULL_MESSAGES = ('No space left on device', 'File too large', 'Disk quota exceeded')


class DiskFull(OSError):
  """A file the disk (or a file-size limit) refused; the message names it and the space needed."""

  def __init__(self, path: str, needed: int | None, reason: str):
    need = f'at least {needed / 1e6:.1f} MB' if needed else 'some space'
    super().__init__(f'cannot write {path}: {reason}; free {need} on {os.path.dirname(path) or "."} '
                     f'(or raise the file-size limit) and rerun — nothing half-written was left')


def disk_full_reason(e: BaseException) -> str | None:
  """'No space left on device' (or the like) if `e` or an error it wraps is one, else None."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in _FULL_ERRNOS:
      return os.strerror(e.errno)
    for message in _FULL_MESSAGES:  # tensorstore (orbax) reports the OS error as text
      if message in str(e):
        return message
    e = e.__cause__ or e.__context__
  return None


def atomic_write(path: str, write: Callable[[str], None], size: int | None = None) -> None:
  """Create `path` atomically: `write(tmp)` writes a temp file beside it (`temp_beside`), which is
  then renamed into place; a failed or interrupted write leaves no file. A full disk raises DiskFull
  (`size`: the bytes being written, for its message)."""
  tmp = temp_beside(path)
  try:
    write(tmp)
    os.replace(tmp, path)
  except Exception as e:  # noqa: BLE001 (writers wrap the OS error: soundfile, matplotlib)
    reason = disk_full_reason(e)
    if reason is None:
      raise
    raise DiskFull(path, size, reason) from None
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def file_digest(path: str) -> str:
  """sha256 (hex) of a file's bytes, read in 1 MB blocks."""
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def _to_builtin(value: Any):
  if isinstance(value, dict):
    return {str(k): _to_builtin(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_to_builtin(v) for v in value]
  if isinstance(value, np.ndarray) or hasattr(value, '__array__'):
    arr = np.asarray(value)
    return arr.item() if arr.ndim == 0 else arr.tolist()
  if isinstance(value, np.generic):
    return value.item()
  return value


def write_json(path: str, data: Any) -> None:
  """Write JSON atomically (numpy and jax arrays become lists / numbers)."""
  write_text(path, json.dumps(_to_builtin(data), indent=2, sort_keys=False) + '\n')


def write_bytes(path: str, data: bytes) -> None:
  """Write a file atomically."""
  def write(tmp):
    with open(tmp, 'wb') as f:
      f.write(data)
  atomic_write(path, write, len(data))


def write_text(path: str, text: str) -> None:
  """Write a UTF-8 text file atomically."""
  write_bytes(path, text.encode('utf-8'))


def read_json(path: str) -> Any:
  """Read a JSON file."""
  with open(path) as f:
    return json.load(f)


def save_npz(path: str, **arrays) -> None:
  """np.savez atomically."""
  def write(tmp):
    with open(tmp, 'wb') as f:  # a file object: given a name, np.savez would append '.npz'
      np.savez(f, **arrays)
  atomic_write(path, write, sum(np.asarray(a).nbytes for a in arrays.values()))


def save_figure(fig, path: str, dpi: int = 110) -> None:
  """Save a matplotlib figure atomically and close it."""
  import matplotlib.pyplot as plt
  buffer = BytesIO()  # rendered first, so a full disk's message can give the size
  try:
    fig.savefig(buffer, dpi=dpi, bbox_inches='tight', format=os.path.splitext(path)[1][1:] or 'png')
  finally:
    plt.close(fig)
  write_bytes(path, buffer.getvalue())


def read_jsonl(path: str) -> list[dict]:
  """All records of a JSON-lines file (a torn last line from a killed run is ignored)."""
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        break
  return records


class MetricLog:
  """`metrics.jsonl` in a workdir, plus wandb when `config.wandb.mode` is online/offline.

  On resume, `truncate(step)` drops records logged after the restored checkpoint, so a killed and
  resumed run has the same log as an uninterrupted one.
  """

  def __init__(self, path: str, wandb_config=None, run_config: dict | None = None,
               wandb_dir: str | None = None):
    self.path = path
    self._wandb = None
    if wandb_config is not None and wandb_config.mode != 'disabled':
      import wandb  # optional; imported only when asked for
      self._wandb = wandb.init(project=wandb_config.project, entity=wandb_config.entity or None,
                               name=wandb_config.name or None, mode=wandb_config.mode,
                               config=run_config, dir=wandb_dir, resume='allow')

  def truncate(self, step: int) -> None:
    """Keep only records with record['step'] <= step."""
    kept = [r for r in read_jsonl(self.path) if r.get('step', 0) <= step]
    write_text(self.path, ''.join(json.dumps(r) + '\n' for r in kept))

  def write(self, step: int, **values) -> None:
    """Append one record {'step': step, **values}."""
    record = {'step': int(step), **_to_builtin(values)}
    line = json.dumps(record) + '\n'
    os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
    try:
      with open(self.path, 'a') as f:
        f.write(line)
        f.flush()
    except OSError as e:  # a torn last line is dropped by read_jsonl and by the resume's truncate
      reason = disk_full_reason(e)
      if reason is None:
        raise
      raise DiskFull(self.path, len(line), reason) from None
    if self._wandb is not None:
      self._wandb.log(_flatten(record), step=int(step))

  def close(self) -> None:
    """Finish the wandb run, if any."""
    if self._wandb is not None:
      self._wandb.finish()


def _flatten(record: dict) -> dict:
  flat = {}
  for key, value in record.items():
    if isinstance(value, list):
      for i, v in enumerate(value):
        flat[f'{key}/{i}'] = v
    else:
      flat[key] = value
  return flat
