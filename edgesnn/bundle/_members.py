"""Encoding and checked decoding of the bundle's data members (.npy tensors, ONNX parts).

Decoding never unpickles and never allocates from a size nobody has checked:
the .npy header is read first (numpy bounds its length), compared with the
manifest, and the zip entry's size (held to the limits when the zip was
opened) must equal header plus declared data before the data is read, in
chunks, hashed as it arrives.
"""

from __future__ import annotations

import hashlib
import io
import math
import zipfile

import numpy as np

from edgesnn.bundle._manifest import PartEntry, TensorEntry
from edgesnn.bundle._zip import member_errors, read_bytes, read_member
from edgesnn.errors import BundleFormatError, BundleIntegrityError, BundleValidationError

#: The one dtype parameter tensors have, on disk and in memory.
TENSOR_DTYPE = np.dtype("<f4")
#: numpy itself refuses .npy headers longer than this (its ``max_header_size`` default).
_MAX_HEADER = 10_000
_PREFIX = _MAX_HEADER + 16  # magic, version and length field come before the header text


def encode_tensor(array: np.ndarray) -> bytes:
    """Serialise ``array`` as a float32, C-ordered .npy file."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=TENSOR_DTYPE), allow_pickle=False)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def describe(dtype: np.dtype | str, shape: tuple[int, ...]) -> str:
    """``float32 (128,)``, naming a byte order only when it is not little-endian."""
    dt = np.dtype(dtype) if not isinstance(dtype, str) else None
    name = dtype if dt is None else (f"big-endian {dt.name}" if dt.byteorder == ">" else dt.name)
    return f"{name} {tuple(shape)}"


def member_info(zf: zipfile.ZipFile, member: str) -> zipfile.ZipInfo:
    """The zip entry of a member the manifest lists (:class:`BundleFormatError` when it is missing)."""
    try:
        return zf.getinfo(member)
    except KeyError:
        raise BundleFormatError("member is listed in the manifest but missing from the zip", path=member) from None


def _read_header(prefix: bytes, member: str) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    buf = io.BytesIO(prefix)
    try:
        major, _minor = np.lib.format.read_magic(buf)
        if major == 1:
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf, max_header_size=_MAX_HEADER)
        elif major == 2:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf, max_header_size=_MAX_HEADER)
        else:
            raise ValueError(f"unsupported .npy format version {major}")
    except Exception as exc:  # numpy's header parser (literal_eval, dtype) raises many types for bad text
        raise BundleValidationError(f"not a readable .npy file: {type(exc).__name__}: {exc}", path=member) from exc
    return dtype, tuple(int(s) for s in shape), bool(fortran), buf.tell()


def _prefix(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with member_errors(info.filename), zf.open(info) as f:
        return f.read(min(info.file_size, _PREFIX))


def read_tensor(zf: zipfile.ZipFile, member: str, entry: TensorEntry) -> np.ndarray:
    """Load a float32 tensor member, checking it against its manifest ``entry``."""
    expected = describe(TENSOR_DTYPE, entry.shape)
    if entry.dtype != TENSOR_DTYPE.name:
        raise BundleValidationError(
            f"expected {expected} (parameters are float32), manifest declares {describe(entry.dtype, entry.shape)}",
            path=member,
        )
    info = member_info(zf, member)
    nbytes = math.prod(entry.shape) * TENSOR_DTYPE.itemsize
    prefix = _prefix(zf, info)
    try:
        dtype, shape, fortran, header_len = _read_header(prefix, member)
        if dtype != TENSOR_DTYPE or shape != entry.shape:
            raise BundleValidationError(f"expected {expected}, got {describe(dtype, shape)}", path=member)
    except BundleValidationError:
        # A damaged header is corruption first: say so when the hash proves it and the size is plausible.
        if info.file_size <= nbytes + _PREFIX and read_member(zf, info) != entry.sha256:
            raise BundleIntegrityError("sha256 does not match the manifest (member is corrupt)", path=member) from None
        raise
    if info.file_size != header_len + nbytes:
        # Checked before reading the data, so a huge declared shape or entry never gets allocated.
        raise BundleValidationError(
            f"holds {info.file_size - header_len} data bytes, {expected} needs {nbytes}", path=member
        )
    data = bytearray(info.file_size)
    if read_member(zf, info, memoryview(data)) != entry.sha256:
        raise BundleIntegrityError("sha256 does not match the manifest (member is corrupt)", path=member)
    array = np.frombuffer(data, dtype=TENSOR_DTYPE, count=math.prod(shape), offset=header_len)
    return np.ascontiguousarray(array.reshape(shape, order="F" if fortran else "C"))


def read_part(zf: zipfile.ZipFile, member: str, entry: PartEntry) -> bytes:
    """Load an opaque member (ONNX bytes), checking size and hash."""
    info = member_info(zf, member)
    if info.file_size != entry.size:
        raise BundleIntegrityError(f"holds {info.file_size} bytes, the manifest records {entry.size}", path=member)
    data, digest = read_bytes(zf, info)
    if digest != entry.sha256:
        raise BundleIntegrityError("sha256 does not match the manifest (member is corrupt)", path=member)
    return bytes(data)
