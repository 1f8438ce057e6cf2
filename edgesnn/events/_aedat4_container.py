"""The AEDAT 4.0 container, checked in Python before the Rust ``aedat`` decoder reads a byte of it.

Why: aedat 2.3 trusts the file. It reads the IOHeader flatbuffer unchecked, allocates whatever a
packet-size field declares (a 2-4 GB field aborts the process with SIGABRT when that allocation
fails), decompresses LZ4/Zstd packets with no bound on the output, and panics (pyo3's
PanicException, a BaseException, with a Rust backtrace on stderr) on a packet too short to hold a
flatbuffer. Running it in a subprocess would contain an abort but costs a process start and a copy
of every event per file; decoding the packets here would need LZ4 and Zstd, which the standard
library lacks. So this module reads the container's framing itself, with bounds checks, and
aedat is handed only packets it decodes without panicking or allocating beyond the limits:

- the magic, the IOHeader length (limit ``header_bytes``) and the IOHeader flatbuffer: root,
  vtable and fields in bounds, compression 0-4, description valid UTF-8 inside the buffer;
- the XML description, parsed with the standard library (DTDs and entities refused), with the
  structure aedat requires (``dv`` root, ``outInfo`` node, numeric unique stream ids, a known
  ``typeIdentifier``, ``info/sizeX``/``sizeY`` as 16-bit integers for events and frames);
- every packet header (stream id int32, size uint32 as aedat reads it, little-endian): a stream of the description,
  12 <= size <= the bytes left before the file data table (or the end), size <= ``packet_bytes``;
- every payload's framing. Uncompressed: the flatbuffer size prefix and the stream type's file
  identifier. LZ4 and Zstd: the frame and block headers, which give a ceiling on the decompressed
  size (it must stay within ``packet_bytes``) and a floor (at least the 12 bytes of flatbuffer
  header aedat asserts on).

Only headers are read: 8 bytes a packet, plus 12 (uncompressed) or one block header per 64 KiB to
4 MiB of output (compressed). A packet that fails is a :class:`Damage`. In lenient mode the walk
goes on after the packet when its framing holds, or resynchronises on the next plausible packet
header when the header itself is broken.
"""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

from edgesnn import limits
from edgesnn.errors import EventFileError, LimitError

MAGIC = b"#!AER-DAT4.0\r\n"
#: Packet stream types aedat decodes, by the XML ``typeIdentifier`` (also the flatbuffer file identifier).
STREAM_TYPES = {"EVTS": "events", "FRME": "frame", "IMUS": "imus", "TRIG": "triggers"}
COMPRESSIONS = ("none", "lz4", "lz4-high", "zstd", "zstd-high")
#: A size-prefixed flatbuffer starts with its size, its root offset and its 4-byte identifier.
FLATBUFFER_HEADER = 12
_LZ4_MAGIC, _ZSTD_MAGIC = 0x184D2204, 0xFD2FB528
_LZ4_BLOCK_MAX = {4: 64 << 10, 5: 256 << 10, 6: 1 << 20, 7: 4 << 20}
_ZSTD_BLOCK_MAX = 128 << 10
_ZSTD_LEGACY = range(0xFD2FB51E, 0xFD2FB528)  # v0.1-v0.7 frames, which aedat's zstd would also decode


def _skippable(magic: int) -> bool:
    return 0x184D2A50 <= magic <= 0x184D2A5F


@dataclass(frozen=True)
class Container:
    """What the header says: compression, where packets start and end, the streams."""

    compression: int  # index into COMPRESSIONS
    file_data_position: int  # as the IOHeader states it (-1: none)
    data_start: int  # byte offset of the first packet
    data_end: int  # byte offset where packets end (the file data table, or the end of the file)
    header: bytes  # magic + length + IOHeader, as in the file
    streams: dict[int, dict]  # stream id -> {"type", "width", "height", attributes of the XML}


@dataclass(frozen=True)
class Packet:
    """One packet header that passed the checks."""

    index: int  # in file order, counting damaged ones
    offset: int  # byte offset of its 8-byte header
    stream_id: int
    size: int  # payload bytes


