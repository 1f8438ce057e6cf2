"""Rendering one planned utterance: synthesise, place, level, add noise, encode to spikes.

A pure function of the utterance and the configuration (the noise generator is seeded
from the utterance), so it can run in any worker process in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgesnn.errors import OptionError
from tools.datasets import _cochlea, _mix, _speech
from tools.datasets._plan import DatasetConfig, Utterance


@dataclass(frozen=True, eq=False)
class Rendered:
    """Spikes of one utterance, and how many audio samples were cut to fit the window."""

    times_us: np.ndarray  # int64, sorted
    units: np.ndarray  # uint16
    cut_samples: int


def _speak(word: str, voice: str, speed_wpm: int, pitch: int, fs_hz: int) -> np.ndarray:
    x, rate = _speech.synthesize(word, voice=voice, speed_wpm=speed_wpm, pitch=pitch)
    if rate != fs_hz:
        raise OptionError(
            f"espeak-ng produced {rate} Hz audio for voice {voice!r}, the configuration expects {fs_hz} Hz",
            path="sample_rate_hz",
        )
    return _speech.trim_silence(x, fs_hz)


def render_audio(utt: Utterance, config: DatasetConfig) -> tuple[np.ndarray, int]:
    """The noisy audio window of ``utt`` (float64, duration_s * sample_rate_hz samples) and the samples cut."""
    fs = config.sample_rate_hz
    word = _speak(config.keywords[utt.label], utt.voice, utt.speed_wpm, utt.pitch, fs)
    level = _mix.REFERENCE_RMS * 10.0 ** (utt.gain_db / 20.0)
    speech_rms = _mix.rms(word)
    if speech_rms == 0.0:
        raise OptionError(f"espeak-ng voice {utt.voice!r} produced silence for {config.keywords[utt.label]!r}")
    word = word * (level / speech_rms)
    n = round(config.duration_s * fs)
    window, cut = _mix.place(
        word, n_samples=n, shift_samples=round(utt.shift_s * fs), margin_samples=round(config.margin_s * fs)
    )
    rng = np.random.default_rng(list(utt.noise_seed))
    if utt.noise_kind == "white":
        noise = _mix.white_noise(n, rng)
    elif utt.noise_kind == "pink":
        noise = _mix.pink_noise(n, rng)
    else:
        noise = _mix.babble_noise([_speak(*b, fs) for b in utt.babble], n, rng)
    return _mix.mix(window, level, noise, utt.snr_db), cut


def render(utt: Utterance, config: DatasetConfig) -> Rendered:
    """Spikes of ``utt``: audio window through the cochlea model."""
    audio, cut = render_audio(utt, config)
    times, units = _cochlea.encode(audio, config.sample_rate_hz, config.cochlea)
    return Rendered(times, units, cut)
