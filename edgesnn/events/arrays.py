"""Event arrays stored by other tools: .npy, .npz, HDF5 and CSV readers, and an .npz writer.

Accepted layouts (field or column names are matched case-insensitively):

- **x**: ``x``; **y**: ``y``; **p**: ``p``, ``polarity``, ``pol`` or ``on``; **t**: ``t``,
  ``ts``, ``timestamp`` or ``timestamps`` (µs). Any integer widths; floats only when every
  value is whole. Polarity may be 0/1, bool or -1/+1 (-1 becomes OFF = 0).
- **.npy**: a structured array with those fields, or a 2-D ``(N, 4)`` array with ``columns=``
  naming its columns. Memory-mapped, so any size streams.
- **.npz**: member ``events`` (or ``npz_key=``), else the single structured member, else
  separate ``x``/``y``/``p``/``t`` members. Uncompressed members (``np.savez``) are
  memory-mapped in place; compressed ones (``np.savez_compressed``) are decompressed as a
  stream, so memory stays bounded but ``seek_time`` scans. Geometry from a ``geometry`` or
  ``sensor_size`` member, or ``width``/``height`` members.
- **HDF5** (h5py): a compound dataset (``events``, Metavision's ``CD/events``, or the only
  one in the file), or a group with x/y/p/t datasets (the Prophesee/RVT ``events/{x,y,p,t}``
  layout), or such datasets at the root; ``hdf5_key=`` picks one. Read slice by slice.
  Geometry from ``width``/``height`` attributes or scalar datasets beside the events.
  Filters such as Blosc or ECF need ``hdf5plugin``, imported when installed.
- **CSV**: ``t,x,y,p`` by default; a header line, when present, gives the order;
  ``columns=`` overrides both. Comma, semicolon, tab or whitespace separated; ``#`` lines
  skipped. Read ``chunk_events`` lines at a time; ``seek_time`` scans.

Every reader yields EVENT_DTYPE chunks of at most ``chunk_events`` events and checks, chunk by
chunk, that timestamps never decrease and coordinates fit uint16 (and the geometry, when
known). A violation raises :class:`~edgesnn.errors.EventFileError` naming the file and the
event index (CSV: the line); with ``lenient=True`` the event is dropped and counted in
``reader.skipped``. ``seek_time`` binary-searches memory-mapped and HDF5 data (sorted order is
assumed there and verified as chunks are read) and scans streamed data.
"""

from __future__ import annotations

import bisect
import io
import itertools
import logging
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from edgesnn.errors import EventFileError, MissingDependencyError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE, empty_events
from edgesnn.events.io import EventReader

log = logging.getLogger("edgesnn.events.arrays")

_ALIASES = {
    "x": ("x",),
    "y": ("y",),
    "p": ("p", "polarity", "pol", "on"),
    "t": ("t", "ts", "timestamp", "timestamps"),
}
_EXTENSIONS = {
    ".npy": "npy",
    ".npz": "npz",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".hdf": "hdf5",
    ".csv": "csv",
    ".txt": "csv",
}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def _match_names(names) -> dict[str, str] | None:
    """Map x/y/p/t to the matching names in ``names``; None when any is missing."""
    lower = {str(n).lower(): n for n in names}
    found = {}
    for canon, aliases in _ALIASES.items():
        hit = next((lower[a] for a in aliases if a in lower), None)
        if hit is None:
            return None
        found[canon] = hit
    return found


def _require_names(names, where: str, path) -> dict[str, str]:
    found = _match_names(names)
    if found is None:
        expected = "; ".join(f"{c}: {'/'.join(a)}" for c, a in _ALIASES.items())
        raise EventFileError(f"{where} has fields {sorted(map(str, names))}, expected {expected}", path=str(path))
    return found


def _columns_option(columns, width: int | None = None) -> tuple[str, ...]:
    cols = tuple(str(c).lower() for c in columns)
    found = _match_names(cols)
    if found is None or (width is not None and len(cols) != width):
        raise OptionError(
            f"must name x, y, p and t once each{'' if width is None else f' for {width} columns'}, got {columns!r}",
            path="columns",
        )
    return cols


# --------------------------------------------------------------------------- column sources


class _RandomAccess:
    """Columns that can be sliced anywhere: memory-mapped arrays or HDF5 datasets."""

    sequential = False

    def __init__(self, n: int, read: Callable[[int, int], dict], t_at: Callable[[int], int], where: str) -> None:
        self.n, self.read, self.t_at, self.where = n, read, t_at, where