@dataclass(frozen=True)
class Damage:
    """A packet that cannot be handed to aedat, and where the walk goes on."""

    kind: str  # "truncated", "bad_packet" or "over_limit" (a key of reader.skipped)
    index: int
    offset: int
    message: str
    resume: int | None  # byte offset of the next packet header to try; None: nothing further
    value: int = 0  # the size over the limit, for "over_limit"


class _Bad(Exception):
    """A payload framing problem: (kind, message)."""

    def __init__(self, kind: str, message: str, value: int = 0) -> None:
        super().__init__(message)
        self.kind, self.value = kind, value


# ------------------------------------------------------------------------------------------ header


def read_container(fd: int, size: int, path: str, *, lenient: bool) -> Container:
    """Check the magic, IOHeader and XML description of an open AEDAT4 file (``fd``, ``size`` bytes)."""
    magic = os.pread(fd, len(MAGIC), 0)
    if magic != MAGIC:
        raise EventFileError(f"not an AEDAT 4.0 file: starts with {magic[:16]!r}, expected {MAGIC!r}", path=path)
    start = len(MAGIC) + 4
    raw = os.pread(fd, 4, len(MAGIC))
    if len(raw) < 4:
        raise EventFileError(f"truncated IOHeader: the file ends at byte {size}, inside its length field", path=path)
    (length,) = struct.unpack("<I", raw)
    if length < 8 or length > size - start:
        raise EventFileError(
            f"truncated IOHeader: its length field at byte {len(MAGIC)} declares {length} bytes, "
            f"{max(size - start, 0)} follow (expected 8 or more, within the file)",
            path=path,
        )
    limits.current().check("header_bytes", length, "AEDAT4 IOHeader", path=path)
    buf = os.pread(fd, length, start)
    compression, fdp, text_at, text = parse_ioheader(buf, start, path)
    streams = parse_description(text, text_at, path)
    data_start = start + length
    data_end = size
    if fdp != -1:
        if data_start <= fdp <= size:
            data_end = fdp
        elif fdp < data_start and not lenient:
            raise EventFileError(
                f"IOHeader field file_data_position = {fdp}: expected -1 or an offset from {data_start} on",
                path=path,
            )
        # Past the end: the file is truncated, which the packet walk reports where it ends.
    return Container(compression, fdp, data_start, data_end, MAGIC + raw + buf, streams)


def parse_ioheader(buf: bytes, base: int, path: str) -> tuple[int, int, int, str]:
    """(compression, file_data_position, byte offset of the description, description) of an IOHeader flatbuffer."""
    table = _FlatTable(buf, base, path, "IOHeader")
    compression = table.scalar(0, "<i", 0, "compression")
    if not 0 <= compression < len(COMPRESSIONS):
        raise EventFileError(
            f"IOHeader field compression = {compression} at byte {base + table.where(0)}: expected 0-4 "
            f"({', '.join(COMPRESSIONS)})",
            path=path,
        )
    fdp = table.scalar(1, "<q", -1, "file_data_position")
    at, raw = table.string(2, "description")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EventFileError(
            f"IOHeader description: byte {base + at + e.start} is not valid UTF-8 ({e.reason})", path=path
        ) from e
    return compression, fdp, base + at, text


