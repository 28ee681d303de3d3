"""Download helpers against a local HTTP server and file:// URLs (never the network)."""

import hashlib
import http.server
import io
import os
import tarfile
import threading
import zipfile

import numpy as np
import pytest
import soundfile as sf

from sim_jax.data import DataError, make_source
from sim_jax.data import download
from sim_jax.data.download import Resource, fetch
from tests.data.helpers import config

PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
  """Serves server.files {path: bytes}; honours 'Range: bytes=N-' unless server.ignore_range;
  cuts the first response after server.cut_after bytes if set."""

  def do_GET(self):
    self.server.requests.append((self.path, self.headers.get('Range')))
    data = self.server.files.get(self.path)
    if data is None:
      self.send_error(404)
      return
    start = 0
    rng = self.headers.get('Range')
    if rng and not self.server.ignore_range:
      start = int(rng.split('=')[1].rstrip('-'))
      if start >= len(data):
        self.send_error(416)
        return
      self.send_response(206)
    else:
      self.send_response(200)
    body = data[start:]
    self.send_header('Content-Length', str(len(body)))
    self.send_header('Content-Type', 'text/html' if self.path.endswith('html') else 'application/octet-stream')
    self.end_headers()
    if self.server.cut_after:
      self.wfile.write(body[:self.server.cut_after])
      self.server.cut_after = 0
      self.close_connection = True
      return
    self.wfile.write(body)

  def log_message(self, *args):
    pass


@pytest.fixture
def server():
  httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
  httpd.files, httpd.requests, httpd.ignore_range, httpd.cut_after = {}, [], False, 0
  thread = threading.Thread(target=httpd.serve_forever, kwargs={'poll_interval': 0.05}, daemon=True)
  thread.start()
  httpd.url = f'http://127.0.0.1:{httpd.server_address[1]}'
  yield httpd
  httpd.shutdown()
  httpd.server_close()


def test_fetch_resumes_a_part_file_with_http_range(server, tmp_path):
  server.files['/data.bin'] = PAYLOAD
  (tmp_path / 'data.bin.part').write_bytes(PAYLOAD[:1000])
  path = fetch(Resource('data', server.url + '/data.bin', 'data.bin', size=len(PAYLOAD), md5=MD5), str(tmp_path))
  assert open(path, 'rb').read() == PAYLOAD and not os.path.exists(path + '.part')
  assert server.requests == [('/data.bin', 'bytes=1000-')]
  fetch(Resource('data', server.url + '/data.bin', 'data.bin', md5=MD5), str(tmp_path))
  assert len(server.requests) == 1  # already there: not downloaded again


def test_fetch_restarts_when_the_server_ignores_range(server, tmp_path):
  server.files['/data.bin'], server.ignore_range = PAYLOAD, True
  (tmp_path / 'data.bin.part').write_bytes(b'stale bytes from another file')
  path = fetch(Resource('data', server.url + '/data.bin', 'data.bin', md5=MD5), str(tmp_path))
  assert open(path, 'rb').read() == PAYLOAD


def test_interrupted_download_resumes_on_rerun(server, tmp_path):
  server.files['/data.bin'], server.cut_after = PAYLOAD, 70_000
  resource = Resource('data', server.url + '/data.bin', 'data.bin', size=len(PAYLOAD), md5=MD5)
  with pytest.raises(DataError, match='interrupted after 70000 of 300000 bytes.*rerun'):
    fetch(resource, str(tmp_path))
  assert (tmp_path / 'data.bin.part').stat().st_size == 70_000 and not (tmp_path / 'data.bin').exists()
  path = fetch(resource, str(tmp_path))
  assert open(path, 'rb').read() == PAYLOAD
  assert server.requests[-1] == ('/data.bin', 'bytes=70000-')


def test_checksum_size_and_web_page_errors(server, tmp_path):
  server.files['/data.bin'] = PAYLOAD
  server.files['/page.html'] = b'<!DOCTYPE html><html>quota exceeded</html>'
  with pytest.raises(DataError, match='md5 checksum mismatch'):
    fetch(Resource('data', server.url + '/data.bin', 'data.bin', md5='0' * 32), str(tmp_path))
  with pytest.raises(DataError, match='downloaded 300000 bytes, expected 5'):
    fetch(Resource('data', server.url + '/data.bin', 'data.bin', size=5), str(tmp_path))
  with pytest.raises(DataError, match='got a web page instead of split.txt'):
    fetch(Resource('split', server.url + '/page.html', 'split.txt'), str(tmp_path))
  with pytest.raises(DataError, match='HTTP 404'):
    fetch(Resource('none', server.url + '/missing', 'missing.bin'), str(tmp_path))
  assert os.listdir(tmp_path) == []  # nothing half-written left behind


