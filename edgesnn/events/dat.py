"""Prophesee DAT (.dat) CD files. Reader ``open_dat`` and writer ``write_dat``.

After the ``%`` header come two bytes, event type (0x0C EventCD, 0x00 Event2d) and event size (8),
then 8-byte little-endian records: a u32 timestamp in µs and a u32 packing x, y and polarity —
v2: x bits 0-13, y bits 14-27, polarity bits 28-31; v1: x bits 0-8, y bits 9-16, polarity bit 17.
A polarity field above 1 reads as ON (faery clips the same way). The 32-bit timestamp wraps after
about 71.6 minutes: a drop of more than 2^31 µs is a wrap, a smaller one is damage.

Time offset: a header key ``% t0 N`` (DAT: ``% T0 N``), faery's key (OpenEB defines none, see
_header.py) is added back to every timestamp. ``write_dat`` sets it to the first event's time when
that is 2^32 µs or later (epoch-stamped recordings), so the records count from zero; a span past
2^32 µs after the offset is written with wraps, and refused (OptionError naming the file and the
span) when a gap of 2^31 µs or more in it could not be told from a wrap.
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import EventFileError, OptionError
from edgesnn.events._encode import checked_events, time_offset_for, write_file
from edgesnn.events._header import TIME_OFFSET_KEY, dat_info, read_header, time_offset
from edgesnn.events._kinds import DAT, P_DAT_V1
from edgesnn.events._wordstream import WordStreamReader, resolve_geometry

#: Event type codes that hold CD events in the 8-byte layout.
CD_TYPES = {0x0C: "EventCD", 0x00: "Event2d"}


def open_dat(path, *, lenient=False, geometry=None, chunk_events=1 << 20, native=None):
    """Open a DAT file of CD events for streaming (``native=False`` forces the numpy decoder)."""
    header = read_header(path)
    version, header_geometry = dat_info(header, path, lenient=lenient)
    with open(path, "rb") as f:
        f.seek(header.length)
        type_size = f.read(2)
    if len(type_size) < 2:
        raise EventFileError(f"file ends at byte {header.length} before the event type and size bytes", path=str(path))
    ev_type, ev_size = type_size
    if ev_type not in CD_TYPES or ev_size != 8:
        raise EventFileError(
            f"event type 0x{ev_type:02X} of size {ev_size} at byte {header.length}: expected CD events "
            f"(type 0x0C or 0x00) of 8 bytes",
            path=str(path),
        )
    geometry, source, check = resolve_geometry(header_geometry, geometry)
    offset = time_offset(header, path, lenient=lenient)
    return WordStreamReader(
        path,
        fmt="dat",
        kind=DAT,
        data_offset=header.length + 2,
        flags=P_DAT_V1 if version == 1 else 0,
        geometry=geometry,
        check_geometry=check,
        metadata={
            "header": header.as_dict(),
            "geometry_source": source,
            "version": version,
            "event_type": CD_TYPES[ev_type],
            "time_offset_us": offset,
        },
        lenient=lenient,
        chunk_events=chunk_events,
        native=native,
        time_offset=offset,
    )


def write_dat(path, events, *, geometry=None, version=2) -> None:
    """Write ``events`` (EVENT_DTYPE, t non-decreasing, µs) as a DAT file of CD events (v2 or v1).

    A first time of 2^32 µs or later (epoch-stamped) goes to the header as ``% t0``
    and the 32-bit record times count from it.
    """
    if version not in (1, 2):
        raise OptionError(f"version: expected 1 or 2, got {version!r}")
    limits = (16383, 16383) if version == 2 else (511, 255)
    x, y, p, t, (w, h) = checked_events(events, geometry, max_coord=limits, what=f"DAT v{version}")
    offset = time_offset_for(t, 1 << 32)
    t = t - offset
    _check_wraps(t, offset, path)
    packed = (x | (y << 14) | (p << 28)) if version == 2 else (x | (y << 9) | (p << 17))
    rec = np.empty((len(t), 2), np.uint32)
    rec[:, 0] = t & 0xFFFFFFFF
    rec[:, 1] = packed
    header = (
        f"% Data file containing CD events.\n% Version {version}\n% Width {w}\n% Height {h}\n"
        f"% integrator_name edgesnn\n" + (f"% {TIME_OFFSET_KEY.upper()} {offset}\n" if offset else "")
    ).encode("ascii") + bytes([0x0C, 8])
    write_file(path, header, rec.astype("<u4"))


def _check_wraps(t, offset, path) -> None:
    """Refuse times (after the offset) whose 32-bit wraps a reader could not count."""
    if len(t) < 2 or t[-1] < 1 << 32:
        return  # no wrap: forward gaps of any size read back as they are
    gaps = np.flatnonzero(np.diff(t) >= 1 << 31)
    if len(gaps):
        i = int(gaps[0]) + 1
        span = int(t[-1] - t[0])
        raise OptionError(
            f"DAT stores 32-bit µs timestamps: the events span {span} µs ({span / 6e7:.1f} min) from the "
            f"time offset {offset} µs, past 2^32 µs, and the gap of {int(t[i] - t[i - 1])} µs before event {i} "
            f"is 2^31 µs or more, which a reader takes for a wrap; write EVT 2.0/3.0 or split the recording",
            path=str(path),
        )
