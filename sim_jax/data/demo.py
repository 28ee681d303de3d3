"""A built-in synthetic speech corpus: no download, deterministic from a seed.

A smoke-test and teaching set, not a benchmark. Consonant–vowel syllables {b,d,g}×{a,i,u} come from a
small source–filter synthesiser: a glottal harmonic source at a per-speaker pitch (with declination,
vibrato and per-token jitter) is shaped by three formant resonances whose targets are the classic
adult values of /a i u/, scaled per speaker (vocal-tract length) and moving in from a
consonant-specific locus (the b/d/g transition cue); each syllable starts with a closure and a noise
burst whose spectrum depends on the consonant (low/diffuse b, high d, compact mid g). Speakers
differ in pitch, formant scale and spectral tilt, so speaker, vowel and syllable are all findable.

Variants (16 kHz):
  'words'     — three-syllable items of 10240 samples (like de Boer's words), labels 'speaker',
                'syllable_1..3'; per-frame phone labels via frame_labels(i).
  'syllables' — single syllables, centred in 8821 samples (like de Boer's padded syllables), labels
                'syllable' (9), 'vowel' (3), 'speaker', 'consonant' (3); per-frame phone labels too.
Categorical draws per item: its speaker and its syllable (consonant × vowel); everything else drawn
per item is continuous (pitch and formant jitter, segment durations, level, onset, noise), so the
syllables' generative factors are speaker, consonant and vowel.
Per-frame labels: one per 160 samples (64 per word, 55 per syllable), classes sil b d g a i u; a
consonant spans the end of its closure, its burst and its formant transition.
Item i of a split is a function of (demo_seed, split, variant, i) only; train and test hold
different renditions by the same speakers. Item i's speaker is i mod num_speakers.
"""

import numpy as np

from sim_jax.data.audio import FRAME_HOP, SAMPLE_RATE
from sim_jax.data.errors import DataError
from sim_jax.data.deboer import CONSONANTS, SYLLABLES, VOWELS
from sim_jax.data.source import ArraySource

PHONES = ('sil', 'b', 'd', 'g', 'a', 'i', 'u')
LENGTHS = {'words': 10240, 'syllables': 8821}
VOWEL_FORMANTS = {'a': (730.0, 1090.0, 2440.0), 'i': (270.0, 2290.0, 3010.0),
                  'u': (300.0, 870.0, 2240.0)}
BANDWIDTHS = np.array([80.0, 100.0, 150.0])
MAX_HARMONIC_HZ = 5000.0
_HOP = 40  # samples between the points where formant amplitudes are evaluated (then interpolated)
_SPLIT_IDS = {'train': 1, 'test': 2}
_VARIANT_IDS = {'words': 1, 'syllables': 2}


def _locus(consonant: str, vowel: str) -> np.ndarray:
  """Formant onsets (F1, F2, F3) of a consonant before `vowel`: the place-of-articulation cue."""
  target = np.array(VOWEL_FORMANTS[vowel])
  if consonant == 'b':   # labial: all formants start low
    locus = np.array([250.0, 800.0, 2000.0])
  elif consonant == 'd':  # alveolar: F2 from ~1800 Hz
    locus = np.array([250.0, 1800.0, 2700.0])
  else:                   # velar: F2 and F3 start close together ("velar pinch")
    f2 = 2500.0 if vowel == 'i' else 1700.0
    locus = np.array([250.0, f2, f2 + 250.0])
  return locus + 0.35 * (target - locus)


def _speakers(seed: int, count: int) -> list[dict]:
  """Per-speaker voice parameters: pitch (Hz), formant scale, spectral tilt, breathiness."""
  rng = np.random.default_rng([seed, 7])
  f0 = np.geomspace(95.0, 250.0, count)[rng.permutation(count)]
  scale = np.linspace(0.86, 1.18, count)[rng.permutation(count)]
  tilt = rng.uniform(0.7, 1.4, count)
  breath = rng.uniform(0.0, 0.06, count)
  return [dict(f0=f0[s], scale=scale[s], tilt=tilt[s], breath=breath[s]) for s in range(count)]


