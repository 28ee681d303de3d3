"""Download helpers: `python -m sim_jax.data.download librispeech|deboer --root DIR`.

librispeech: train-clean-100 from OpenSLR (resource 12; md5 as published in its md5sum.txt) and the
  CPC train/test split and phone alignments (the Google Drive files of the original's
  download_audio_data.sh; the same files are mirrored by s3prl). Result: DIR/LibriSpeech/train-clean-100/
  and DIR/LibriSpeech100_labels_split/ — use config.data.root=DIR.
deboer: the Artificial Speech corpus (github.com/fdenoodt/Artificial-Speech-Dataset, CC BY-NC-SA 4.0).
  Result: DIR/de_boer/{reshuffledv2, split up data padded}/ — use config.data.root=DIR/de_boer.

Downloads go to DIR/downloads/<file>.part and resume from there (HTTP Range) when rerun; a finished
file is checked (size / checksum where published) and renamed into place; archives are extracted into
a temporary folder next to the target and moved into place, so an interrupted run leaves no
half-extracted corpus. Parts already present are skipped. --url NAME=URL swaps in a mirror.
"""

import argparse
import dataclasses
import hashlib
import http.client
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

from tqdm import tqdm

from sim_jax.data.errors import DataError

_CHUNK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Resource:
  """One file to download: `name` (for --url), URL, file name, and what is known to verify it."""
  name: str
  url: str
  filename: str
  size: int | None = None
  md5: str | None = None


def _drive(file_id: str) -> str:
  """Direct-download URL of a public Google Drive file (skips the large-file confirmation page)."""
  return f'https://drive.usercontent.google.com/download?id={file_id}&export=download&confirm=t'


RESOURCES = {
    'librispeech': (
        Resource('train-clean-100', 'https://www.openslr.org/resources/12/train-clean-100.tar.gz',
                 'train-clean-100.tar.gz', md5='2a93770f6d5c6c964bc36631d331a522'),
        Resource('train_split', _drive('1ubREoLQu47_ZDn39YWv1wvVPe2ZlIZAb'), 'train_split.txt'),
        Resource('test_split', _drive('1vSHmncPsRY7VWWAd_BtoWs9-fQ5cBrEB'), 'test_split.txt'),
        Resource('converted_aligned_phones', _drive('1bLuDkapGBERG_VYPS7fNZl5GXsQ9z3p2'),
                 'converted_aligned_phones.zip'),
    ),
    'deboer': (
        Resource('artificial-speech',
                 'https://github.com/fdenoodt/Artificial-Speech-Dataset/archive/HEAD.zip',
                 'Artificial-Speech-Dataset.zip'),
    ),
}
DEBOER_COUNTS = {('reshuffledv2', 'train'): 680, ('reshuffledv2', 'test'): 171,
                 ('split up data padded', 'train'): 2181, ('split up data padded', 'test'): 360}


def _open(url: str, offset: int):
  """(stream, total size or None, whether it starts at `offset`) for http(s) and file URLs."""
  parsed = urllib.parse.urlparse(url)
  if parsed.scheme == 'file':
    path = urllib.request.url2pathname(parsed.path)
    f = open(path, 'rb')
    f.seek(offset)
    return f, os.path.getsize(path), True
  headers = {'User-Agent': 'sim-jax-download'}
  if offset:
    headers['Range'] = f'bytes={offset}-'
  try:
    response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60)
  except urllib.error.HTTPError as e:
    if e.code == 416 and offset:  # nothing after offset: the part is already complete
      return None, offset, True
    raise DataError(f'{url}: HTTP {e.code} {e.reason}') from None
  except urllib.error.URLError as e:
    raise DataError(f'{url}: cannot connect ({e.reason})') from None
  resumed = response.status == 206
  length = response.headers.get('Content-Length')
  total = (int(length) + (offset if resumed else 0)) if length else None
  return response, total, resumed