def _structured_access(arr, names: dict[str, str], where: str) -> _RandomAccess:
    def read(a: int, b: int) -> dict:
        block = arr[a:b]
        return {c: np.asarray(block[f]) for c, f in names.items()}

    return _RandomAccess(len(arr), read, lambda i: int(arr[i][names["t"]]), where)


def _separate_access(cols: dict, where: str, path) -> _RandomAccess:
    lengths = {c: len(a) for c, a in cols.items()}
    if len(set(lengths.values())) != 1:
        raise EventFileError(f"{where}: the x/y/p/t arrays differ in length: {lengths}", path=str(path))

    def read(a: int, b: int) -> dict:
        return {c: np.asarray(arr[a:b]) for c, arr in cols.items()}

    return _RandomAccess(lengths["t"], read, lambda i: int(cols["t"][i]), where)


def _two_d_access(arr, columns: tuple[str, ...], where: str) -> _RandomAccess:
    index = {c: columns.index(name) for c, name in _match_names(columns).items()}

    def read(a: int, b: int) -> dict:
        block = np.asarray(arr[a:b])
        return {c: block[:, j] for c, j in index.items()}

    return _RandomAccess(len(arr), read, lambda i: int(arr[i, index["t"]]), where)


def _array_access(arr, where: str, path, columns) -> _RandomAccess:
    """Random access to an array-like that is structured, or 2-D with ``columns`` named."""
    if arr.dtype.names:
        return _structured_access(arr, _require_names(arr.dtype.names, where, path), where)
    if len(arr.shape) == 2 and columns is not None:
        return _two_d_access(arr, _columns_option(columns, arr.shape[1]), where)
    raise _layout_error(where, arr.dtype, arr.shape, path)


def _layout_error(where: str, dtype, shape, path) -> EventFileError:
    return EventFileError(
        f"{where} is a plain {dtype} array of shape {tuple(shape)}; pass columns=('t', 'x', 'y', 'p') "
        "(in the file's order) to read a 2-D array, or store a structured array",
        path=str(path),
    )


class _Sequential:
    """Columns that can only be read front to back (compressed .npz members, CSV text)."""

    sequential = True

    def __init__(self, blocks: Callable[[], Iterator[tuple[dict, int]]], where: str) -> None:
        # blocks() restarts from the beginning; it yields (columns, index of the first row).
        self.blocks, self.where = blocks, where


# --------------------------------------------------------------------------- the reader


