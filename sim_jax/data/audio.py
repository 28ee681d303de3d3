"""Reading audio files: header checks, truncated-WAV detection and whole-file decoding to float32."""

import os
import struct

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000  # every corpus is read (or resampled) at 16 kHz
FRAME_HOP = 160  # samples per 10-ms frame at 16 kHz: the encoder's total stride and the phone-label rate


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


def audio_header(path: str, expected_rate: int):
  """The file's `soundfile.info` if it is a non-empty mono file at `expected_rate`, else a one-line
  problem string (empty, unreadable header, not mono, wrong sample rate, no samples)."""
  if os.path.getsize(path) == 0:
    return 'empty file (0 bytes)'
  try:
    info = sf.info(path)
  except (RuntimeError, sf.LibsndfileError) as e:
    return f'not a readable audio file (corrupt or truncated header): {e}'
  if info.channels != 1:
    return f'{info.channels} channels, expected mono'
  if info.samplerate != expected_rate:
    return f'sample rate {info.samplerate} Hz, expected {expected_rate} Hz'
  if info.frames <= 0:
    return 'no audio samples'
  return info


def read_audio(path: str, expected_rate: int, dtype: str = 'float32') -> np.ndarray | str:
  """Decodes a whole mono file at `expected_rate` to float32 in [-1, 1] (torchaudio's scaling), or
  with dtype='int16' to its 16-bit integer samples (float32 is exactly these / 32768).

  Returns the (T,) array, or a one-line problem string (empty, unreadable, truncated, not mono,
  wrong sample rate) for the caller's bad-file policy.
  """
  info = audio_header(path, expected_rate)
  if isinstance(info, str):
    return info
  cut = wav_truncation(path)
  if cut:
    return cut
  try:
    audio, _ = sf.read(path, dtype=dtype, always_2d=False)  # (T,)
  except (RuntimeError, sf.LibsndfileError) as e:
    return f'corrupt or truncated audio data: {e}'
  if len(audio) < info.frames:
    return f'truncated: the header declares {info.frames} samples, only {len(audio)} could be decoded'
  return audio