def test_file_urls_resume_too(tmp_path):
  source = tmp_path / 'source.bin'
  source.write_bytes(PAYLOAD)
  out = tmp_path / 'out'
  out.mkdir()
  (out / 'copy.bin.part').write_bytes(PAYLOAD[:4096])
  path = fetch(Resource('copy', source.as_uri(), 'copy.bin', md5=MD5), str(out))
  assert open(path, 'rb').read() == PAYLOAD


def _flac_bytes(samples: int, seed: int) -> bytes:
  buffer = io.BytesIO()
  audio = np.random.default_rng(seed).uniform(-0.3, 0.3, samples).astype(np.float32)
  sf.write(buffer, audio, 16000, format='FLAC', subtype='PCM_16')
  return buffer.getvalue()


def _tar_gz(members: dict) -> bytes:
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
    for name, data in members.items():
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return buffer.getvalue()


def _zip(members: dict) -> bytes:
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, 'w') as z:
    for name, data in members.items():
      z.writestr(name, data)
  return buffer.getvalue()


def _serve_files(folder, files: dict) -> dict:
  """Writes files into folder; returns {name: Resource with a file:// URL and md5}."""
  folder.mkdir(exist_ok=True)
  out = {}
  for name, (filename, data) in files.items():
    (folder / filename).write_bytes(data)
    out[name] = Resource(name, (folder / filename).as_uri(), filename, md5=hashlib.md5(data).hexdigest())
  return out


def test_librispeech_command_end_to_end(tmp_path, monkeypatch, capsys):
  flac = _flac_bytes(30000, 1)
  resources = _serve_files(tmp_path / 'mirror', {
      'train-clean-100': ('train-clean-100.tar.gz', _tar_gz({
          'LibriSpeech/README.TXT': b'readme', 'LibriSpeech/train-clean-100/19/198/19-198-0001.flac': flac,
          'LibriSpeech/train-clean-100/19/198/19-198-0002.flac': _flac_bytes(25000, 2)})),
      'train_split': ('train_split.txt', b'19-198-0001\n'),
      'test_split': ('test_split.txt', b'19-198-0002\n'),
      'converted_aligned_phones': ('converted_aligned_phones.zip', _zip({
          'converted_aligned_phones.txt': '19-198-0001 ' + ' '.join(['3'] * 185) + '\n'})),
  })
  monkeypatch.setitem(download.RESOURCES, 'librispeech', tuple(resources.values()))
  root = tmp_path / 'data'
  assert download.main(['librispeech', '--root', str(root)]) == 0
  assert 'use config.data.root=' in capsys.readouterr().out
  assert (root / 'LibriSpeech' / 'README.TXT').exists()
  assert not [f for f in os.listdir(root) if f.startswith('.extract')]
  assert os.listdir(root / 'downloads') == []  # archives removed, no .part left
  source = make_source(config('librispeech', str(root), tmp_path / 'cache'), 'train', 'utterances')
  assert source.names == ['19-198-0001'] and len(source.frame_labels(0)) == 185
  assert download.main(['librispeech', '--root', str(root)]) == 0  # everything there: nothing to do


def test_deboer_command_with_a_mirror_url(tmp_path, capsys):
  wav = io.BytesIO()
  sf.write(wav, np.zeros(44100, np.float32), 44100, format='WAV', subtype='PCM_16')
  archive = tmp_path / 'mirror.zip'
  archive.write_bytes(_zip({'Artificial-Speech-Dataset-main/reshuffledv2/train/bababa_1.wav': wav.getvalue(),
                            'Artificial-Speech-Dataset-main/README.md': b'corpus'}))
  root = tmp_path / 'data'
  status = download.main(['deboer', '--root', str(root), '--url', f'artificial-speech={archive.as_uri()}'])
  assert status == 0
  assert (root / 'de_boer' / 'reshuffledv2' / 'train' / 'bababa_1.wav').exists()
  err = capsys.readouterr().err
  assert 'holds 1 .wav files, the published corpus has 680' in err
  source = make_source(config('deboer', str(root / 'de_boer'), tmp_path / 'cache'), 'train', 'words')
  assert source.names == ['bababa_1']


def test_command_line_errors(tmp_path, capsys):
  with pytest.raises(SystemExit):
    download.main(['deboer', '--root', str(tmp_path), '--url', 'nonsense'])
  assert 'expected NAME=URL' in capsys.readouterr().err
  missing = (tmp_path / 'absent.zip').as_uri()
  assert download.main(['deboer', '--root', str(tmp_path), '--url', f'artificial-speech={missing}']) == 2
  assert capsys.readouterr().err.startswith('error: ')
