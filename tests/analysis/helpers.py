"""Test helpers: quick configs, fake probe / decoder outputs and a headless Chromium check of a
report's media."""

import json
import os
import shutil
import subprocess

import numpy as np
import soundfile as sf

from sim_jax import io
from sim_jax.config import load_config_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def narrow_config(name: str, data_root: str = '', **overrides):
  """configs/<name>.py with a narrow model (32 channels, GRU 16) and quick analysis settings."""
  settings = {'model.channels': 32, 'model.gru_hidden': 16, 'analysis.tsne_max_iter': 250,
              'analysis.kde_repeats': 1, 'analysis.kde_max_vectors': 300,
              'analysis.kde_settings': ((10, 5, 10), (512, 5, -1), (512, -1, -1)),
              'analysis.histogram_dims': 8}
  if data_root:
    settings['data.root'] = data_root
  settings.update(overrides)
  return load_config_file(os.path.join(REPO, 'configs', f'{name}.py'), settings)


def _png(path: str) -> None:
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(2, 1.5))
  ax.plot([0, 1], [0, 1])
  io.save_figure(fig, path)


def fake_probe(workdir: str, name: str, class_names: list[str], dim: int, seed: int = 0) -> str:
  """probes/<name>/ with results.json, a PNG and weights.npz ('kernel' (dim, classes))."""
  folder = os.path.join(workdir, 'probes', name)
  os.makedirs(folder, exist_ok=True)
  kernel = np.random.default_rng(seed).standard_normal((dim, len(class_names))) ** 3
  io.save_npz(os.path.join(folder, 'weights.npz'), kernel=kernel.astype(np.float32),
              class_names=np.array(class_names))
  io.write_json(os.path.join(folder, 'results.json'), {'task': name.split('_')[0], 'test_accuracy': 0.5,
                                                       'per_seed': {'accuracy': [0.5]}})
  _png(os.path.join(folder, 'confusion.png'))
  return folder


def fake_decoder(workdir: str, module: int) -> str:
  """decoder/module_<i>/ with results.json, two WAVs, a PNG and an outputs.json manifest."""
  folder = os.path.join(workdir, 'decoder', f'module_{module}')
  os.makedirs(os.path.join(folder, 'reconstructions'), exist_ok=True)
  tone = 0.3 * np.sin(2 * np.pi * 220 * np.arange(8000) / 16000).astype(np.float32)
  files = []
  for kind in ('original', 'decoded'):
    rel = f'reconstructions/item a_{kind}.wav'  # a space: links must be URL-quoted
    sf.write(os.path.join(folder, rel), tone, 16000, subtype='PCM_16')
    files.append({'path': rel, 'type': 'wav', 'label': f'item a {kind}'})
  _png(os.path.join(folder, 'reconstructions', 'item a.png'))
  files.append({'path': 'reconstructions/item a.png', 'type': 'png', 'label': 'item a: comparison'})
  io.write_json(os.path.join(folder, 'outputs.json'), {'module': module, 'sections': [
      {'name': 'reconstructions', 'title': 'Reconstructions', 'note': '', 'files': files}]})
  io.write_json(os.path.join(folder, 'results.json'), {'module': module,
                                                       'reconstruction': {'test_mse': 0.01}})
  return folder


_CHECK_SCRIPT = """
<script>
window.addEventListener('load', async () => {
  const bad = [];
  const images = [...document.querySelectorAll('img')];
  await Promise.all(images.map(img => new Promise(done => {
    const probe = new Image();
    const fail = () => { bad.push('img ' + img.getAttribute('src')); done(); };
    probe.onload = () => probe.naturalWidth > 0 ? done() : fail();
    probe.onerror = fail;
    probe.src = img.src;
  })));
  const audio = [...document.querySelectorAll('audio')];
  await Promise.all(audio.map(a => new Promise(done => {
    const fail = () => { bad.push('audio ' + a.getAttribute('src')); done(); };
    if (a.error) return fail();
    if (a.readyState >= 1) return done();
    a.addEventListener('loadedmetadata', () => done());
    a.addEventListener('error', fail);
    a.load();
  })));
  const result = {images: images.length, audio: audio.length, bad: bad};
  document.body.setAttribute('data-media-check', JSON.stringify(result));
});
</script>
"""


def _chromium(tmp_dir: str, *args: str) -> subprocess.CompletedProcess:
  binary = shutil.which('chromium') or shutil.which('chromium-browser')
  assert binary, 'chromium is not installed (apt-get install -y chromium; .ci/run installs it)'
  profile = os.path.join(tmp_dir, 'chromium-profile')
  cmd = [binary, '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
         '--no-first-run', '--mute-audio', '--autoplay-policy=no-user-gesture-required',
         f'--user-data-dir={profile}', *args]
  return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def check_media(page: str, tmp_dir: str) -> dict:
  """Open a copy of `page` (beside it, so relative links hold) in headless Chromium with a script
  that decodes every image and loads every audio source; returns {'images', 'audio', 'bad'}."""
  with open(page, encoding='utf-8') as f:
    text = f.read()
  checked = os.path.join(os.path.dirname(page), '_media_check.html')
  with open(checked, 'w', encoding='utf-8') as f:
    f.write(text.replace('</body>', _CHECK_SCRIPT + '</body>'))
  try:
    done = _chromium(tmp_dir, '--virtual-time-budget=30000', '--dump-dom', 'file://' + checked)
  finally:
    os.remove(checked)
  marker = 'data-media-check="'
  assert marker in done.stdout, f'media check did not run: {done.stderr[-2000:]}'
  raw = done.stdout.split(marker, 1)[1].split('"', 1)[0]
  return json.loads(raw.replace('&quot;', '"').replace('&amp;', '&'))


def screenshot(page: str, path: str, tmp_dir: str, height: int = 3000) -> None:
  """A PNG screenshot of `page` (1400 px wide)."""
  done = _chromium(tmp_dir, f'--screenshot={path}', f'--window-size=1400,{height}',
                   '--hide-scrollbars', '--virtual-time-budget=10000', 'file://' + page)
  assert os.path.exists(path), f'no screenshot: {done.stderr[-2000:]}'