class _FlatTable:
    """Bounds-checked access to the root table of one flatbuffer (enough for the IOHeader)."""

    def __init__(self, buf: bytes, base: int, path: str, what: str) -> None:
        self.buf, self.base, self.path, self.what = buf, base, path, what
        root = self._u32(0, "root offset")
        self._need(root, 4, "root table")
        vt = root - struct.unpack_from("<i", buf, root)[0]
        self._need(vt, 4, "vtable")
        vt_len, table_len = struct.unpack_from("<HH", buf, vt)
        if vt_len < 4 or vt_len % 2:
            self._fail(vt, f"vtable length {vt_len}: expected an even number >= 4")
        self._need(vt, vt_len, "vtable")
        self._need(root, max(table_len, 4), "root table")
        self.root, self.vt, self.vt_len, self.table_len = root, vt, vt_len, table_len

    def where(self, field: int) -> int:
        """Offset of field ``field`` in the buffer, or 0 when absent (its default applies)."""
        slot = 4 + 2 * field
        if slot + 2 > self.vt_len:
            return 0
        off = struct.unpack_from("<H", self.buf, self.vt + slot)[0]
        return self.root + off if off else 0

    def scalar(self, field: int, fmt: str, default: int, name: str) -> int:
        at = self.where(field)
        if not at:
            return default
        n = struct.calcsize(fmt)
        if at + n > self.root + self.table_len:
            self._fail(at, f"field {name} lies outside its table")
        self._need(at, n, f"field {name}")
        return struct.unpack_from(fmt, self.buf, at)[0]

    def string(self, field: int, name: str) -> tuple[int, bytes]:
        at = self.where(field)
        if not at:
            self._fail(self.root, f"has no {name}")
        target = at + self._u32(at, f"offset of {name}")
        length = self._u32(target, f"length of {name}")
        self._need(target + 4, length, name)
        return target + 4, self.buf[target + 4 : target + 4 + length]

    def _u32(self, at: int, name: str) -> int:
        self._need(at, 4, name)
        return struct.unpack_from("<I", self.buf, at)[0]

    def _need(self, at: int, n: int, name: str) -> None:
        if at < 0 or at + n > len(self.buf):
            self._fail(max(at, 0), f"{name} ({n} bytes at buffer offset {at}) runs outside the {len(self.buf)} bytes")

    def _fail(self, at: int, message: str) -> None:
        raise EventFileError(f"damaged {self.what} at byte {self.base + at}: {message}", path=self.path)


