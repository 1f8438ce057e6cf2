"""Prophesee EVT 2.1 (.raw): 64-bit words, a 32-pixel validity mask per word. Reader ``open_evt21``.

``t = loop·2^34 + TH·2^6 + ts`` as in EVT 2.0; a CD word emits (x_base + i, y) for each set bit i
of its low 32 bits. Byte order: GenX320 writes each word as one little-endian u64; IMX636 streams,
marked ``endianness=legacy`` in the header's ``format`` key, write two little-endian u32 halves,
high half first (OpenEB ``Evt21LegacyRaw``). ``legacy=`` overrides the header. No package on PyPI
writes EVT 2.1, so there is no writer here either; tests build streams by hand. A header key
``% t0 N`` is added back to every timestamp as in EVT 2.0 (``time_shift=True`` ignores it).
"""

from __future__ import annotations

from edgesnn.errors import EventFileError
from edgesnn.events._header import raw_info, read_header, time_offset
from edgesnn.events._kinds import EVT21, P_LEGACY, P_TIME_SHIFT
from edgesnn.events._wordstream import WordStreamReader, resolve_geometry


def open_evt21(path, *, lenient=False, geometry=None, chunk_events=1 << 20, time_shift=False, legacy=None, native=None):
    """Open an EVT 2.1 file for streaming; byte order from the header unless ``legacy`` is given."""
    header = read_header(path)
    info = raw_info(header, path, lenient=lenient)
    if info.format not in (None, "evt21"):
        raise EventFileError(f"header says {info.format}, not EVT 2.1", path=str(path))
    legacy = info.legacy if legacy is None else bool(legacy)
    geometry, source, check = resolve_geometry(info.geometry, geometry)
    offset = 0 if time_shift else time_offset(header, path, lenient=lenient)
    return WordStreamReader(
        path,
        fmt="evt21",
        kind=EVT21,
        data_offset=header.length,
        flags=(P_TIME_SHIFT if time_shift else 0) | (P_LEGACY if legacy else 0),
        geometry=geometry,
        check_geometry=check,
        metadata={
            "header": header.as_dict(),
            "geometry_source": source,
            "time_shift": bool(time_shift),
            "endianness": "legacy" if legacy else "little",
            "time_offset_us": offset,
        },
        lenient=lenient,
        chunk_events=chunk_events,
        native=native,
        time_offset=offset,
    )
