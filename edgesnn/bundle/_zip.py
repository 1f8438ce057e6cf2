"""The bundle's zip container: opened, checked entry by entry, and read in bounded chunks.

zipfile trusts its input: it parses a central directory of any length, seeks to offsets
that bytes cut from the front have made negative, raises NotImplementedError or
RuntimeError for compression methods and encryption it does not handle, and lets the
last of two members with one name win. Everything here turns that into a
:class:`BundleFormatError` naming the member (or a :class:`LimitError` naming the
limit) before a member's bytes are read, and reads members in chunks that stop at the
size the directory declares, hashing as they go.
"""

from __future__ import annotations

import contextlib
import hashlib
import struct
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO

from edgesnn import limits
from edgesnn.errors import BundleFormatError, EdgeSNNError

#: What zipfile, zlib and the file underneath raise for a damaged container or member.
ZIP_ERRORS = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, ValueError, struct.error,
    NotImplementedError, RuntimeError, OverflowError,
)  # fmt: skip
#: The compression methods the writer uses; others (bzip2, LZMA) are refused, not decoded.
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}
_ENCRYPTED, _PATCHED, _STRONG = 0x1, 0x20, 0x40
_CHUNK = 1 << 20
_EOCD, _EOCD_SIZE = b"PK\x05\x06", 22
_EOCD64_LOCATOR, _EOCD64_SIZE = b"PK\x06\x07", 56


def declared_entries(f: IO[bytes]) -> int | None:
    """Entry count in a zip's end-of-central-directory record (zip64 too), or None when there is none to find."""
    f.seek(0, 2)
    size = f.tell()
    tail_len = min(size, _EOCD_SIZE + 0xFFFF)  # the record, then a comment of at most 64 KiB
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < _EOCD_SIZE:
        return None
    (count,) = struct.unpack_from("<H", tail, at + 10)
    locator = at - 20
    if count == 0xFFFF and locator >= _EOCD64_SIZE and tail[locator : locator + 4] == _EOCD64_LOCATOR:
        (count,) = struct.unpack_from("<Q", tail, locator - _EOCD64_SIZE + 32)
    return count


def open_zip(f: IO[bytes], name: str) -> zipfile.ZipFile:
    """Open ``f`` as a zip whose directory is within ``limits.bundle_members``; errors name the file."""
    try:
        count = declared_entries(f)
        if count is not None:
            # Checked before zipfile parses the directory, which costs memory for every entry.
            limits.current().check("bundle_members", count, "a count of zip entries", path=name)
        f.seek(0)
        return zipfile.ZipFile(f)
    except EdgeSNNError:
        raise  # a LimitError is a RuntimeError too, and must stay what it is
    except ZIP_ERRORS as exc:
        raise BundleFormatError(f"not a readable zip file (truncated or not a .esnn bundle): {exc}", path=name) from exc


def check_entries(zf: zipfile.ZipFile, name: str, *, sizes: dict[str, str] | None = None) -> None:
    """Refuse duplicate names, methods other than stored and deflate, encryption, misplaced headers and sizes.

    ``sizes`` names the limit for particular members (``{"manifest.json": "manifest_bytes"}``);
    every other member is held to ``member_bytes``, and all of them to ``bundle_bytes``.
    """
    bounds = limits.current()
    infos = zf.infolist()
    bounds.check("bundle_members", len(infos), "a count of zip entries", path=name)
    seen: set[str] = set()
    total = 0
    end = _file_size(zf)
    for info in infos:
        member = info.filename
        if member in seen:
            raise BundleFormatError("the zip holds two members of this name (which one counts is undefined)",
                                    path=member)  # fmt: skip
        seen.add(member)
        _check_entry(info, end, name)
        bounds.check((sizes or {}).get(member, "member_bytes"), info.file_size, "a member", path=member)
        total += info.file_size
    bounds.check("bundle_bytes", total, "the members, uncompressed,", path=name)


def _file_size(zf: zipfile.ZipFile) -> int | None:
    fp = zf.fp
    if fp is None:
        return None
    here = fp.tell()
    try:
        return fp.seek(0, 2)
    finally:
        fp.seek(here)


def _check_entry(info: zipfile.ZipInfo, end: int | None, name: str) -> None:
    member = info.filename
    if info.compress_type not in METHODS:
        method = _METHOD_NAMES.get(info.compress_type, "unknown")
        raise BundleFormatError(
            f"is compressed with method {info.compress_type} ({method}); bundles use stored or deflate", path=member
        )
    if info.flag_bits & (_ENCRYPTED | _STRONG):
        raise BundleFormatError("is encrypted; bundles are not", path=member)
    if info.flag_bits & _PATCHED:
        raise BundleFormatError("holds patch data (zip flag bit 5); bundles do not", path=member)
    # The file is what is damaged here, not the member: the error names the file.
    if info.header_offset < 0:
        raise BundleFormatError(
            f"bytes are missing from the front: the header of member {member} would lie"
            f" {-info.header_offset} bytes before the start of the file",
            path=name,
        )
    if end is not None and info.header_offset + 30 + info.compress_size > end:
        raise BundleFormatError(
            f"the file is truncated: member {member} would end past its end ({end} bytes)", path=name
        )


@contextlib.contextmanager
def member_errors(member: str) -> Iterator[None]:
    """Turn what reading a damaged member raises into a :class:`BundleFormatError` naming it."""
    try:
        yield
    except EdgeSNNError:
        raise  # a LimitError is a RuntimeError too, and must stay what it is
    except ZIP_ERRORS as exc:
        raise BundleFormatError(f"cannot read member: {exc}", path=member) from exc


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, into: memoryview | None = None) -> str:
    """Read a checked entry in chunks, into ``into`` (its declared size long) or nowhere; return its sha256.

    The declared size, already held to the limits, is what gets read: a member that ends
    early or goes on past it is a :class:`BundleFormatError`.
    """
    digest = hashlib.sha256()
    got = 0
    with member_errors(info.filename), zf.open(info) as f:
        while got < info.file_size:
            chunk = f.read(min(_CHUNK, info.file_size - got))
            if not chunk:
                break
            digest.update(chunk)
            if into is not None:
                into[got : got + len(chunk)] = chunk
            got += len(chunk)
        extra = f.read(1) if got == info.file_size else b""
    if got != info.file_size or extra:
        raise BundleFormatError(f"holds {'more' if extra else got} bytes, its zip entry declares {info.file_size}",
                                path=info.filename)  # fmt: skip
    return digest.hexdigest()


def read_bytes(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[bytearray, str]:
    """The bytes of a checked entry and their sha256 (see :func:`read_member`)."""
    data = bytearray(info.file_size)
    return data, read_member(zf, info, memoryview(data))