def parse_description(text: str, at: int, path: str) -> dict[int, dict]:
    """Streams of the XML description (starting at byte ``at`` of the file), checked as aedat requires."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        i = text.find("<!")
        raise EventFileError(
            f"IOHeader description: a DTD at byte {at + len(text[:i].encode())}; expected plain XML", path=path
        )
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        line, column = e.position
        offset = at + _byte_offset(text, line, column)
        raise EventFileError(f"IOHeader description: damaged XML at byte {offset}: {e.msg}", path=path) from e
    if root.tag != "dv":
        raise EventFileError(f"IOHeader description: root element <{root.tag}>, expected <dv>", path=path)
    out_info = next((n for n in root.findall("node") if n.get("name") == "outInfo"), None)
    if out_info is None:
        raise EventFileError('IOHeader description: no <node name="outInfo">, which lists the streams', path=path)
    streams: dict[int, dict] = {}
    for node in out_info.findall("node"):
        sid, stream = _stream(node, path)
        if sid in streams:
            raise EventFileError(f"IOHeader description: stream id {sid} is listed twice", path=path)
        streams[sid] = stream
    if not streams:
        raise EventFileError("IOHeader description: outInfo lists no stream", path=path)
    return streams


def _stream(node: ET.Element, path: str) -> tuple[int, dict]:
    name = node.get("name", "")
    if not (name.isascii() and name.isdigit()) or int(name) >= 1 << 31:
        raise EventFileError(f"IOHeader description: outInfo/{name!r}: expected a stream id 0 to 2^31 - 1", path=path)
    attrs = {a.get("key"): (a.text or "") for a in node.findall("attr")}
    kind = attrs.get("typeIdentifier", "")
    if kind not in STREAM_TYPES:
        raise EventFileError(
            f"IOHeader description: outInfo/{name}/typeIdentifier = {kind!r}: expected one of {sorted(STREAM_TYPES)}",
            path=path,
        )
    stream = {"type": STREAM_TYPES[kind], "identifier": kind, "width": None, "height": None, "attrs": attrs}
    info = next((n for n in node.findall("node") if n.get("name") == "info"), None)
    if info is not None:
        stream["attrs"] = {**attrs, **{a.get("key"): (a.text or "") for a in info.findall("attr")}}
    if kind in ("EVTS", "FRME"):
        if info is None:
            raise EventFileError(f"IOHeader description: outInfo/{name} ({kind}) has no info node", path=path)
        for key, field in (("sizeX", "width"), ("sizeY", "height")):
            value = stream["attrs"].get(key) or ""
            if not (value.isascii() and value.isdigit()) or int(value) > 0xFFFF:  # as aedat parses it: no spaces
                raise EventFileError(
                    f"IOHeader description: outInfo/{name}/info/{key} = {value!r}: expected an integer 0 to 65535",
                    path=path,
                )
            stream[field] = int(value)
    return int(name), stream


def _byte_offset(text: str, line: int, column: int) -> int:
    lines = text.split("\n")
    before = sum(len(s.encode()) + 1 for s in lines[: max(line - 1, 0)])
    current = lines[line - 1] if 0 < line <= len(lines) else ""
    return before + len(current[:column].encode())


# ------------------------------------------------------------------------------------------ packets


def walk(fd: int, c: Container, path: str, *, lenient: bool) -> Iterator[Packet | Damage]:
    """Every packet aedat would read, checked; a :class:`Damage` where one fails (strict: the walk ends there)."""
    pos, index = c.data_start, 0
    while pos < c.data_end:
        item = check_packet(fd, c, pos, index)
        index += 1
        yield item
        if isinstance(item, Packet):
            pos = item.offset + 8 + item.size
        elif lenient and item.resume is not None:
            pos = item.resume
        else:
            return
    if c.file_data_position > c.data_end:
        message = (
            f"the file ends at byte {c.data_end}, before the file data table that the IOHeader places at byte "
            f"{c.file_data_position} (truncated)"
        )
        yield Damage("truncated", index, c.data_end, message, None)


def check_packet(fd: int, c: Container, pos: int, index: int) -> Packet | Damage:
    """The packet whose header is at ``pos``, or what is wrong with it and where to go on."""
    where = f"packet {index} at byte {pos}"
    left = c.data_end - pos - 8
    head = os.pread(fd, 8, pos) if left >= 0 else b""
    if len(head) < 8:
        return Damage("truncated", index, pos, f"{where}: the file ends inside its 8-byte header", None)
    sid, size = struct.unpack("<iI", head)  # aedat reads the size as uint32: 2-4 GB, not negative
    problem = None
    if sid not in c.streams:
        problem = f"stream id {sid} is not in the description (streams {sorted(c.streams)})"
    elif size < FLATBUFFER_HEADER:
        problem = f"stream {sid}, size {size}: expected at least {FLATBUFFER_HEADER} bytes (a flatbuffer header)"
    elif size > left:
        end = "the file data table" if c.data_end < os.fstat(fd).st_size else "the end of the file"
        problem = f"stream {sid} declares {size} bytes, {left} are left before {end}"
    if problem:
        # The header itself is wrong, so the next packet's place is unknown: search for it.
        resume = resync(fd, c, pos + 8)
        kind = "truncated" if size > left and sid in c.streams and resume is None else "bad_packet"
        return Damage(kind, index, pos, f"{where}: {problem}", resume)
    bound = limits.current().packet_bytes
    if size > bound:
        message = f"{where}: stream {sid} declares {size} bytes, over the limit packet_bytes = {bound}"
        return Damage("over_limit", index, pos, message, pos + 8 + size, size)
    try:
        check_payload(fd, c, pos + 8, size, c.streams[sid]["identifier"], bound)
    except _Bad as e:
        return Damage(e.kind, index, pos, f"{where} (stream {sid}, {size} bytes): {e}", pos + 8 + size, e.value)
    return Packet(index, pos, sid, size)


def check_payload(fd: int, c: Container, start: int, size: int, identifier: str, bound: int) -> None:
    """Raise :class:`_Bad` unless the payload's framing is sound and decompresses to 12..``bound`` bytes."""
    kind = COMPRESSIONS[c.compression]
    if kind == "none":
        head = os.pread(fd, FLATBUFFER_HEADER, start)
        prefix = struct.unpack_from("<I", head)[0]
        if prefix + 4 > size:
            raise _Bad("bad_packet", f"flatbuffer size prefix {prefix} runs past the packet")
        if head[8:12] != identifier.encode():
            raise _Bad("bad_packet", f"flatbuffer identifier {head[8:12]!r}, expected {identifier!r}")
        return
    floor, ceiling = (_lz4_bounds if kind.startswith("lz4") else _zstd_bounds)(fd, start, start + size, bound)
    if ceiling > bound:
        raise _Bad(
            "over_limit",
            f"{kind} data may decompress to {ceiling} bytes, over the limit packet_bytes = {bound}",
            ceiling,
        )
    if floor < FLATBUFFER_HEADER:
        raise _Bad("bad_packet", f"{kind} data that may decompress to fewer than {FLATBUFFER_HEADER} bytes")


