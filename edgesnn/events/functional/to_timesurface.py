"""Global time surfaces (Lagorce et al. 2016, HOTS), tonic's ``ToTimesurface``: (N, P, H, W) float64.

The stream is cut into time windows of ``dt_us`` (stride ``dt_us - overlap_us``). A memory of
shape (P, H, W) holds the time of each pixel's latest event, -inf before any; after window i
the surface is ``exp(-(t_eval_i - memory) / tau_us)``, so pixels that never fired read 0.

Windows follow :func:`edgesnn.events.functional.to_frame.to_frame`'s time windows, with the
same default/tonic difference (by default the recording ends 1 µs after its last event, so
``include_incomplete=True`` keeps an event exactly at a window end). The evaluation time
differs too: tonic evaluates window i at ``t_first + (i + 1) * dt``, which is the window's end
only without overlap; by default the surface is evaluated at the window's end,
``t_first + i * stride + dt``. ``tonic_compat=True`` reproduces tonic 1.7.0 exactly. An empty
input gives one all-zero surface (tonic fails on it).
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import OptionError
from edgesnn.events.functional._repr_checks import check_events, sensor_dims
from edgesnn.events.functional.to_frame import channels_for, frame_windows

__all__ = ["to_timesurface"]


def to_timesurface(
    events: np.ndarray,
    *,
    sensor_size,
    dt_us: float,
    tau_us: float,
    overlap_us: float = 0,
    include_incomplete: bool = False,
    tonic_compat: bool = False,
) -> np.ndarray:
    """Time surfaces after each window: array of shape (N, P, H, W), float64, values in [0, 1].

    Parameters
    ----------
    events : ndarray of EVENT_DTYPE
        Events sorted by time.
    sensor_size : (W, H, P)
        As tonic. With P = 2, OFF events write channel 0 and ON events channel 1.
    dt_us : float
        Window length in µs.
    tau_us : float
        Decay time constant in µs.
    overlap_us : float, default 0
        Overlap of consecutive windows in µs.
    include_incomplete : bool, default False
        Keep the last, shorter window.
    tonic_compat : bool, default False
        Reproduce tonic 1.7.0's numbers (see the module docstring).
    """
    w, h, p = sensor_dims(sensor_size)
    if not tau_us > 0:
        raise OptionError(f"must be positive, got {tau_us!r}", path="tau_us")
    if not dt_us > 0:
        raise OptionError(f"must be positive, got {dt_us!r}", path="dt_us")
    check_events(events, w, h)
    if len(events) == 0:
        return np.zeros((1, p, h, w))
    begins, ends = frame_windows(
        events,
        time_window_us=dt_us,
        overlap=overlap_us,
        include_incomplete=include_incomplete,
        tonic_compat=tonic_compat,
    )
    t_first = events["t"][0]
    stride = dt_us - overlap_us
    channel = channels_for(events["p"], p, tonic_compat=tonic_compat)
    memory = np.full((p, h, w), -np.inf)
    surfaces = np.empty((len(begins), p, h, w))
    for i, (b, e) in enumerate(zip(begins, ends, strict=True)):
        # fancy assignment keeps the last write per pixel: the latest event, as events are sorted
        memory[channel[b:e], events["y"][b:e], events["x"][b:e]] = events["t"][b:e]
        t_eval = (i + 1) * dt_us + t_first if tonic_compat else t_first + i * stride + dt_us
        np.exp(-(t_eval - memory) / tau_us, out=surfaces[i])
    return surfaces
