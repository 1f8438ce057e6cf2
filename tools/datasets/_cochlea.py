"""A cochlea-like front end: gammatone filterbank, inner hair cell, integrate-and-fire fibres.

Stages, per channel c with centre frequency f_c (ERB-rate spaced, Glasberg & Moore 1990):

1. Basilar membrane: 4th-order gammatone bandpass (``scipy.signal.gammatone``, IIR form),
   scaled to unity gain at f_c.
2. Inner hair cell: half-wave rectification, saturating compression
   ``y = r / (r + k)`` (k = ``half_saturation``; a Naka-Rushton curve whose 10-90 % range
   spans about 38 dB, like one auditory-nerve fibre), then a 2nd-order Butterworth
   low-pass at ``lowpass_hz`` (loss of phase locking at high frequencies).
3. Firing rate ``rate(t) = max_rate_hz * y(t)`` (spikes/s).
4. Spikes: a non-leaky integrate-and-fire neuron per channel, ``dV/dt = rate(t)``,
   threshold 1, subtractive reset, V(0) = 0; the count of spikes equals the integral of
   the rate. The rate is held constant over each sample (zero-order hold), so V is
   linear within a sample and each threshold crossing time is solved exactly by linear
   interpolation, then truncated to the microsecond. Several spikes may fall within one
   audio sample when the rate is high; all are kept.

This follows the structure of SHD's front end (basilar membrane, hair cell, spiking
fibre) but is far smaller: 64 channels by default instead of 700, and no bushy-cell
layer or lateral inhibition.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from edgesnn.errors import OptionError
from tools.datasets._scipy import signal


@dataclass(frozen=True)
class CochleaConfig:
    """Parameters of the front end; every field is recorded in the dataset's config hash."""

    n_channels: int = 64
    f_min_hz: float = 100.0
    f_max_hz: float = 8000.0
    half_saturation: float = 0.03  # hair-cell input (full scale 1) that gives half the maximum rate
    lowpass_hz: float = 1000.0
    max_rate_hz: float = 500.0

    def __post_init__(self) -> None:
        if not 1 <= self.n_channels <= 65535:
            raise OptionError(f"expected 1..65535 channels, got {self.n_channels}", path="cochlea.n_channels")
        if not 0.0 < self.f_min_hz < self.f_max_hz:
            raise OptionError(
                f"expected 0 < f_min_hz < f_max_hz, got {self.f_min_hz}, {self.f_max_hz}", path="cochlea.f_min_hz"
            )
        for name in ("half_saturation", "lowpass_hz", "max_rate_hz"):
            if not getattr(self, name) > 0.0:
                raise OptionError(f"expected > 0, got {getattr(self, name)}", path=f"cochlea.{name}")


def erb_rate(f_hz: np.ndarray | float) -> np.ndarray:
    """ERB-rate (ERB number) of frequency ``f_hz`` (Glasberg & Moore 1990)."""
    return 21.4 * np.log10(1.0 + 0.00437 * np.asarray(f_hz, dtype=np.float64))


def erb_rate_inverse(e: np.ndarray | float) -> np.ndarray:
    """Frequency in Hz whose ERB-rate is ``e`` (inverse of :func:`erb_rate`)."""
    return (10.0 ** (np.asarray(e, dtype=np.float64) / 21.4) - 1.0) / 0.00437


def centre_frequencies(config: CochleaConfig) -> np.ndarray:
    """Centre frequencies in Hz, increasing with the channel id, equally spaced in ERB-rate."""
    e = np.linspace(erb_rate(config.f_min_hz), erb_rate(config.f_max_hz), config.n_channels)
    return erb_rate_inverse(e)


@functools.lru_cache(maxsize=8)  # designing 64 filters costs as much as running them on a second of audio
def filterbank(config: CochleaConfig, fs_hz: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """IIR gammatone coefficients ``(b, a)`` per channel, each scaled to unity gain at its centre frequency."""
    if not config.f_max_hz < fs_hz / 2:
        raise OptionError(
            f"f_max_hz {config.f_max_hz} must lie below the Nyquist frequency {fs_hz / 2} of {fs_hz} Hz audio",
            path="cochlea.f_max_hz",
        )
    coefficients = []
    for fc in centre_frequencies(config):
        b, a = signal.gammatone(fc, "iir", fs=fs_hz)
        gain = np.abs(signal.freqz(b, a, worN=[fc], fs=fs_hz)[1][0])
        coefficients.append((b / gain, a))
    return coefficients


def basilar_membrane(x: np.ndarray, coefficients: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Filter mono audio ``x`` (L,) through every channel: (C, L) float64."""
    return np.stack([signal.lfilter(b, a, x) for b, a in coefficients])


def firing_rate(bm: np.ndarray, config: CochleaConfig, fs_hz: int) -> np.ndarray:
    """Hair-cell stage: basilar-membrane motion (C, L) to firing rate in spikes/s (C, L), >= 0."""
    rectified = np.maximum(bm, 0.0)
    compressed = rectified / (rectified + config.half_saturation)
    sos = signal.butter(2, config.lowpass_hz, fs=fs_hz, output="sos")
    # The Butterworth step response overshoots slightly; a rate cannot be negative.
    return config.max_rate_hz * np.maximum(signal.sosfilt(sos, compressed, axis=1), 0.0)


def integrate_and_fire(rate_hz: np.ndarray, fs_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """Spike times (µs, int64) and channel ids (uint16) of one IF neuron per row of ``rate_hz`` (C, L).

    Sorted by time, ties by channel. Sample n covers [n/fs, (n+1)/fs) with the rate held
    at rate_hz[c, n]; V(0) = 0, threshold 1, subtractive reset.
    """
    n_channels, n_samples = rate_hz.shape
    # V at the sample boundaries: v[:, n] = V(n / fs), n = 0..L.
    v = np.zeros((n_channels, n_samples + 1))
    np.cumsum(rate_hz / fs_hz, axis=1, out=v[:, 1:])
    times, units = [], []
    for c in range(n_channels):
        n_spikes = int(np.floor(v[c, -1]))
        if n_spikes == 0:
            continue
        levels = np.arange(1, n_spikes + 1, dtype=np.float64)
        # First boundary at or above each level; the crossing lies in the sample before it,
        # where the rate is > 0 because V rose.
        upper = np.searchsorted(v[c], levels, side="left")
        n = upper - 1
        t_s = (n + (levels - v[c, n]) / (v[c, upper] - v[c, n])) / fs_hz
        times.append(np.floor(t_s * 1e6).astype(np.int64))
        units.append(np.full(n_spikes, c, dtype=np.uint16))
    if not times:
        return np.zeros(0, np.int64), np.zeros(0, np.uint16)
    t, u = np.concatenate(times), np.concatenate(units)
    order = np.lexsort((u, t))
    return t[order], u[order]


def encode(x: np.ndarray, fs_hz: int, config: CochleaConfig) -> tuple[np.ndarray, np.ndarray]:
    """Audio (L,) at ``fs_hz`` to spikes: times in µs (int64, sorted) and channel ids (uint16)."""
    bm = basilar_membrane(np.asarray(x, dtype=np.float64), filterbank(config, fs_hz))
    return integrate_and_fire(firing_rate(bm, config, fs_hz), fs_hz)