def _shaped_noise(rng, n: int, centre: float, width: float) -> np.ndarray:
  """(n,) white noise band-passed by a Gaussian bump at `centre` Hz (std `width` Hz), unit RMS."""
  spectrum = np.fft.rfft(rng.standard_normal(n))
  freqs = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
  noise = np.fft.irfft(spectrum * np.exp(-0.5 * ((freqs - centre) / width) ** 2), n)
  return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def _voiced(rng, voice: dict, consonant: str, vowel: str, n_trans: int, n_steady: int) -> np.ndarray:
  """(n,) the voiced part of a syllable: formant transition from the consonant locus, then the vowel."""
  n = n_trans + n_steady
  blocks = -(-n // _HOP)
  t = np.arange(blocks * _HOP)  # (N,) padded to whole blocks
  tc = np.arange(blocks + 1) * _HOP  # (G + 1,) block edges, where the amplitudes are evaluated
  scale = voice['scale'] * rng.uniform(0.97, 1.03)
  target = np.array(VOWEL_FORMANTS[vowel]) * scale * rng.uniform(0.97, 1.03, 3)
  onset = _locus(consonant, vowel) * scale
  progress = np.clip(tc / max(n_trans, 1), 0.0, 1.0)
  formants = onset[None] + (target - onset)[None] * (1 - (1 - progress) ** 2)[:, None]  # (G + 1, 3)
  f0_base = voice['f0'] * rng.uniform(0.95, 1.05)
  vibrato = 1 + 0.01 * np.sin(2 * np.pi * 5.0 * t / SAMPLE_RATE + rng.uniform(0, 2 * np.pi))
  f0 = f0_base * (1.04 - 0.08 * t / n) * vibrato  # (N,) declining pitch with a 5-Hz vibrato
  phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE + rng.uniform(0, 2 * np.pi)  # (N,)
  harmonics = np.arange(1, int(MAX_HARMONIC_HZ / f0.min()) + 1)  # (H,)
  freq = f0[np.minimum(tc, len(t) - 1)][:, None] * harmonics[None]  # (G + 1, H)
  gain = harmonics[None] ** -voice['tilt'] * (freq < MAX_HARMONIC_HZ)
  for k in range(3):
    fk, bk = formants[:, k:k + 1], BANDWIDTHS[k] * scale
    gain = gain * fk ** 2 / np.sqrt((fk ** 2 - freq ** 2) ** 2 + (bk * freq) ** 2)
  gain = gain.astype(np.float32)
  # float32 sin is several times faster than float64; wrapping the phase first keeps it exact enough
  wrapped = np.mod(phase, 2 * np.pi).astype(np.float32).reshape(blocks, _HOP)  # (G, HOP)
  waves = np.sin(wrapped[..., None] * harmonics.astype(np.float32))  # (G, HOP, H)
  # amplitudes interpolate linearly between block edges: mix the sums at both edges
  frac = (np.arange(_HOP) / _HOP).astype(np.float32)
  signal = (np.einsum('gjh,gh->gj', waves, gain[:-1]) * (1 - frac)
            + np.einsum('gjh,gh->gj', waves, gain[1:]) * frac).reshape(-1)[:n].astype(np.float64)
  signal = signal / (np.sqrt(np.mean(signal ** 2)) + 1e-12)
  signal = signal + voice['breath'] * 3 * _shaped_noise(rng, n, 1500.0 * scale, 1200.0)
  attack, release = int(0.015 * SAMPLE_RATE), int(0.025 * SAMPLE_RATE)
  envelope = np.ones(n)
  envelope[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
  envelope[-release:] = 0.5 + 0.5 * np.cos(np.pi * np.arange(release) / release)
  return signal * envelope


def _burst(rng, voice: dict, consonant: str, vowel: str, n: int) -> np.ndarray:
  """(n,) the release burst: decaying noise with a consonant-specific spectrum."""
  scale = voice['scale']
  if consonant == 'b':
    noise, level = _shaped_noise(rng, n, 500.0 * scale, 900.0), 0.35
  elif consonant == 'd':
    noise, level = _shaped_noise(rng, n, 4200.0 * scale, 1200.0), 0.8
  else:
    noise, level = _shaped_noise(rng, n, _locus('g', vowel)[1] * scale, 350.0), 1.0
  return level * noise * np.exp(-np.arange(n) / (0.4 * n))


def _syllable(rng, voice: dict, syllable: str, durations: dict) -> tuple[np.ndarray, np.ndarray]:
  """One CV syllable: audio (n,) and its per-sample phone ids (n,), from `durations` in samples."""
  consonant, vowel = syllable
  c, b = durations['closure'], durations['burst']
  trans, steady = durations['trans'], durations['steady']
  audio = np.concatenate([np.zeros(c), _burst(rng, voice, consonant, vowel, b),
                          _voiced(rng, voice, consonant, vowel, trans, steady)])
  audio *= 10 ** (rng.uniform(-3, 3) / 20)
  phones = np.full(len(audio), PHONES.index('sil'), np.int8)
  phones[max(c - int(0.02 * SAMPLE_RATE), 0):c + b + trans] = PHONES.index(consonant)
  phones[c + b + trans:] = PHONES.index(vowel)
  return audio, phones


def _durations(rng, slow: float) -> dict:
  """Random segment durations (samples) of one syllable; `slow` stretches the vowel."""
  def ms(lo, hi):
    return int(rng.uniform(lo, hi) * SAMPLE_RATE / 1000)

  return dict(closure=ms(35, 60), burst=ms(8, 14), trans=ms(30, 45), steady=int(ms(90, 150) * slow))


def _finish(audio: np.ndarray, rng) -> np.ndarray:
  """Peak-normalises to a random level around 0.5 and adds a faint noise floor; float32."""
  audio = audio / (np.abs(audio).max() + 1e-12) * rng.uniform(0.35, 0.7)
  return (audio + 1e-4 * rng.standard_normal(len(audio))).astype(np.float32)


def synth_word(seed: int, split_id: int, i: int, voice: dict, syllables: tuple[str, str, str]
               ) -> tuple[np.ndarray, np.ndarray]:
  """Word i: audio (10240,) float32 and frame phone ids (64,) int8, three syllables in a row."""
  rng = np.random.default_rng([seed, split_id, _VARIANT_IDS['words'], i])
  length = LENGTHS['words']
  lead, trail = int(rng.uniform(0.01, 0.04) * SAMPLE_RATE), int(rng.uniform(0.01, 0.03) * SAMPLE_RATE)
  durations = [_durations(rng, 1.0) for _ in syllables]
  fit = min(1.0, (length - lead - trail) / sum(sum(d.values()) for d in durations))
  durations = [{k: int(v * fit) for k, v in d.items()} for d in durations]
  pieces = [_syllable(rng, voice, s, d) for s, d in zip(syllables, durations)]
  audio = np.zeros(length)
  phones = np.full(length, PHONES.index('sil'), np.int8)
  pos = lead
  for piece, piece_phones in pieces:
    audio[pos:pos + len(piece)] = piece
    phones[pos:pos + len(piece)] = piece_phones
    pos += len(piece)
  return _finish(audio, rng), phones[FRAME_HOP // 2::FRAME_HOP][:length // FRAME_HOP]


def synth_syllable(seed: int, split_id: int, i: int, voice: dict, syllable: str
                   ) -> tuple[np.ndarray, np.ndarray]:
  """Syllable item i: audio (8821,) float32 (centred, zero-padded) and frame phone ids (55,) int8."""
  rng = np.random.default_rng([seed, split_id, _VARIANT_IDS['syllables'], i])
  length = LENGTHS['syllables']
  piece, piece_phones = _syllable(rng, voice, syllable, _durations(rng, 1.6))
  start = max((length - len(piece)) // 2 + int(rng.uniform(-0.02, 0.02) * SAMPLE_RATE), 0)
  piece, piece_phones = piece[:length - start], piece_phones[:length - start]
  audio = np.zeros(length)
  phones = np.full(length, PHONES.index('sil'), np.int8)
  audio[start:start + len(piece)] = piece
  phones[start:start + len(piece)] = piece_phones
  return _finish(audio, rng), phones[FRAME_HOP // 2::FRAME_HOP][:length // FRAME_HOP]


class DemoSource(ArraySource):
  """The synthetic corpus of one split and variant, generated in memory (~1–3 s on one core)."""

  corpus = 'demo'

  def __init__(self, data_config, split: str, variant: str):
    """Generates the items from config.data.demo_* (seed, num_speakers, num_train, num_test)."""
    seed = int(data_config.get('demo_seed', 0))
    num_speakers = int(data_config.get('demo_num_speakers', 8))
    count = int(data_config.get(f'demo_num_{split}', 640 if split == 'train' else 160))
    if num_speakers < 1 or count < 1:
      raise DataError(f'demo corpus: demo_num_speakers={num_speakers} and demo_num_{split}={count} '
                      'must be at least 1')
    voices = _speakers(seed, num_speakers)
    pick = np.random.default_rng([seed, _SPLIT_IDS[split], _VARIANT_IDS[variant], 1 << 20])
    offset = int(pick.integers(0, len(SYLLABLES)))  # syllables: every speaker × syllable equally often
    audio, frames, names = [], [], []
    labels = {'speaker': []}
    for i in range(count):
      speaker = i % num_speakers
      labels['speaker'].append(speaker)
      if variant == 'words':
        sylls = tuple(SYLLABLES[k] for k in pick.integers(0, len(SYLLABLES), 3))
        x, f = synth_word(seed, _SPLIT_IDS[split], i, voices[speaker], sylls)
        for k, s in enumerate(sylls):
          labels.setdefault(f'syllable_{k + 1}', []).append(SYLLABLES.index(s))
        names.append(f'spk{speaker}_{"".join(sylls)}_{i:05d}')
      else:
        syll = SYLLABLES[(i // num_speakers + offset) % len(SYLLABLES)]
        x, f = synth_syllable(seed, _SPLIT_IDS[split], i, voices[speaker], syll)
        labels.setdefault('syllable', []).append(SYLLABLES.index(syll))
        labels.setdefault('vowel', []).append(VOWELS.index(syll[1]))
        labels.setdefault('consonant', []).append(CONSONANTS.index(syll[0]))
        names.append(f'spk{speaker}_{syll}_{i:05d}')
      audio.append(x)
      frames.append(f)
    self._frame_labels = np.stack(frames)  # (N, F) int8
    class_names = {k: list(SYLLABLES) for k in labels if k.startswith('syllable')}
    class_names['speaker'] = [f'spk{s}' for s in range(num_speakers)]
    if 'vowel' in labels:
      class_names.update(vowel=list(VOWELS), consonant=list(CONSONANTS))
    class_names['phone'] = list(PHONES)
    super().__init__(np.stack(audio), split=split, variant=variant, names=names, labels=labels,
                     class_names=class_names)

  def frame_labels(self, i: int) -> np.ndarray:
    """(F,) int32 phone ids (sil b d g a i u) of item i, one per 160 samples."""
    return self._frame_labels[i].astype(np.int32)
