"""Reading audio files: header checks, truncated-WAV detection and whole-file decoding to float32.

`read_audio` reads a corpus file that must already be mono at a known rate (LibriSpeech, de Boer);
`load_audio_file` reads any file libsndfile decodes (WAV, FLAC, OGG/Vorbis/Opus, MP3 from libsndfile
1.1.0 on, AIFF, ...) at any rate and channel count, mixes it down to mono and resamples it to 16 kHz
(the folder corpus). Both run the same damage checks and return a one-line problem string instead
of raising, for the caller's bad-file policy.
"""

import os
import struct

import numpy as np
import soundfile as sf

from sim_jax.data.resample import resample

SAMPLE_RATE = 16000  # every corpus is read (or resampled) at 16 kHz
FRAME_HOP = 160  # samples per 10-ms frame at 16 kHz: the encoder's total stride and the phone-label rate
# An MP3 header's frame count is an estimate where the file has no Xing/Info frame: decoding may
# fall short of it by this fraction without the file being cut (a cut one falls far shorter).
_DECLARED_FRAMES_SLACK = {'MP3': 0.02}


def wav_truncation(path: str) -> str | None:
  """For a RIFF/WAVE file: a problem string if its data chunk is cut short, else None.

  libsndfile silently shortens such files; the header's declared size gives the truncation away.
  """
  with open(path, 'rb') as f:
    head = f.read(12)
    if len(head) < 12 or head[:4] != b'RIFF' or head[8:12] != b'WAVE':
      return None
    size = os.fstat(f.fileno()).st_size
    while True:
      chunk = f.read(8)
      if len(chunk) < 8:
        return None
      cid, n = chunk[:4], struct.unpack('<I', chunk[4:])[0]
      if cid == b'data':
        have = size - f.tell()
        if n > have:
          return f'truncated: the header declares {n} bytes of audio, the file holds {have}'
        return None
      f.seek(n + (n & 1), os.SEEK_CUR)


def audio_header(path: str, expected_rate: int | None = None, mono: bool = True):
  """The file's `soundfile.info` if it is a non-empty audio file (mono at `expected_rate` unless
  `mono=False` / `expected_rate=None`), else a one-line problem string (no such file, empty,
  unreadable header, not mono, wrong sample rate, no samples)."""
  if not os.path.isfile(path):
    return 'no such file'
  if os.path.getsize(path) == 0:
    return 'empty file (0 bytes)'
  try:
    info = sf.info(path)
  except (RuntimeError, sf.LibsndfileError) as e:
    return f'not a readable audio file (corrupt or truncated header): {e}'
  if mono and info.channels != 1:
    return f'{info.channels} channels, expected mono'
  if expected_rate is not None and info.samplerate != expected_rate:
    return f'sample rate {info.samplerate} Hz, expected {expected_rate} Hz'
  if info.frames <= 0:
    return 'no audio samples (empty, or cut before its first audio packet)'
  return info


def _decode(path: str, info, dtype: str) -> np.ndarray | str:
  """All samples of a file whose header `info` passed `audio_header`: (T,) or (T, C) of `dtype`, or
  a problem string if its data are cut short or corrupt."""
  cut = wav_truncation(path)
  if cut:
    return cut
  try:
    audio, _ = sf.read(path, dtype=dtype, always_2d=False)  # (T,) or (T, C)
  except (RuntimeError, sf.LibsndfileError) as e:
    return f'corrupt or truncated audio data: {e}'
  if len(audio) < info.frames * (1 - _DECLARED_FRAMES_SLACK.get(info.format, 0.0)):
    return f'truncated: the header declares {info.frames} samples, only {len(audio)} could be decoded'
  return audio


def read_audio(path: str, expected_rate: int, dtype: str = 'float32') -> np.ndarray | str:
  """Decodes a whole mono file at `expected_rate` to float32 in [-1, 1] (torchaudio's scaling), or
  with dtype='int16' to its 16-bit integer samples (float32 is exactly these / 32768).

  Returns the (T,) array, or a one-line problem string (empty, unreadable, truncated, not mono,
  wrong sample rate) for the caller's bad-file policy.
  """
  info = audio_header(path, expected_rate)
  if isinstance(info, str):
    return info
  return _decode(path, info, dtype)


def load_audio_file(path: str, resampler: str = 'sinc') -> tuple[np.ndarray, dict] | str:
  """Decodes any file soundfile reads to 16-kHz mono float32 in [-1, 1].

  Several channels are averaged into one; another sample rate is resampled with `resampler`
  ('sinc': the de Boer cache's torchaudio-equivalent resampler | 'soxr_hq'). Returns ((T,) float32,
  {'sample_rate': the file's rate, 'channels': its channels, 'frames': its samples per channel,
  'format': libsndfile's format name, e.g. 'FLAC'}), or a one-line problem string (no such file,
  empty, not audio, truncated, corrupt) for the caller's bad-file policy.
  """
  info = audio_header(path, mono=False)
  if isinstance(info, str):
    return info
  audio = _decode(path, info, 'float32')
  if isinstance(audio, str):
    return audio
  if audio.ndim == 2:
    audio = audio.mean(axis=1, dtype=np.float32)  # (T,)
  audio = resample(audio, info.samplerate, SAMPLE_RATE, resampler)
  return np.asarray(audio, np.float32), {'sample_rate': int(info.samplerate), 'channels': int(info.channels),
                                         'frames': int(info.frames), 'format': str(info.format)}