def _u32_at(fd: int, at: int, end: int, what: str) -> int:
    if at + 4 > end:
        raise _Bad("bad_packet", f"{what} at byte {at} runs past the packet")
    return struct.unpack("<I", os.pread(fd, 4, at))[0]


def _lz4_bounds(fd: int, pos: int, end: int, bound: int) -> tuple[int, int]:
    """(floor, ceiling) of what the LZ4 frames in [pos, end) decompress to."""
    floor = ceiling = frames = 0
    while pos + 4 <= end:
        magic = _u32_at(fd, pos, end, "LZ4 frame magic")
        if _skippable(magic):
            pos += 8 + _u32_at(fd, pos + 4, end, "skippable frame size")
            continue
        if magic != _LZ4_MAGIC:
            if frames == 0:
                raise _Bad("bad_packet", f"LZ4 frame magic 0x{magic:08X} at byte {pos}, expected 0x{_LZ4_MAGIC:08X}")
            break  # trailing bytes: the decoder stops or fails there, producing nothing
        flg, bd = os.pread(fd, 2, pos + 4).ljust(2, b"\0")
        block_max = _LZ4_BLOCK_MAX.get(bd >> 4 & 7)
        if flg >> 6 != 1 or flg & 2 or bd & 0x8F or block_max is None:
            raise _Bad("bad_packet", f"LZ4 frame descriptor 0x{flg:02X} 0x{bd:02X} at byte {pos + 4} is invalid")
        pos += 7 + (8 if flg & 8 else 0) + (4 if flg & 1 else 0)
        first = frames == 0
        while True:
            word = _u32_at(fd, pos, end, "LZ4 block size")
            pos += 4
            if word == 0:
                break
            size = word & 0x7FFFFFFF
            if size > block_max:
                raise _Bad("bad_packet", f"LZ4 block of {size} bytes at byte {pos - 4} exceeds its frame's {block_max}")
            # Every block may fill its frame's block size (real encoders fill all but the last).
            ceiling += block_max
            if first:
                floor += size if word >> 31 else (size - 1) // 2  # an LZ4 sequence yields at least half its bytes
            pos += size + (4 if flg & 0x10 else 0)
            if ceiling > bound:
                return floor, ceiling
        pos += 4 if flg & 4 else 0
        frames += 1
    if pos > end:
        raise _Bad("bad_packet", f"LZ4 data runs {pos - end} bytes past the packet")
    return floor, ceiling


def _zstd_bounds(fd: int, pos: int, end: int, bound: int) -> tuple[int, int]:
    """(floor, ceiling) of what the Zstandard frames in [pos, end) decompress to."""
    floor = ceiling = frames = 0
    while pos + 4 <= end:
        magic = _u32_at(fd, pos, end, "Zstandard frame magic")
        if _skippable(magic):
            pos += 8 + _u32_at(fd, pos + 4, end, "skippable frame size")
            continue
        if magic != _ZSTD_MAGIC:
            if frames == 0 or magic in _ZSTD_LEGACY:
                raise _Bad(
                    "bad_packet", f"Zstandard frame magic 0x{magic:08X} at byte {pos}, expected 0x{_ZSTD_MAGIC:08X}"
                )
            break
        (fhd,) = os.pread(fd, 1, pos + 4) or b"\0"
        if fhd & 0x08:
            raise _Bad("bad_packet", f"Zstandard frame header 0x{fhd:02X} at byte {pos + 4} sets the reserved bit")
        single = fhd >> 5 & 1
        fcs = (1 if single else 0, 2, 4, 8)[fhd >> 6]
        pos += 5 + (0 if single else 1) + (0, 1, 2, 4)[fhd & 3] + fcs
        first = frames == 0
        while True:
            if pos + 3 > end:
                raise _Bad("bad_packet", f"Zstandard block header at byte {pos} runs past the packet")
            head = os.pread(fd, 8, pos).ljust(8, b"\0")
            h = head[0] | head[1] << 8 | head[2] << 16
            last, kind, size = h & 1, h >> 1 & 3, h >> 3
            if kind == 3 or size > _ZSTD_BLOCK_MAX:
                raise _Bad("bad_packet", f"Zstandard block header 0x{h:06X} at byte {pos} is invalid")
            ceiling += _ZSTD_BLOCK_MAX
            if first:
                floor += size if kind < 2 else _zstd_literals(head[3:])
            pos += 3 + (1 if kind == 1 else size)
            if ceiling > bound:
                return floor, ceiling
            if last:
                break
        pos += 4 if fhd & 4 else 0
        frames += 1
    if pos > end:
        raise _Bad("bad_packet", f"Zstandard data runs {pos - end} bytes past the packet")
    return floor, ceiling


