"""The HTML report: one page a person can read and listen to, opened from disk without a server.

The page is rendered from the analysis results of one or more workdirs (`results.json`, see
`sim_jax.analysis.run`). Every section holds named items; an item has `numbers` (label -> scalar or
text) and `groups` of files (PNG figures, WAV audio) whose paths are relative to its workdir. Files
are linked relatively (the page does not embed them), so a report can be copied together with its
workdir. With one workdir, figures and players flow in a grid; with several (compare mode), every
number and file sits in a table with one column per workdir. A section that a workdir lacks shows
the command that would fill it.
"""

import datetime
import html
import os
import urllib.parse

from sim_jax import io

SECTIONS = (
    ('run', 'Run', 'The encoder and checkpoint analysed.'),
    ('summary', 'Summary', 'Headline numbers from the sections below. The paper\'s claim for SIM '
     'over GIM: information in fewer dimensions (fewer dims hold 90 % of a bias-free probe\'s |w|, '
     'lower entropy) and less entanglement (lower total correlation).'),
    ('training', 'Training', 'Self-supervised training: per-module loss curves and the last validation.'),
    ('probes', 'Linear probes', 'Downstream linear classifiers on frozen features (probe.py).'),
    ('weights', 'Probe weights', 'Bias-free probes: weights per class rescaled to [−1, 1] (the '
     'original\'s normalisation), dimensions sorted by importance; how many dimensions hold 50 % / '
     '90 % of a class\'s absolute weight, and the entropy of that distribution (lower = more '
     'concentrated).'),
    ('latents', 'Latent space', 't-SNE of time-averaged features, a 3-D scatter of the three most '
     'informative channels, per-dimension histograms against N(0, 1) and per-dimension statistics.'),
    ('entanglement', 'Entanglement (total correlation)', 'TC = Σ H(marginals) − H(joint) in nats; '
     '0 for independent dimensions. Gaussian: −½ log det of the correlation matrix over all '
     'dimensions, minus the same for column-shuffled data (its finite-sample bias). KDE: the '
     'original\'s estimator (bandwidth 0.1, resubstitution) on random channel subsets; its "null" is '
     'the value it reports for column-shuffled samples — compare against it, not against 0. A fixed '
     'bandwidth is not scale-invariant (channels with std ≪ 0.1 give ≈ 0 whatever their dependence), '
     'so the KDE is also shown on unit-variance channels. In many dimensions the resubstitution KDE '
     'mostly measures its own bias (each point\'s kernel dominates the joint density): read it '
     'against its shuffled value.'),
    ('disentanglement', 'Disentanglement (known factors)', 'Supervised metrics of each conv module\'s '
     'time-averaged codes (SIM: means and samples) against the items\' known factors (the corpus\'s '
     'item labels). MIG: the gap between the two dimensions most informative about a factor, over its '
     'entropy. DCI (tree classifiers per factor): disentanglement (each dimension serves one factor), '
     'completeness (each factor is served by one dimension), informativeness (test accuracy). SAP: the '
     'gap between the two dimensions that alone predict a factor best (chance-corrected balanced '
     'accuracy). Modularity: each dimension shares information with one factor only. All in [0, 1], '
     'higher = more disentangled. Active units: dimensions whose mean varies across items (variance > '
     '0.01); collapsed dims: SIM dimensions whose posterior is the prior (KL < 0.01 nats per frame).'),
    ('decoder', 'Decoder', 'Reconstructions, samples of the prior and latent traversals (decode.py).'),
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1500px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:2px solid #ccc;padding-top:.6em}h3{margin-bottom:.3em}
nav a{margin-right:1em}.desc{color:#555;max-width:70em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;
vertical-align:top;text-align:left}th{background:#f4f4f4}td.num{text-align:right;font-family:monospace}
.grid{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;padding:.4em;max-width:100%}
.card img{max-width:100%;max-height:620px}.label{font-size:.85em;color:#444;margin-bottom:.2em}
.missing{background:#fff4e0;border-left:4px solid #e0a000;padding:.5em 1em;margin:.5em 0}
code{background:#f4f4f4;padding:.1em .3em;white-space:pre-wrap}.note{color:#555;font-size:.9em}
td img{max-width:100%}
"""


def _src(workdir: str, path: str, out_dir: str) -> str | None:
  """The page-relative URL of a workdir file, or None if the file does not exist."""
  full = os.path.join(workdir, path)
  if not os.path.isfile(full):
    return None
  rel = os.path.relpath(full, out_dir).replace(os.sep, '/')
  return urllib.parse.quote(rel)


def _media(workdir: str, file: dict, out_dir: str) -> str:
  """An <img>, <audio> or, for a data file (type 'data': .npy, .csv), a link, for one file entry
  {'path', 'type', 'label'}."""
  src = _src(workdir, file['path'], out_dir)
  if src is None:
    return f'<span class="note">file missing: {html.escape(file["path"])}</span>'
  if file['type'] == 'wav':
    return f'<audio controls preload="metadata" src="{src}"></audio>'
  if file['type'] == 'data':
    return f'<a href="{src}">{html.escape(os.path.basename(file["path"]))}</a>'
  return f'<a href="{src}"><img src="{src}" alt="{html.escape(file["label"])}" loading="lazy"></a>'


def _format(value) -> str:
  if isinstance(value, bool) or value is None:
    return html.escape(str(value))
  if isinstance(value, float):
    return f'{value:.4g}'
  return html.escape(str(value))


def _ordered_union(lists) -> list:
  out = []
  for values in lists:
    for v in values:
      if v not in out:
        out.append(v)
  return out


def _numbers_html(items: list[dict | None], headers: list[str]) -> str:
  labels = _ordered_union((item or {}).get('numbers', {}).keys() for item in items)
  if not labels:
    return ''
  rows = []
  for label in labels:
    cells = ''.join(f'<td class="num">{_format((item or {}).get("numbers", {}).get(label, "—"))}</td>'
                    for item in items)
    rows.append(f'<tr><th>{html.escape(label)}</th>{cells}</tr>')
  head = ''.join(f'<th>{html.escape(h)}</th>' for h in headers) if len(items) > 1 else '<th></th>'
  return f'<table><tr><th></th>{head}</tr>{"".join(rows)}</table>'


def _groups_html(items: list[dict | None], runs: list[tuple[str, dict]], out_dir: str) -> str:
  """The file groups of one item across runs: a grid for one run, a table per group for several."""
  titles = _ordered_union([g['title'] for g in (item or {}).get('groups', [])] for item in items)
  parts = []
  for title in titles:
    groups = [next((g for g in (item or {}).get('groups', []) if g['title'] == title), None)
              for item in items]
    notes = _ordered_union([g['note']] for g in groups if g and g.get('note'))
    parts.append(f'<h4>{html.escape(title)}</h4>' if title else '')
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in notes]
    if len(runs) == 1:
      files = sorted(groups[0]['files'], key=lambda f: f['type'] != 'wav')  # players first
      cards = [f'<div class="card"><div class="label">{html.escape(f["label"])}</div>'
               f'{_media(runs[0][0], f, out_dir)}</div>' for f in files]
      parts.append(f'<div class="grid">{"".join(cards)}</div>')
      continue
    labels = _ordered_union([f['label'] for f in g['files']] for g in groups if g)
    rows = []
    for label in labels:
      cells = []
      for (workdir, _), group in zip(runs, groups):
        file = next((f for f in (group or {}).get('files', []) if f['label'] == label), None)
        cells.append(f'<td>{_media(workdir, file, out_dir) if file else "—"}</td>')
      rows.append(f'<tr><th>{html.escape(label)}</th>{"".join(cells)}</tr>')
    width = f'{90 // len(runs)}%'
    head = ''.join(f'<th style="width:{width}">{html.escape(r["run"]["name"])}</th>' for _, r in runs)
    parts.append(f'<table><tr><th></th>{head}</tr>{"".join(rows)}</table>')
  return ''.join(parts)


def _missing_html(section: dict, name: str, multi: bool) -> str:
  missing = section.get('missing')
  if not missing:
    return ''
  who = f'<b>{html.escape(name)}</b>: ' if multi else ''
  commands = ''.join(f'<br><code>{html.escape(c)}</code>' for c in missing.get('commands', []))
  fill = f'<br>To fill this section, run:{commands}' if commands else ''
  return f'<div class="missing">{who}{html.escape(missing["reason"])}{fill}</div>'


def _section_html(key: str, title: str, desc: str, runs: list[tuple[str, dict]], out_dir: str) -> str:
  sections = [results.get(key, {'missing': {'reason': 'not analysed'}}) for _, results in runs]
  names = [results['run']['name'] for _, results in runs]
  parts = [f'<section id="{key}"><h2>{html.escape(title)}</h2><p class="desc">{html.escape(desc)}</p>']
  parts += [_missing_html(s, n, len(runs) > 1) for s, n in zip(sections, names)]
  for item_name in _ordered_union(s.get('items', {}).keys() for s in sections):
    items = [s.get('items', {}).get(item_name) for s in sections]
    if item_name:
      parts.append(f'<h3>{html.escape(item_name)}</h3>')
    parts.append(_numbers_html(items, names))
    parts.append(_groups_html(items, runs, out_dir))
  parts.append('</section>')
  return '\n'.join(parts)


def render_report(runs: list[tuple[str, dict]], out_dir: str) -> str:
  """Write `out_dir/index.html` for one or more (workdir, results) pairs; returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  names = [results['run']['name'] for _, results in runs]
  title = (f'sim-jax report: {names[0]}' if len(runs) == 1
           else 'sim-jax comparison: ' + ' vs '.join(names))
  nav = ' '.join(f'<a href="#{key}">{html.escape(t)}</a>' for key, t, _ in SECTIONS)
  body = '\n'.join(_section_html(key, t, desc, runs, out_dir) for key, t, desc in SECTIONS)
  stamp = datetime.datetime.now().strftime('%Y-%m-%d %H:%M')
  page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
          f'</title><style>{_STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>'
          f'<p class="note">generated {stamp} by analyze.py</p><nav>{nav}</nav>\n{body}\n'
          f'</body></html>\n')
  path = os.path.join(out_dir, 'index.html')
  io.write_text(path, page)
  return path
