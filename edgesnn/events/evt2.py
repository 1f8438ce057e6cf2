"""Prophesee EVT 2.0 (.raw): 32-bit words. Reader ``open_evt2`` and writer ``write_evt2``.

CD words carry x, y and the 6 low timestamp bits; EVT_TIME_HIGH carries bits 33..6, so
``t = loop·2^34 + TH·2^6 + ts``. A time-high drop of more than half its 28-bit range is a wrap
(loop + 1), a smaller drop is damage. EXT_TRIGGER, IMU and OTHERS words (with their CONTINUED
words) carry no CD events and are skipped. Files without geometry in the header are taken to be
Gen3 (640x480), see io.py. ``time_shift=True`` subtracts the first time high, as OpenEB does.

Time offset: a header key ``% t0 N`` (DAT: ``% T0 N``), faery's key (OpenEB defines none, see
_header.py) is added back to every timestamp. ``write_evt2`` sets it to the first event's time
when that is 2^33 µs or later (a first time high cannot step there from zero), so an
epoch-stamped recording costs no filler words; after it the 34-bit time base wraps every 2^34 µs
(~4.77 h), and the writer keeps every step of the 28-bit counter under half its range so each wrap
decodes as one. ``time_shift=True`` ignores the offset, as OpenEB does.
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import EventFileError
from edgesnn.events._encode import checked_events, raw_header, time_high_steps, time_offset_for, write_file
from edgesnn.events._header import raw_info, read_header, time_offset
from edgesnn.events._kinds import EVT2, P_TIME_SHIFT
from edgesnn.events._wordstream import WordStreamReader, resolve_geometry


def open_evt2(path, *, lenient=False, geometry=None, chunk_events=1 << 20, time_shift=False, native=None):
    """Open an EVT 2.0 file for streaming (``native=False`` forces the numpy decoder)."""
    header = read_header(path)
    info = raw_info(header, path, lenient=lenient)
    if info.format not in (None, "evt2"):
        raise EventFileError(f"header says {info.format}, not EVT 2.0", path=str(path))
    geometry, source, check = resolve_geometry(info.geometry, geometry, gen3_default=True)
    offset = 0 if time_shift else time_offset(header, path, lenient=lenient)
    return WordStreamReader(
        path,
        fmt="evt2",
        kind=EVT2,
        data_offset=header.length,
        flags=P_TIME_SHIFT if time_shift else 0,
        geometry=geometry,
        check_geometry=check,
        metadata={
            "header": header.as_dict(),
            "geometry_source": source,
            "time_shift": bool(time_shift),
            "time_offset_us": offset,
        },
        lenient=lenient,
        chunk_events=chunk_events,
        native=native,
        time_offset=offset,
    )


def write_evt2(path, events, *, geometry=None) -> None:
    """Write ``events`` (EVENT_DTYPE, t non-decreasing, µs) as an EVT 2.0 file.

    One CD word per event, a time-high word whenever ``t >> 6`` changes. ``geometry`` defaults to
    (max x + 1, max y + 1). A first time of 2^33 µs or later (epoch-stamped) goes to the header as
    ``% t0`` and the words count from it.
    """
    x, y, p, t, geometry = checked_events(events, geometry, max_coord=(2047, 2047), what="EVT 2.0")
    offset = time_offset_for(t, 1 << 33)
    write_file(path, raw_header("2.0", "EVT2", geometry, offset), encode_evt2(x, y, p, t - offset))


def encode_evt2(x, y, p, t) -> np.ndarray:
    """EVT 2.0 words (uint32) for checked int64 event columns."""
    n = len(t)
    th_ev, th_val = time_high_steps(t >> 6, (1 << 27) - 1)
    out = np.empty(n + len(th_ev), np.uint32)
    # Word j of event i sits after the i events and the time highs written before it.
    ev_pos = np.arange(n) + np.searchsorted(th_ev, np.arange(n), side="right")
    th_pos = np.arange(len(th_ev)) + th_ev
    out[ev_pos] = (p << 28) | ((t & 63) << 22) | (x << 11) | y
    out[th_pos] = (0x8 << 28) | (th_val & 0x0FFFFFFF)
    return out