def _md5(path: str) -> str:
  """Hex md5 of a file."""
  h = hashlib.md5()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(_CHUNK), b''):
      h.update(block)
  return h.hexdigest()


def _verify(resource: Resource, path: str) -> None:
  """Size, checksum and not-a-web-page checks of a finished download; DataError on a mismatch."""
  size = os.path.getsize(path)
  if resource.size is not None and size != resource.size:
    raise DataError(f'{resource.url}: downloaded {size} bytes, expected {resource.size}')
  with open(path, 'rb') as f:
    head = f.read(512).lstrip().lower()
  if head.startswith((b'<!doctype html', b'<html')):
    raise DataError(f'{resource.url}: got a web page instead of {resource.filename} (a quota or '
                    f'confirmation page?); download it by hand and put it at {path[:-len(".part")]}')
  if resource.md5 and _md5(path) != resource.md5:
    raise DataError(f'{resource.url}: md5 checksum mismatch for {resource.filename} '
                    '(corrupt download; it was removed — rerun to download it again)')


def fetch(resource: Resource, folder: str) -> str:
  """Downloads `resource` into `folder` (resuming a .part file), verifies it; returns its path."""
  os.makedirs(folder, exist_ok=True)
  dest = os.path.join(folder, resource.filename)
  if os.path.exists(dest):
    return dest
  part = dest + '.part'
  offset = os.path.getsize(part) if os.path.exists(part) else 0
  stream, total, resumed = _open(resource.url, offset)
  if not resumed:
    offset = 0
  if stream is not None:
    with stream, open(part, 'ab' if offset else 'wb') as out, \
        tqdm(total=total, initial=offset, unit='B', unit_scale=True, desc=resource.filename,
             disable=None) as bar:
      try:
        for block in iter(lambda: stream.read(_CHUNK), b''):
          out.write(block)
          bar.update(len(block))
      except (OSError, http.client.HTTPException) as e:
        raise DataError(f'{resource.url}: download interrupted after {out.tell()} bytes ({e!r}); '
                        'rerun the same command to resume') from None
      if total is not None and out.tell() < total:
        raise DataError(f'{resource.url}: download interrupted after {out.tell()} of {total} bytes; '
                        'rerun the same command to resume')
  try:
    _verify(resource, part)
  except DataError:
    os.remove(part)
    raise
  os.replace(part, dest)
  return dest


def _staging(parent: str) -> str:
  """A fresh temporary folder inside `parent` (same file system, so moves out of it are renames)."""
  os.makedirs(parent, exist_ok=True)
  return tempfile.mkdtemp(prefix='.extract-', dir=parent)


def _extract(archive: str, into: str) -> None:
  """Extracts a .tar.gz or .zip archive into folder `into`."""
  if archive.endswith(('.tar.gz', '.tgz', '.tar')):
    with tarfile.open(archive) as tar:
      tar.extractall(into, filter='data')
  else:
    with zipfile.ZipFile(archive) as z:
      z.extractall(into)


def _find(folder: str, name: str) -> str:
  """Path of the first file or folder called `name` under `folder` (DataError if none)."""
  for dirpath, dirnames, filenames in os.walk(folder):
    if name in dirnames or name in filenames:
      return os.path.join(dirpath, name)
  raise DataError(f'the downloaded archive holds no {name}')


