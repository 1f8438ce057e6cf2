"""The ASCII header of Prophesee RAW and DAT files: ``% key value`` lines, optionally closed by ``% end``.

The header ends after ``% end`` or before the first line that does not start with ``%``
(docs.prophesee.ai, RAW file format). RAW keys that matter: ``evt`` (2.0, 2.1, 3.0), ``format``
(``EVT3;height=720;width=1280[;endianness=legacy]``) and ``geometry`` (``1280x720``). DAT
headers carry ``Version``, ``Width`` and ``Height``, then two bytes: event type and event size.

``t0`` (RAW; ``T0`` in DAT; the key faery writes and reads): microseconds to add to every decoded
timestamp. edgesnn's writers set it to the first event's time when that time lies beyond what the
format reaches from zero without filler time-high words (epoch-stamped recordings), so the payload
starts near zero; faery writes the same key by default and adds it back when reading, so both read
absolute times from each other's files. OpenEB/Metavision defines no time-offset key (its RAW
header keys are ``date``, ``evt``, ``format``, ``geometry``, ``*_integrator_name``, ``plugin_name``,
``serial_number``, ...) and keeps unknown keys without applying them: it reads such files with
times relative to the offset.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from edgesnn import limits
from edgesnn.errors import EventFileError

log = logging.getLogger("edgesnn.events")

#: The default of ``limits.header_bytes``: headers longer than it are taken as a damaged file.
MAX_HEADER_BYTES = 1 << 20

_EVT_VERSIONS = {"2.0": "evt2", "2": "evt2", "2.1": "evt21", "3.0": "evt3", "3": "evt3"}
_FORMAT_NAMES = {"EVT2": "evt2", "EVT21": "evt21", "EVT3": "evt3"}
_GEOMETRY = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")

#: Header key of the time offset (µs) added to every decoded timestamp; see the module docstring.
TIME_OFFSET_KEY = "t0"  # faery's key (RAW: "t0", DAT: "T0"; keys are case-insensitive)
#: Largest offset accepted: decoded times (offset + up to 2^62 µs of payload time) stay in int64.
MAX_TIME_OFFSET = 1 << 62


@dataclass(frozen=True)
class Header:
    """Parsed ``%`` header: its fields in file order, the line of each (1-based) and its length in bytes."""

    fields: tuple[tuple[str, str], ...]
    length: int
    lines: tuple[int, ...] = ()

    def get(self, key: str, *, lenient: bool = False, path=None) -> str | None:
        """The value of ``key`` (case-insensitive), or None.

        A key given twice with different values is a damaged or spliced header: strict mode
        raises naming both values and their lines; lenient mode takes the first (as a reader
        stopping at the first answer would) and logs a warning.
        """
        hits = [(v, self._line(i)) for i, (k, v) in enumerate(self.fields) if k.lower() == key.lower()]
        if not hits:
            return None
        first, line = hits[0]
        other = next(((v, n) for v, n in hits[1:] if v.strip() != first.strip()), None)
        if other is not None:
            message = (
                f"header key {key!r} is given twice with different values: {first!r} (line {line}) and "
                f"{other[0]!r} (line {other[1]})"
            )
            if not lenient:
                raise EventFileError(message, path=None if path is None else str(path))
            log.warning("%s: %s; lenient: using the first", path, message)
        return first

    def _line(self, i: int) -> int:
        return self.lines[i] if i < len(self.lines) else i + 1

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.fields}


@dataclass(frozen=True)
class RawInfo:
    """What a RAW header says about its payload."""

    format: str | None  # "evt2" | "evt21" | "evt3" | None when the header does not say
    geometry: tuple[int, int] | None  # (width, height)
    legacy: bool  # EVT 2.1 with swapped 32-bit halves (IMX636)


def parse_header(head: bytes, path) -> Header:
    """Parse the ``%`` lines at the start of ``head`` (the file's first bytes)."""
    fields: list[tuple[str, str]] = []
    lines: list[int] = []
    pos = line_no = 0
    while pos < len(head) and head[pos : pos + 1] == b"%":
        line_no += 1
        end = head.find(b"\n", pos)
        if end < 0:
            if not _is_text(head[pos + 1 :]):
                break
            bound = limits.current().header_bytes
            if len(head) >= bound:
                raise EventFileError(
                    f"header line at byte {pos} runs past the limit header_bytes = {bound}", path=str(path)
                )
            raise EventFileError(f"header line at byte {pos} is not terminated by a newline", path=str(path))
        raw = head[pos + 1 : end]
        if not _is_text(raw):
            # Binary data that happens to start with '%' (an EVT2 word can): the header ended.
            break
        line = raw.decode("ascii").strip()
        pos = end + 1
        if line == "end":
            break
        if not line:
            continue
        key, _, value = line.partition(" ")
        fields.append((key, value.strip()))
        lines.append(line_no)
    return Header(tuple(fields), pos, tuple(lines))


#: Bytes a header line may hold: printable ASCII, DEL (not last), tab and carriage return.
_TEXT_BYTES = bytes(range(0x20, 0x80)) + b"\t\r"


def _is_text(raw: bytes) -> bool:
    # translate() deletes the allowed bytes in C; a per-byte Python check cost 0.1 ms per header.
    return not raw.translate(None, _TEXT_BYTES) and raw[-1:] != b"\x7f"


def read_header(path) -> Header:
    """Read and parse the header of the file at ``path``."""
    try:
        with open(path, "rb") as f:
            head = f.read(limits.current().header_bytes)
    except OSError as e:
        raise EventFileError(f"cannot read: {e.strerror or e}", path=str(path)) from e
    return parse_header(head, path)


def raw_info(header: Header, path, *, lenient: bool = False) -> RawInfo:
    """Interpret a RAW header: EVT version, geometry, EVT 2.1 byte order (conflicting keys: see ``Header.get``)."""
    fmt_evt = None
    evt = header.get("evt", lenient=lenient, path=path)
    if evt is not None:
        fmt_evt = _EVT_VERSIONS.get(evt.strip())
        if fmt_evt is None:
            raise EventFileError(f"header key 'evt': expected 2.0, 2.1 or 3.0, got {evt!r}", path=str(path))
    fmt_format = None
    legacy = False
    geometry = None
    fmt = header.get("format", lenient=lenient, path=path)
    if fmt is not None:
        name, *options = (s.strip() for s in fmt.split(";"))
        fmt_format = _FORMAT_NAMES.get(name.upper())
        if fmt_format is None:
            raise EventFileError(f"header key 'format': expected EVT2, EVT21 or EVT3, got {name!r}", path=str(path))
        opts = dict(o.partition("=")[::2] for o in options if o)
        legacy = opts.get("endianness", "").strip().lower() == "legacy"
        if "width" in opts or "height" in opts:
            geometry = _size(opts.get("width"), opts.get("height"), "format", path)
    if fmt_evt and fmt_format and fmt_evt != fmt_format:
        raise EventFileError(f"header keys disagree: evt {evt!r} but format {fmt!r}", path=str(path))
    geo = header.get("geometry", lenient=lenient, path=path)
    if geo is not None:
        m = _GEOMETRY.match(geo)
        if m is None:
            raise EventFileError(f"header key 'geometry': expected WIDTHxHEIGHT, got {geo!r}", path=str(path))
        g = _size(m.group(1), m.group(2), "geometry", path)
        if geometry is not None and g != geometry:
            raise EventFileError(f"header keys disagree: format gives {geometry}, geometry gives {g}", path=str(path))
        geometry = g
    return RawInfo(fmt_format or fmt_evt, geometry, legacy)


def dat_info(header: Header, path, *, lenient: bool = False) -> tuple[int, tuple[int, int] | None]:
    """(version, geometry) of a DAT header; version 2 when the header does not say (as faery)."""
    version = 2
    v = header.get("Version", lenient=lenient, path=path)
    if v is not None:
        if v.strip() not in ("1", "2"):
            raise EventFileError(f"header key 'Version': expected 1 or 2, got {v!r}", path=str(path))
        version = int(v)
    w, h = header.get("Width", lenient=lenient, path=path), header.get("Height", lenient=lenient, path=path)
    geometry = _size(w, h, "Width/Height", path) if (w is not None or h is not None) else None
    return version, geometry


def time_offset(header: Header, path, *, lenient: bool = False) -> int:
    """The ``t0`` value of a RAW or DAT header, 0 when the key is absent."""
    value = header.get(TIME_OFFSET_KEY, lenient=lenient, path=path)
    if value is None:
        return 0
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_TIME_OFFSET:
        raise EventFileError(
            f"header key {TIME_OFFSET_KEY!r}: expected a whole number of µs in [0, 2^62], got {value!r}",
            path=str(path),
        )
    return int(text)


def sniff_prophesee(head: bytes, path, *, lenient: bool = False) -> str | None:
    """'evt2' | 'evt21' | 'evt3' | 'dat' from a ``%`` header, or None if it names no format."""
    header = parse_header(head, path)
    info = raw_info(header, path, lenient=lenient)  # a broken Prophesee header gets its own error
    if info.format is not None:
        return info.format
    if Path(path).suffix.lower() == ".dat" or header.get("Version", lenient=True) is not None:
        return "dat"
    return None


def _size(w, h, key, path) -> tuple[int, int]:
    try:
        width, height = int(str(w).strip()), int(str(h).strip())
    except ValueError as e:
        raise EventFileError(
            f"header key {key!r}: width and height must be integers, got {w!r}, {h!r}", path=str(path)
        ) from e
    if width < 1 or height < 1:
        raise EventFileError(
            f"header key {key!r}: width and height must be positive, got {width}x{height}", path=str(path)
        )
    return width, height