def _zstd_literals(b: bytes) -> int:
    """Regenerated size of a compressed block's literals (RFC 8878, 3.1.1.3.1.1): a floor on its output."""
    kind, fmt = b[0] & 3, b[0] >> 2 & 3
    if kind < 2:
        if fmt in (0, 2):
            return b[0] >> 3
        return (b[0] >> 4) + (b[1] << 4) + ((b[2] << 12) if fmt == 3 else 0)
    if fmt < 2:
        return (b[0] >> 4) + ((b[1] & 0x3F) << 4)
    if fmt == 2:
        return (b[0] >> 4) + (b[1] << 4) + ((b[2] & 3) << 12)
    return (b[0] >> 4) + (b[1] << 4) + ((b[2] & 0x3F) << 12)


# ------------------------------------------------------------------------------------------ resync

_WINDOW = 1 << 20


def resync(fd: int, c: Container, start: int) -> int | None:
    """Byte offset of the first plausible packet header at or after ``start``, or None.

    Plausible: a known stream, a size that fits, and a payload whose framing checks (found by
    searching for the payload's first bytes: the LZ4 or Zstd magic, or the flatbuffer identifier).
    """
    kind = COMPRESSIONS[c.compression]
    if kind == "none":
        needles = sorted({s["identifier"].encode() for s in c.streams.values()})
        lead = 16  # identifier at payload byte 8, payload at header byte 8
    else:
        needles = [struct.pack("<I", _LZ4_MAGIC if kind.startswith("lz4") else _ZSTD_MAGIC)]
        lead = 8
    pos = start
    while pos + lead < c.data_end:
        chunk = os.pread(fd, min(_WINDOW, c.data_end - pos) + lead, pos)
        hits = sorted(i for n in needles for i in _find_all(chunk, n) if i >= lead)
        for i in hits:
            q = pos + i - lead
            if q < start:
                continue
            if plausible(fd, c, q):
                return q
        pos += _WINDOW
    return None


def plausible(fd: int, c: Container, pos: int) -> bool:
    """True if the packet at ``pos`` has a known stream, a size that fits and a payload whose framing checks."""
    head = os.pread(fd, 8, pos)
    if len(head) < 8:
        return False
    sid, size = struct.unpack("<iI", head)
    bound = limits.current().packet_bytes
    if sid not in c.streams or not FLATBUFFER_HEADER <= size <= min(c.data_end - pos - 8, bound):
        return False
    try:
        check_payload(fd, c, pos + 8, size, c.streams[sid]["identifier"], bound)
    except _Bad:
        return False
    return True


def _find_all(data: bytes, needle: bytes) -> Iterator[int]:
    i = data.find(needle)
    while i >= 0:
        yield i
        i = data.find(needle, i + 1)


def raise_for(d: Damage, path: str) -> None:
    """Raise the strict-mode error for a damage: LimitError for a limit, EventFileError otherwise."""
    if d.kind == "over_limit":
        raise LimitError(d.message, limit="packet_bytes", value=d.value, path=path)
    raise EventFileError(d.message, path=path)