class ArrayFileReader(EventReader):
    """Reads events from a .npy/.npz/HDF5/CSV file in EVENT_DTYPE chunks (see the module doc)."""

    def __init__(
        self,
        path,
        fmt: str,
        source,
        *,
        geometry: tuple[int, int] | None,
        metadata: dict,
        lenient: bool,
        chunk_events: int,
        closers: tuple = (),
    ) -> None:
        self.path = Path(path)
        self.format = fmt
        self.geometry = geometry
        self.metadata = metadata
        self.skipped: dict[str, int] = {}
        self.lenient = lenient
        self.chunk_events = chunk_events
        self._source = source
        self._closers = closers
        self._pos = 0
        self._seek_t: int | None = None
        self._last_t: int | None = None
        self._blocks: Iterator | None = None

    # -- EventReader API
    def chunks(self) -> Iterator[np.ndarray]:
        """Yield EVENT_DTYPE chunks from the current position (the start, or where seek_time put it) to the end."""
        src = self._source
        if not src.sequential:
            while self._pos < src.n:
                a, b = self._pos, min(self._pos + self.chunk_events, src.n)
                events = self._convert(src.read(a, b), a)
                self._pos = b
                if len(events):
                    yield events
            return
        if self._blocks is None:
            self._blocks = src.blocks()
        for cols, first in self._blocks:
            events = self._convert(cols, first)
            if self._seek_t is not None:
                if not len(events) or events["t"][-1] < self._seek_t:
                    continue
                events = events[int(np.argmax(events["t"] >= self._seek_t)) :]
                self._seek_t = None
            if len(events):
                yield events

    def read_all(self) -> np.ndarray:
        """Every remaining event as one array."""
        parts = list(self.chunks())
        return np.concatenate(parts) if parts else empty_events()

    def seek_time(self, t_us: int) -> None:
        """Make the next chunk start at the first event with ``t >= t_us``."""
        t_us = int(t_us)
        self._last_t = None
        src = self._source
        if src.sequential:
            # Streamed data cannot jump: start over and drop events until t_us.
            self._blocks = None
            self._seek_t = t_us
            return
        self._pos = bisect.bisect_left(_IndexView(src), t_us)

    def close(self) -> None:
        """Release the file (memory maps, HDF5 handle)."""
        for close in self._closers:
            close()
        self._closers = ()

    def __enter__(self) -> ArrayFileReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- conversion and checks
    def _fail(self, kind: str, message: str, bad: np.ndarray) -> np.ndarray:
        """Raise for the first bad row, or (lenient) count and drop them; returns the keep mask."""
        if not self.lenient:
            raise EventFileError(message, path=str(self.path))
        count = int(bad.sum())
        self.skipped[kind] = self.skipped.get(kind, 0) + count
        log.warning("%s: skipped %d events (%s); first: %s", self.path, count, kind, message)
        return ~bad

    def _as_int(self, name: str, values: np.ndarray, first: int, keep: np.ndarray) -> np.ndarray:
        if values.dtype.kind in "iub":
            return values.astype(np.int64)
        if values.dtype.kind == "f":
            bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) >= 2.0**62)
            if bad.any():
                i = int(np.argmax(bad))
                keep &= self._fail(
                    "non_integer",
                    f"{self._source.where} event {first + i}: {name}={float(values[i])!r} is not a whole number",
                    bad,
                )
                values = np.where(bad, 0, values)
            return values.astype(np.int64)
        raise EventFileError(
            f"{self._source.where}: field {name} has non-numeric dtype {values.dtype}", path=str(self.path)
        )

    def _convert(self, cols: dict, first: int) -> np.ndarray:
        n = len(cols["t"])
        keep = np.ones(n, dtype=bool)
        x = self._as_int("x", cols["x"], first, keep)
        y = self._as_int("y", cols["y"], first, keep)
        t = self._as_int("t", cols["t"], first, keep)
        p = cols["p"]
        p = p.astype(np.int64) if p.dtype.kind != "f" else self._as_int("p", p, first, keep)
        p = np.where(p == -1, 0, p)
        where = self._source.where
        checks = [
            ("bad_polarity", (p != 0) & (p != 1), "p={v} is not 0/1, -1/+1 or bool", p),
            ("out_of_range", (x < 0) | (x > 0xFFFF), "x={v} does not fit uint16", x),
            ("out_of_range", (y < 0) | (y > 0xFFFF), "y={v} does not fit uint16", y),
        ]
        if self.geometry is not None:
            w, h = self.geometry
            checks += [
                ("out_of_geometry", x >= w, f"x={{v}} lies outside the {w}x{h} geometry", x),
                ("out_of_geometry", y >= h, f"y={{v}} lies outside the {w}x{h} geometry", y),
            ]
        for kind, bad, text, values in checks:
            bad = bad & keep
            if bad.any():
                i = int(np.argmax(bad))
                keep &= self._fail(kind, f"{where} event {first + i}: " + text.format(v=int(values[i])), bad)
        # Timestamps must not decrease, also across chunks: compare with the running maximum.
        running = np.maximum.accumulate(np.where(keep, t, np.iinfo(np.int64).min))
        if self._last_t is not None:
            running = np.maximum(running, self._last_t)
        prev = np.empty(n, dtype=np.int64)
        prev[:1] = self._last_t if self._last_t is not None else np.iinfo(np.int64).min
        prev[1:] = running[:-1]
        bad = keep & (t < prev)
        if bad.any():
            i = int(np.argmax(bad))
            keep &= self._fail(
                "time_backwards",
                f"{where} event {first + i}: t={int(t[i])} is before the previous t={int(prev[i])}",
                bad,
            )
        if n:
            self._last_t = int(running[-1]) if self._last_t is None else max(self._last_t, int(running[-1]))
        out = np.empty(int(keep.sum()), dtype=EVENT_DTYPE)
        out["x"], out["y"], out["p"], out["t"] = x[keep], y[keep], p[keep], t[keep]
        return out


