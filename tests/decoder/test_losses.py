"""Reconstruction losses against independent numpy / librosa computations."""

import librosa
import numpy as np
import pytest
import scipy.signal

from sim_jax.decoder import losses


def _audio(batch=2, length=10240, seed=0):
  rng = np.random.default_rng(seed)
  t = np.arange(length) / 16000
  tone = np.sin(2 * np.pi * rng.uniform(100, 2000, (batch, 1)) * t)
  return (0.3 * tone + 0.05 * rng.standard_normal((batch, length))).astype(np.float32)


def _librosa_power(x, n_fft, hop):
  spec = librosa.stft(x.astype(np.float64), n_fft=n_fft, hop_length=hop, window='hann', center=True,
                      pad_mode='reflect')
  return np.abs(spec.T) ** 2  # (frames, bins)


def _librosa_log_mel(x):
  mel = librosa.feature.melspectrogram(y=x.astype(np.float64), sr=16000, n_fft=4096, hop_length=2048,
                                       power=2.0, n_mels=128, htk=True, norm='slaney', center=True,
                                       pad_mode='reflect')
  return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None).T  # (frames, mels)


def test_power_spectrogram_matches_librosa():
  audio = _audio()
  ours = np.asarray(losses.power_spectrogram(audio))
  assert ours.shape == (2, 41, 513)
  for i in range(2):
    ref = _librosa_power(audio[i], 1024, 256)
    np.testing.assert_allclose(ours[i], ref, rtol=1e-3, atol=1e-3 * ref.max())


def test_log_mel_matches_librosa():
  audio = _audio()
  ours = np.asarray(losses.log_mel_spectrogram(audio))
  assert ours.shape == (2, 6, 128)
  for i in range(2):
    np.testing.assert_allclose(ours[i], _librosa_log_mel(audio[i]), atol=0.02)


def test_log_mel_floor_on_silence():
  ours = np.asarray(losses.log_mel_spectrogram(np.zeros((1, 10240), np.float32)))
  np.testing.assert_allclose(ours, -100.0)


def _numpy_fft_terms(pred, target):
  """The original's FFTLoss (decoder/decoder_losses.py:59-83) in float64 numpy: scipy's periodic
  Hann window of the signal's length, rfft, mean |Δ magnitude| + mean |Δ phase|."""
  window = scipy.signal.get_window('hann', pred.shape[-1], fftbins=True)
  p, t = np.fft.rfft(pred * window), np.fft.rfft(target * window)
  return np.mean(np.abs(np.abs(p) - np.abs(t))) + np.mean(np.abs(np.angle(p) - np.angle(t)))


@pytest.mark.parametrize('name', ['mse', 'stft', 'mel', 'fft', 'mse+stft', 'mse+mel', 'mse+fft'])
def test_named_losses_match_numpy(name):
  pred, target = _audio(seed=1), _audio(seed=2)
  terms = {
      'fft': _numpy_fft_terms(pred.astype(np.float64), target.astype(np.float64)),
      'mse': np.mean((pred - target) ** 2),
      'stft': np.mean([(_librosa_power(p, 1024, 256) - _librosa_power(t, 1024, 256)) ** 2
                       for p, t in zip(pred, target)]),
      'mel': np.mean([(_librosa_log_mel(p) - _librosa_log_mel(t)) ** 2 for p, t in zip(pred, target)]),
  }
  expected = sum(terms[part] for part in name.split('+'))
  got = float(losses.reconstruction_loss(name)(pred, target))
  np.testing.assert_allclose(got, expected, rtol=2e-3)
  assert float(losses.reconstruction_loss(name)(target, target)) == 0.0


def test_unknown_loss_names_the_key():
  with pytest.raises(ValueError, match=r'config.decoder.loss=.*mse\+mel, mse\+fft'):
    losses.reconstruction_loss('l1')


def test_fft_loss_window_follows_the_signal_length():
  """LibriSpeech's 20480-sample crops: the window is 20480 long (the original's is fixed at 10240)."""
  pred, target = _audio(length=20480, seed=3), _audio(length=20480, seed=4)
  expected = _numpy_fft_terms(pred.astype(np.float64), target.astype(np.float64))
  np.testing.assert_allclose(float(losses.fft_loss(pred, target)), expected, rtol=2e-3)
