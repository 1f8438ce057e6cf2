"""Placing a spoken word in a fixed-length window, setting its level, adding noise.

Levels are relative to digital full scale (samples in [-1, 1]). The speech level is
the RMS over the trimmed word; the SNR compares it with the noise RMS over the whole
window, so babble that only covers part of the window is louder where it is present.
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import OptionError

NOISE_KINDS: tuple[str, ...] = ("white", "pink", "babble")

#: RMS of a word at gain 0 dB (-26 dBFS, a usual speech recording level).
REFERENCE_RMS = 0.05


def rms(x: np.ndarray) -> float:
    """Root mean square of ``x`` (0 for an empty array)."""
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def place(word: np.ndarray, *, n_samples: int, shift_samples: int, margin_samples: int) -> tuple[np.ndarray, int]:
    """Put ``word`` centred in a zero window of ``n_samples``, moved by ``shift_samples``.

    The onset is clipped so the word keeps ``margin_samples`` of silence on both sides;
    a word longer than the window minus both margins is cut at the end. Returns the
    window and the number of samples cut.
    """
    room = n_samples - 2 * margin_samples
    if room <= 0:
        raise OptionError(f"window of {n_samples} samples leaves no room inside margins of {margin_samples}")
    cut = max(0, len(word) - room)
    word = word[: len(word) - cut]
    onset = (n_samples - len(word)) // 2 + shift_samples
    onset = min(max(onset, margin_samples), n_samples - margin_samples - len(word))
    out = np.zeros(n_samples)
    out[onset : onset + len(word)] = word
    return out, cut


def white_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise with unit RMS."""
    x = rng.standard_normal(n_samples)
    return x / rms(x)


def pink_noise(n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a 1/f power spectrum (-3 dB per octave) and unit RMS, shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0  # keep the DC bin finite; it is removed below
    spectrum /= np.sqrt(f)
    spectrum[0] = 0.0
    x = np.fft.irfft(spectrum, n=n_samples)
    return x / rms(x)


def babble_noise(words: list[np.ndarray], n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of ``words`` (each scaled to unit RMS) at uniformly random onsets, cut to the window; unit RMS."""
    out = np.zeros(n_samples)
    for w in words:
        w = w[:n_samples] / max(rms(w), 1e-12)
        onset = int(rng.integers(0, n_samples - len(w) + 1))
        out[onset : onset + len(w)] += w
    level = rms(out)
    if level == 0.0:
        raise OptionError("babble words are silent; cannot scale them to an SNR", path="babble")
    return out / level


def mix(speech: np.ndarray, speech_rms: float, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech`` plus ``noise`` (unit RMS) scaled so that speech_rms / noise_rms is ``snr_db``."""
    return speech + noise * (speech_rms * 10.0 ** (-snr_db / 20.0))