class _IndexView:
    """A sequence view of the t column, for bisect without copying a memory-mapped column."""

    def __init__(self, src: _RandomAccess) -> None:
        self.src = src

    def __len__(self) -> int:
        return self.src.n

    def __getitem__(self, i: int) -> int:
        return self.src.t_at(i)


# --------------------------------------------------------------------------- format detection


def detect_array_format(path) -> str | None:
    """'npy', 'npz', 'hdf5' or 'csv' from the extension, else from the first bytes; None if neither."""
    ext = _EXTENSIONS.get(Path(path).suffix.lower())
    if ext is not None:
        return ext
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    if head == _HDF5_MAGIC:
        return "hdf5"
    return None


def open_array_file(
    path,
    *,
    lenient: bool = False,
    geometry: tuple[int, int] | None = None,
    chunk_events: int = 1 << 20,
    format: str | None = None,
    columns: tuple[str, ...] | None = None,
    delimiter: str | None = None,
    npz_key: str | None = None,
    hdf5_key: str | None = None,
) -> ArrayFileReader:
    """Open a .npy/.npz/HDF5/CSV event file as a chunked reader (see the module doc for layouts)."""
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, int) or chunk_events <= 0:
        raise OptionError(f"must be a positive integer, got {chunk_events!r}", path="chunk_events")
    if geometry is not None:
        geometry = _geometry_option(geometry)
    path = Path(path)
    if not path.is_file():
        raise EventFileError("no such file", path=str(path))
    fmt = format or detect_array_format(path) or "csv"
    openers = {"npy": _open_npy, "npz": _open_npz, "hdf5": _open_hdf5, "csv": _open_csv}
    if fmt not in openers:
        raise OptionError(f"must be one of {sorted(openers)}, got {fmt!r}", path="format")
    skipped: dict[str, int] = {}
    source, file_geometry, metadata, closers = openers[fmt](
        path,
        columns=columns,
        delimiter=delimiter,
        npz_key=npz_key,
        hdf5_key=hdf5_key,
        chunk_events=chunk_events,
        lenient=lenient,
        skipped=skipped,
    )
    reader = ArrayFileReader(
        path,
        fmt,
        source,
        geometry=geometry or file_geometry,
        metadata=metadata,
        lenient=lenient,
        chunk_events=chunk_events,
        closers=closers,
    )
    reader.skipped = skipped
    return reader


def _geometry_option(geometry) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in geometry)
    except (TypeError, ValueError):
        raise OptionError(f"must be (width, height), got {geometry!r}", path="geometry") from None
    if w <= 0 or h <= 0:
        raise OptionError(f"must be positive, got {geometry!r}", path="geometry")
    return w, h


def _geometry_from(values, path, where: str) -> tuple[int, int] | None:
    arr = np.asarray(values).ravel()
    if arr.size < 2 or arr.dtype.kind not in "iuf" or not (arr[:2] > 0).all():
        log.warning("%s: ignoring %s=%r, not a (width, height) pair", path, where, arr.tolist())
        return None
    return int(arr[0]), int(arr[1])


# --------------------------------------------------------------------------- .npy


def _open_npy(path, *, columns, **_):
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise EventFileError(f"not a readable .npy file: {exc}", path=str(path)) from exc
    if not isinstance(arr, np.ndarray) or arr.ndim not in (1, 2):
        raise EventFileError(
            f"expected a 1-D structured or 2-D array, got shape {getattr(arr, 'shape', None)}", path=str(path)
        )
    mm = getattr(arr, "_mmap", None)
    closers = (mm.close,) if mm is not None else ()
    return _array_access(arr, "array", path, columns), None, {"layout": "npy"}, closers


# --------------------------------------------------------------------------- .npz


def _member_header(fp) -> tuple[tuple, bool, np.dtype]:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fp)
    return np.lib.format.read_array_header_2_0(fp)


