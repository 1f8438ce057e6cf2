"""Event-camera simulator in the style of ESIM (Rebecq et al. 2018) and v2e (Hu et al. 2021).

Each pixel compares its log intensity ``L = log(I + log_eps)`` with a memorised reference
level ``r``. Frames arrive at times t_0 < t_1 < ...; between two frames L is taken to move
linearly in time (ESIM's assumption). Whenever ``L - r`` reaches ``+C+`` the pixel emits an
ON event and ``r`` rises by ``C+``; whenever it reaches ``-C-`` it emits an OFF event and ``r``
falls by ``C-``. A change of several thresholds in one interval gives several events, each
timed where the linear ramp crosses its level ``r +- k*C``, rounded to the microsecond.

Modelling choices, each a convention of one of the two references:

- **Thresholds** (ESIM, v2e): per-pixel ``C+ ~ N(contrast_threshold_pos, threshold_sigma)``
  and ``C- ~ N(contrast_threshold_neg, threshold_sigma)``, drawn once from the generator at
  construction and clipped below at ``min_threshold`` (ESIM clips at 0.01).
- **Refractory period**: after an emitted event a pixel drops further crossings for
  ``refractory_us``; a dropped crossing still moves the reference, as a real pixel held in reset
  forgets the change it missed. (The alternative, keeping the change pending until the period
  ends, would emit a burst afterwards.)
- **Leak events** (v2e): the reference drifts down by ``leak_rate_hz * C+`` per second, so a
  static pixel emits ON events at ``leak_rate_hz``. The drift is folded into the ramp, so leak
  events are timed within the interval like any other. To keep pixels from firing in lockstep
  (v2e does the same), each pixel starts at a random phase: ``r = L - u * C+``, u ~ U(0, 1),
  only when ``leak_rate_hz > 0``.
- **Shot noise** (v2e): events at ``shot_noise_rate_hz`` per pixel (Poisson), uniform in the
  interval, random polarity, independent of the reference and of the refractory period.

A tiny tolerance (1e-9 of a threshold) counts a change of exactly k thresholds as k crossings
despite float rounding. The first frame only initialises the pixels and yields no events.
Output is sorted by time, ties by pixel (row-major), and is reproducible for a given seed or
generator. Everything is vectorised: events are generated with ``np.repeat`` from per-pixel
crossing counts; only the refractory check loops, over the crossing rank (at most the largest
number of crossings of one pixel in one interval), never over pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgesnn.errors import InputError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE, empty_events

__all__ = ["SimulatorConfig", "EventSimulator"]

#: Fraction of a threshold forgiven when counting crossings, so that float rounding of an exact
#: multiple of C does not lose the last event.
_COUNT_TOLERANCE = 1e-9


@dataclass(frozen=True)
class SimulatorConfig:
    """Parameters of :class:`EventSimulator` (log-intensity units, µs, Hz)."""

    contrast_threshold_pos: float = 0.2
    contrast_threshold_neg: float = 0.2
    threshold_sigma: float = 0.03
    refractory_us: int = 0
    shot_noise_rate_hz: float = 0.0
    leak_rate_hz: float = 0.0
    log_eps: float = 1e-3
    seed: int | None = None
    min_threshold: float = 0.01

    def __post_init__(self) -> None:
        for name in ("contrast_threshold_pos", "contrast_threshold_neg", "log_eps", "min_threshold"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value > 0):
                raise OptionError(f"must be a positive number, got {value!r}", path=name)
        for name in ("threshold_sigma", "shot_noise_rate_hz", "leak_rate_hz"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
                raise OptionError(f"must be a number >= 0, got {value!r}", path=name)
        r = self.refractory_us
        if isinstance(r, bool) or not isinstance(r, int | np.integer) or r < 0:
            raise OptionError(f"must be an integer number of µs >= 0, got {r!r}", path="refractory_us")


class EventSimulator:
    """Turn intensity frames of a ``width`` x ``height`` sensor into events (see the module docstring).

    Parameters
    ----------
    width, height : int
        Sensor geometry in pixels.
    config : SimulatorConfig
        Thresholds, noise and timing parameters.
    rng : numpy.random.Generator, optional
        Source of all randomness; default ``np.random.default_rng(config.seed)``.

    Example
    -------
    >>> sim = EventSimulator(2, 1, SimulatorConfig(threshold_sigma=0.0))
    >>> sim.step(np.full((1, 2), 0.2), 0).size
    0
    >>> ev = sim.step(np.array([[0.2, 0.6]]), 1000)  # right pixel: log change 1.09 = 5 x 0.2
    >>> ev["x"].tolist(), ev["p"].tolist(), ev["t"].tolist()
    ([1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [183, 365, 548, 730, 913])
    """

    def __init__(self, width: int, height: int, config: SimulatorConfig | None = None, *, rng=None) -> None:
        for name, value in (("width", width), ("height", height)):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
                raise OptionError(f"must be a positive integer, got {value!r}", path=name)
        self.width, self.height = int(width), int(height)
        self.config = config if config is not None else SimulatorConfig()
        if rng is not None and not isinstance(rng, np.random.Generator):
            raise OptionError(f"expected a numpy.random.Generator, got {type(rng).__name__}", path="rng")
        self._rng = rng if rng is not None else np.random.default_rng(self.config.seed)
        c = self.config
        shape = (self.height, self.width)
        self._c_pos = np.maximum(self._rng.normal(c.contrast_threshold_pos, c.threshold_sigma, shape), c.min_threshold)
        self._c_neg = np.maximum(self._rng.normal(c.contrast_threshold_neg, c.threshold_sigma, shape), c.min_threshold)
        self.reset()

    @property
    def thresholds(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the per-pixel (C+, C-) thresholds, each of shape (H, W)."""
        return self._c_pos.copy(), self._c_neg.copy()

    def reset(self) -> None:
        """Forget the pixels' state (references, last frame, refractory clocks); thresholds stay."""
        self._ref: np.ndarray | None = None
        self._prev_log: np.ndarray | None = None
        self._prev_t: int | None = None
        self._last_event_t = np.full(self.height * self.width, np.iinfo(np.int64).min // 2, dtype=np.int64)

    # -- one interval ----------------------------------------------------------------------
    def step(self, frame: np.ndarray, t_us: int) -> np.ndarray:
        """Events between the previous frame's time and ``t_us`` (EVENT_DTYPE, sorted by t).

        ``frame`` is an (H, W) array of linear intensities, nominally in [0, 1].
        """
        log_i = self._log_frame(frame)
        t_us = int(t_us)
        if self._prev_t is None:
            self._ref = log_i.copy()
            if self.config.leak_rate_hz > 0:
                self._ref -= self._rng.random(log_i.shape) * self._c_pos
            self._prev_log, self._prev_t = log_i, t_us
            return empty_events()
        if t_us <= self._prev_t:
            raise InputError(f"frame times must increase: {t_us} after {self._prev_t}", path="t_us")
        t0, dt = self._prev_t, t_us - self._prev_t
        pix, t_ev, pol = self._crossings(self._prev_log, log_i, t0, dt)
        noise = self._shot_noise(t0, dt)
        self._prev_log, self._prev_t = log_i, t_us
        if noise is not None:
            pix = np.concatenate((pix, noise[0]))
            t_ev = np.concatenate((t_ev, noise[1]))
            pol = np.concatenate((pol, noise[2]))
        order = np.lexsort((pix, t_ev))  # by time, then pixel; stable for equal keys
        out = np.empty(len(order), dtype=EVENT_DTYPE)
        pix = pix[order]
        out["x"] = pix % self.width
        out["y"] = pix // self.width
        out["p"] = pol[order]
        out["t"] = t_ev[order]
        return out

    def _log_frame(self, frame) -> np.ndarray:
        arr = np.asarray(frame, dtype=np.float64)
        if arr.shape != (self.height, self.width):
            raise InputError(f"expected shape ({self.height}, {self.width}), got {arr.shape}", path="frame")
        if not bool(np.all(np.isfinite(arr))) or bool(np.any(arr < 0)):
            raise InputError("intensities must be finite and >= 0", path="frame")
        return np.log(arr + self.config.log_eps)

    def _crossings(self, log0: np.ndarray, log1: np.ndarray, t0: int, dt: int):
        """Threshold crossings of the interval as flat (pixel, t, p) arrays; updates the references."""
        c = self.config
        ref = self._ref
        c_pos, c_neg = self._c_pos, self._c_neg
        # the leak lowers the reference by `drift` over the interval: fold it into the signal's end
        drift = c_pos * (c.leak_rate_hz * dt * 1e-6) if c.leak_rate_hz > 0 else 0.0
        end = log1 + drift
        up = np.floor(np.maximum(end - ref, 0.0) / c_pos + _COUNT_TOLERANCE).astype(np.int64)
        down = np.floor(np.maximum(ref - end, 0.0) / c_neg + _COUNT_TOLERANCE).astype(np.int64)
        n = (up + down).ravel()  # a pixel crosses one way only: its reference is fixed in the interval
        # the reference moves by every crossing, emitted or dropped by the refractory period
        self._ref = ref + up * c_pos - down * c_neg - drift
        hit = np.flatnonzero(n)
        if not len(hit):
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int8)
        counts = n[hit]
        pix = np.repeat(hit, counts)
        first = np.cumsum(counts) - counts
        rank = np.arange(len(pix)) - np.repeat(first, counts) + 1  # 1..n within each pixel
        sign = np.where(up.ravel()[pix] > 0, 1.0, -1.0)
        step = np.where(sign > 0, c_pos.ravel()[pix], c_neg.ravel()[pix])
        level = ref.ravel()[pix] + sign * rank * step
        start, stop = log0.ravel()[pix], end.ravel()[pix]
        # fraction of the interval where the ramp start -> stop first reaches `level`; 0 if the
        # level was already passed at the interval's start (possible only after a reset of the ramp)
        ahead = (level - start) * sign > 0
        slope = stop - start
        frac = np.zeros(len(pix))
        np.divide(level - start, slope, out=frac, where=ahead)
        np.clip(frac, 0.0, 1.0, out=frac)
        t_ev = t0 + np.rint(frac * dt).astype(np.int64)
        pol = (sign > 0).astype(np.int8)
        if c.refractory_us > 0:
            keep = self._refractory(pix, t_ev, counts, first)
            pix, t_ev, pol = pix[keep], t_ev[keep], pol[keep]
        return pix, t_ev, pol

    def _refractory(self, pix, t_ev, counts, first) -> np.ndarray:
        """Mask of crossings at least ``refractory_us`` after their pixel's previous emitted event."""
        keep = np.zeros(len(pix), dtype=bool)
        last = self._last_event_t
        period = self.config.refractory_us
        # each pass takes the j-th crossing of every pixel that has one: a pixel's crossings are in
        # time order, so the check only depends on earlier ranks
        for j in range(int(counts.max())):
            at = first[counts > j] + j
            p, t = pix[at], t_ev[at]
            ok = t - last[p] >= period
            keep[at[ok]] = True
            last[p[ok]] = t[ok]
        return keep

    def _shot_noise(self, t0: int, dt: int):
        rate = self.config.shot_noise_rate_hz
        if rate <= 0:
            return None
        n_pixels = self.width * self.height
        count = int(self._rng.poisson(rate * dt * 1e-6 * n_pixels))
        pix = self._rng.integers(0, n_pixels, count)
        t_ev = t0 + 1 + self._rng.integers(0, dt, count)  # uniform in (t0, t0 + dt]
        pol = self._rng.integers(0, 2, count).astype(np.int8)
        return pix, t_ev, pol