def librispeech(root: str, resources=None, keep_archives: bool = False) -> None:
  """Fetches train-clean-100 and the CPC split and alignment files into `root` (skipping parts done)."""
  resources = {r.name: r for r in (resources or RESOURCES['librispeech'])}
  downloads = os.path.join(root, 'downloads')
  audio = os.path.join(root, 'LibriSpeech', 'train-clean-100')
  if not os.path.isdir(audio):
    archive = fetch(resources['train-clean-100'], downloads)
    staging = _staging(root)
    try:
      print(f'extracting {archive} ...')
      _extract(archive, staging)
      extracted = os.path.join(staging, 'LibriSpeech')
      os.makedirs(os.path.dirname(audio), exist_ok=True)
      os.replace(os.path.join(extracted, 'train-clean-100'), audio)
      for name in os.listdir(extracted):  # README.TXT, SPEAKERS.TXT, ... unless already there
        target = os.path.join(root, 'LibriSpeech', name)
        if not os.path.exists(target):
          os.replace(os.path.join(extracted, name), target)
    finally:
      shutil.rmtree(staging, ignore_errors=True)
    if not keep_archives:
      os.remove(archive)
  labels = os.path.join(root, 'LibriSpeech100_labels_split')
  os.makedirs(labels, exist_ok=True)
  for split in ('train', 'test'):
    target = os.path.join(labels, f'{split}_split.txt')
    if not os.path.exists(target):
      from sim_jax.data.librispeech import read_split
      path = fetch(resources[f'{split}_split'], downloads)
      read_split(path)  # a malformed file is an error here, not at training time
      os.replace(path, target)
  target = os.path.join(labels, 'converted_aligned_phones.txt')
  if not os.path.exists(target):
    archive = fetch(resources['converted_aligned_phones'], downloads)
    staging = _staging(labels)
    try:
      _extract(archive, staging)
      os.replace(_find(staging, 'converted_aligned_phones.txt'), target)
    finally:
      shutil.rmtree(staging, ignore_errors=True)
    if not keep_archives:
      os.remove(archive)
  print(f'LibriSpeech train-clean-100 is ready: use config.data.root={root}')


def deboer(root: str, resources=None, keep_archives: bool = False) -> None:
  """Fetches the de Boer corpus into `root`/de_boer (skipped if already there)."""
  resources = {r.name: r for r in (resources or RESOURCES['deboer'])}
  target = os.path.join(root, 'de_boer')
  if not os.path.isdir(os.path.join(target, 'reshuffledv2')):
    archive = fetch(resources['artificial-speech'], os.path.join(root, 'downloads'))
    staging = _staging(root)
    try:
      _extract(archive, staging)
      top = os.path.dirname(_find(staging, 'reshuffledv2'))
      os.makedirs(target, exist_ok=True)
      for name in os.listdir(top):
        if not os.path.exists(os.path.join(target, name)):
          os.replace(os.path.join(top, name), os.path.join(target, name))
    finally:
      shutil.rmtree(staging, ignore_errors=True)
    if not keep_archives:
      os.remove(archive)
  for (folder, split), expected in DEBOER_COUNTS.items():
    path = os.path.join(target, folder, split)
    found = len([f for f in os.listdir(path) if f.endswith('.wav')]) if os.path.isdir(path) else 0
    if found != expected:
      print(f'warning: {path} holds {found} .wav files, the published corpus has {expected}',
            file=sys.stderr)
  print(f'de Boer corpus is ready: use config.data.root={target}')


def main(argv=None) -> int:
  """Command line entry point; returns the exit status (errors: one line on stderr, status 2)."""
  parser = argparse.ArgumentParser(prog='python -m sim_jax.data.download', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('corpus', choices=sorted(RESOURCES))
  parser.add_argument('--root', required=True, help='folder to download into')
  parser.add_argument('--keep-archives', action='store_true', help='keep the downloaded archives')
  parser.add_argument('--url', action='append', default=[], metavar='NAME=URL',
                      help='download NAME (' + ', '.join(r.name for rs in RESOURCES.values() for r in rs)
                      + ') from a mirror; checksums still apply')
  args = parser.parse_args(argv)
  resources = list(RESOURCES[args.corpus])
  for item in args.url:
    name, sep, url = item.partition('=')
    known = [r.name for r in resources]
    if not sep or name not in known:
      parser.error(f'--url {item!r}: expected NAME=URL with NAME one of {", ".join(known)}')
    resources = [dataclasses.replace(r, url=url) if r.name == name else r for r in resources]
  try:
    (librispeech if args.corpus == 'librispeech' else deboer)(args.root, resources, args.keep_archives)
  except (DataError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