def _stored_member_memmap(path, zf: zipfile.ZipFile, info: zipfile.ZipInfo):
    """Memory-map an uncompressed .npz member in place."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise EventFileError(f"member {info.filename}: bad zip local header", path=str(path))
        name_len = int.from_bytes(local[26:28], "little")
        extra_len = int.from_bytes(local[28:30], "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        shape, fortran, dtype = _member_header(f)
        offset = f.tell()
    if dtype.hasobject:
        raise EventFileError(f"member {info.filename} holds Python objects", path=str(path))
    count = int(np.prod(shape)) if shape else 1
    if offset + count * dtype.itemsize > os.path.getsize(path):
        raise EventFileError(f"member {info.filename} is truncated", path=str(path))
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _member_stream(path, zf: zipfile.ZipFile, name: str, chunk: int) -> Iterator[np.ndarray]:
    """Decompress one .npz member front to back, ``chunk`` records at a time."""
    with zf.open(name) as fp:
        shape, fortran, dtype = _member_header(fp)
        if len(shape) == 2 and fortran:
            raise EventFileError(
                f"member {name}: a compressed Fortran-order 2-D array cannot be streamed", path=str(path)
            )
        row = dtype.itemsize * (shape[1] if len(shape) == 2 else 1)
        remaining = shape[0] if shape else 1
        while remaining:
            k = min(chunk, remaining)
            data = fp.read(k * row)
            if len(data) != k * row:
                raise EventFileError(f"member {name} is truncated", path=str(path))
            block = np.frombuffer(data, dtype=dtype)
            yield block.reshape((k, shape[1])) if len(shape) == 2 else block
            remaining -= k


def _open_npz(path, *, columns, npz_key, chunk_events, **_):
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise EventFileError(f"not a readable .npz (zip) file: {exc}", path=str(path)) from exc
    infos = {i.filename[:-4]: i for i in zf.infolist() if i.filename.endswith(".npy")}
    metadata: dict = {"layout": "npz", "members": sorted(infos)}

    def small(name):
        with zf.open(infos[name]) as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)

    geometry = None
    for key in ("geometry", "sensor_size"):
        if key in infos:
            geometry = _geometry_from(small(key), path, key)
            break
    if geometry is None and "width" in infos and "height" in infos:
        geometry = _geometry_from([small("width"), small("height")], path, "width/height")

    def header(info):
        with zf.open(info) as fp:
            return _member_header(fp)

    if npz_key is not None:
        if npz_key not in infos:
            raise EventFileError(f"has no member {npz_key!r}; members: {sorted(infos)}", path=str(path))
        chosen = [npz_key]
    elif "events" in infos:
        chosen = ["events"]
    else:
        structured = [k for k, i in infos.items() if header(i)[2].names]
        separate = _match_names(list(infos))
        if len(structured) == 1:
            chosen = structured
        elif separate is not None:
            chosen = [separate[c] for c in "xypt"]
        else:
            raise EventFileError(
                f"has no 'events' member, no single structured member and no x/y/p/t members; members: {sorted(infos)}",
                path=str(path),
            )
    stored = all(infos[k].compress_type == zipfile.ZIP_STORED for k in chosen)
    where = f"member {chosen[0]}" if len(chosen) == 1 else "members x/y/p/t"
    if stored:
        arrays = [_stored_member_memmap(path, zf, infos[k]) for k in chosen]
        zf.close()
        closers = tuple(a._mmap.close for a in arrays if getattr(a, "_mmap", None) is not None)
        if len(arrays) == 1:
            return _array_access(arrays[0], where, path, columns), geometry, metadata, closers
        return _separate_access(dict(zip("xypt", arrays, strict=True)), where, path), geometry, metadata, closers

    shape, _, dtype = header(infos[chosen[0]])
    if len(chosen) == 1:
        if dtype.names:
            names = _require_names(dtype.names, where, path)

            def split(block):
                return {c: block[f] for c, f in names.items()}
        elif len(shape) == 2 and columns is not None:
            index = {c: i for i, c in enumerate(_columns_option(columns, shape[1]))}
            canon = _match_names(tuple(index))

            def split(block):
                return {c: block[:, index[name]] for c, name in canon.items()}
        else:
            raise _layout_error(where, dtype, shape, path)

        def blocks():
            first = 0
            for block in _member_stream(path, zf, infos[chosen[0]].filename, chunk_events):
                yield split(block), first
                first += len(block)
    else:

        def blocks():
            first = 0
            streams = [_member_stream(path, zf, infos[k].filename, chunk_events) for k in chosen]
            for parts in zip(*streams, strict=False):
                lengths = {len(p) for p in parts}
                if len(lengths) != 1:
                    raise EventFileError("the x/y/p/t members differ in length", path=str(path))
                yield dict(zip("xypt", parts, strict=True)), first
                first += len(parts[0])

    return _Sequential(blocks, where), geometry, metadata, (zf.close,)


def write_npz(path, events, *, geometry: tuple[int, int] | None = None, compress: bool = False) -> None:
    """Write events (an EVENT_DTYPE array, or an iterable of such chunks) to ``path`` as member ``events``.

    Uncompressed by default so that :func:`open_array_file` memory-maps it. Chunks are
    spooled to a temporary file beside ``path`` first, so memory stays bounded.
    """
    path = Path(path)
    compression = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    tmp = path.with_name(path.name + ".part")
    try:
        with zipfile.ZipFile(tmp, "w", compression=compression, allowZip64=True) as zf:
            if isinstance(events, np.ndarray):
                _check_events(events)
                with zf.open("events.npy", "w", force_zip64=True) as fp:
                    np.lib.format.write_array(fp, np.ascontiguousarray(events), allow_pickle=False)
            else:
                _write_chunks(zf, path, events)
            if geometry is not None:
                with zf.open("geometry.npy", "w") as fp:
                    np.lib.format.write_array(fp, np.asarray(_geometry_option(geometry), dtype=np.int64))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _check_events(events: np.ndarray) -> None:
    if events.dtype != EVENT_DTYPE or events.ndim != 1:
        raise OptionError(
            f"must be a 1-D EVENT_DTYPE array, got {events.dtype} with shape {events.shape}", path="events"
        )


def _write_chunks(zf: zipfile.ZipFile, path: Path, chunks) -> None:
    spool = path.with_name(path.name + ".spool")
    try:
        n = 0
        with open(spool, "wb") as f:
            for chunk in chunks:
                _check_events(chunk)
                f.write(np.ascontiguousarray(chunk).tobytes())
                n += len(chunk)
        with zf.open("events.npy", "w", force_zip64=True) as fp:
            header = {"descr": np.lib.format.dtype_to_descr(EVENT_DTYPE), "fortran_order": False, "shape": (n,)}
            np.lib.format.write_array_header_2_0(fp, header)
            with open(spool, "rb") as f:
                while block := f.read(1 << 24):
                    fp.write(block)
    finally:
        if spool.exists():
            spool.unlink()


# --------------------------------------------------------------------------- HDF5


def _import_h5py():
    try:
        import h5py
    except ImportError as exc:
        raise MissingDependencyError("reading HDF5 event files needs h5py: pip install 'edgesnn[events]'") from exc
    try:  # registers Blosc/ECF/... filters used by Prophesee and RVT files, when installed
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
    return h5py


def _open_hdf5(path, *, columns, hdf5_key, **_):
    h5py = _import_h5py()
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise EventFileError(f"not a readable HDF5 file: {exc}", path=str(path)) from exc
    try:
        obj, where = _find_hdf5_events(h5py, f, hdf5_key, path)
        if isinstance(obj, h5py.Dataset):
            access = _array_access(obj, where, path, columns)
            holder = obj.parent
        else:
            names = _require_names([k for k in obj if isinstance(obj[k], h5py.Dataset)], where, path)
            access = _separate_access({c: obj[n] for c, n in names.items()}, where, path)
            holder = obj
        geometry = _hdf5_geometry(h5py, path, obj, holder, f)
        _probe(access, path)
    except BaseException:
        f.close()
        raise
    return access, geometry, {"layout": "hdf5", "key": where}, (f.close,)


def _probe(access: _RandomAccess, path) -> None:
    """Read one row now, so a missing compression filter fails at open with a useful message."""
    if access.n:
        try:
            access.read(0, 1)
        except OSError as exc:
            raise EventFileError(
                f"{access.where}: cannot read data ({exc}); if the file uses Blosc or ECF compression, "
                "pip install hdf5plugin",
                path=str(path),
            ) from exc


def _find_hdf5_events(h5py, f, key, path):
    if key is not None:
        if key not in f:
            raise EventFileError(f"has no object {key!r}", path=str(path))
        return f[key], key
    for candidate in ("events", "CD/events"):
        if candidate in f:
            return f[candidate], candidate
    if _match_names([k for k in f if isinstance(f[k], h5py.Dataset)]) is not None:
        return f, "/"
    compound = []
    f.visititems(lambda name, o: compound.append(name) if isinstance(o, h5py.Dataset) and o.dtype.names else None)
    if len(compound) == 1:
        return f[compound[0]], compound[0]
    raise EventFileError(
        f"no 'events' dataset or group, no x/y/p/t datasets at the root and {len(compound)} compound datasets; "
        "pass hdf5_key=",
        path=str(path),
    )


def _hdf5_geometry(h5py, path, obj, holder, f):
    for node in (obj, holder, f):
        attrs = node.attrs
        if "width" in attrs and "height" in attrs:
            return _geometry_from([attrs["width"], attrs["height"]], path, "width/height attributes")
        if "geometry" in attrs:
            return _geometry_from(attrs["geometry"], path, "geometry attribute")
        if isinstance(node, h5py.Group) and "width" in node and "height" in node:
            return _geometry_from([node["width"][()], node["height"][()]], path, "width/height datasets")
    return None


# --------------------------------------------------------------------------- CSV


def _sniff_delimiter(line: str) -> str | None:
    for d in (",", ";", "\t"):
        if d in line:
            return d
    return None  # whitespace


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return token.strip().lower() in ("true", "false")
    return True


_BOOL = {"true": 1, "false": 0}


def _parse_token(token: str) -> float:
    token = token.strip()
    try:
        return int(token)
    except ValueError:
        pass
    low = token.lower()
    if low in _BOOL:
        return _BOOL[low]
    return float(token)


def _open_csv(path, *, columns, delimiter, chunk_events, lenient, skipped, **_):
    with open(path, encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip() and not line.lstrip().startswith("#")), None)
    metadata: dict = {"layout": "csv"}
    if first is None:
        order, has_header, sep = ("t", "x", "y", "p"), False, delimiter or ","
    else:
        sep = delimiter if delimiter is not None else _sniff_delimiter(first)
        tokens = first.strip().split(sep)
        has_header = not all(_is_number(tok) for tok in tokens)
        if columns is not None:
            order = _columns_option(columns, len(tokens))
        elif has_header:
            order = tuple(tok.strip().lower() for tok in tokens)
            if _match_names(order) is None:
                _require_names(order, "header line", path)
        else:
            order = ("t", "x", "y", "p")
            if len(tokens) != 4:
                raise EventFileError(f"has {len(tokens)} columns and no header; pass columns=", path=str(path))
        metadata.update(header=has_header, columns=order, delimiter=sep)
    canon = _match_names(order)
    index = {c: order.index(name) for c, name in canon.items()}
    width = len(order)

    def blocks():
        with open(path, encoding="utf-8", errors="replace") as f:
            line_no, header_seen, first_row = 0, False, 0
            while True:
                raw = list(itertools.islice(f, chunk_events))
                if not raw:
                    return
                rows: list[str] = []
                numbers: list[int] = []
                for line in raw:
                    line_no += 1
                    s = line.strip()
                    if not s or s.startswith("#"):
                        continue
                    if has_header and not header_seen:
                        header_seen = True
                        continue
                    rows.append(s)
                    numbers.append(line_no)
                if not rows:
                    continue
                table = _parse_rows(rows, numbers, sep, width, path, skipped if lenient else None)
                yield {c: table[:, j] for c, j in index.items()}, first_row
                first_row += len(table)

    return _Sequential(blocks, "csv"), None, metadata, ()


def _parse_rows(rows: list[str], numbers: list[int], sep, width: int, path, skipped: dict | None) -> np.ndarray:
    """Parse CSV rows with numpy; on failure go row by row to name (or, lenient, count and drop) bad lines."""
    for dtype in (np.int64, np.float64):
        try:
            table = np.loadtxt(io.StringIO("\n".join(rows)), delimiter=sep, dtype=dtype, ndmin=2)
        except ValueError:
            continue
        if table.shape[1] == width:
            return table
    table = np.empty((len(rows), width), dtype=np.float64)
    good = np.ones(len(rows), dtype=bool)
    for k, (row, line_no) in enumerate(zip(rows, numbers, strict=True)):
        tokens = row.split(sep)
        try:
            if len(tokens) != width:
                raise ValueError(f"{len(tokens)} fields, expected {width}")
            table[k] = [_parse_token(tok) for tok in tokens]
        except ValueError as exc:
            message = f"line {line_no}: cannot parse {row[:80]!r}: {exc}"
            if skipped is None:
                raise EventFileError(message, path=str(path)) from None
            skipped["bad_lines"] = skipped.get("bad_lines", 0) + 1
            log.warning("%s: skipped %s", path, message)
            good[k] = False
    return table[good]
