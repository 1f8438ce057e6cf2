"""Structure-aware mutations of .esnn bundles, for tests/test_bundle_fuzz.py.

Every mutator takes a valid bundle's bytes and a seeded ``random.Random`` and returns
damaged bytes: the zip's raw bytes and header fields, its members (duplicated, dropped,
renamed, compressed another way), the manifest's JSON (any field given another type, a
huge, negative or non-finite number, hostile text, deep nesting) and the .npy tensors
(header text, version, length, data). Mutations that need it re-record a member's
sha256, so that the damage reaches the checks behind the hash.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import random
import struct
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np

Mutator = Callable[[bytes, random.Random], bytes]

# -- the zip's raw bytes ------------------------------------------------------------------

_LOCAL, _CENTRAL, _END = b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06"
# (offset, struct format) of the fields of each header worth lying in.
# (Method and flag fields are zip_flags' business.)
_LOCAL_FIELDS = [(14, "<I"), (18, "<I"), (22, "<I"), (26, "<H"), (28, "<H")]
_CENTRAL_FIELDS = [(16, "<I"), (20, "<I"), (24, "<I"), (28, "<H"), (30, "<H"), (42, "<I")]
_END_FIELDS = [(8, "<H"), (10, "<H"), (12, "<I"), (16, "<I"), (20, "<H")]
_METHODS = [0, 1, 6, 8, 9, 12, 14, 93, 95, 98, 99]
_FLAGS = [0x1, 0x8, 0x20, 0x40, 0x800, 0x1 | 0x40]


def _positions(data: bytes, signature: bytes) -> list[int]:
    out, at = [], data.find(signature)
    while at >= 0:
        out.append(at)
        at = data.find(signature, at + 1)
    return out


def flip_bytes(data: bytes, rng: random.Random) -> bytes:
    """Flip one to eight bits anywhere in the file."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    return bytes(out)


def cut(data: bytes, rng: random.Random) -> bytes:
    """Cut bytes from the end, from the front, or out of the middle; or prepend some."""
    n = rng.randrange(1, len(data))
    kind = rng.randrange(4)
    if kind == 0:
        return data[:n]
    if kind == 1:
        return data[n:]
    if kind == 2:
        start = rng.randrange(len(data))
        return data[:start] + data[start + rng.randint(1, 64) :]
    return rng.randbytes(rng.randint(1, 64)) + data


def zip_header(data: bytes, rng: random.Random) -> bytes:
    """Lie in one size, offset, CRC, length or count field of a local header, a directory entry or the end record."""
    signature, fields = rng.choice([(_LOCAL, _LOCAL_FIELDS), (_CENTRAL, _CENTRAL_FIELDS), (_END, _END_FIELDS)])
    places = _positions(data, signature)
    if not places:
        return flip_bytes(data, rng)
    at = rng.choice(places)
    offset, fmt = rng.choice(fields)
    size = struct.calcsize(fmt)
    if at + offset + size > len(data):
        return data[:at]
    (old,) = struct.unpack_from(fmt, data, at + offset)
    top = (1 << (8 * size)) - 1
    new = rng.choice([0, 1, top, old + 1, old - 1, old * 2, rng.randrange(top + 1), old ^ 0x80])
    out = bytearray(data)
    struct.pack_into(fmt, out, at + offset, min(max(new, 0), top))
    return bytes(out)


def zip_flags(data: bytes, rng: random.Random) -> bytes:
    """Give one member another compression method or flag bits (encrypted, patched, UTF-8), in one header or both."""
    locals_, centrals = _positions(data, _LOCAL), _positions(data, _CENTRAL)
    if not locals_ or not centrals:
        return flip_bytes(data, rng)
    i = rng.randrange(min(len(locals_), len(centrals)))
    out = bytearray(data)
    method, flag = rng.choice(_METHODS), rng.choice(_FLAGS)
    where = rng.choice(["local", "central", "both"])
    for at, (flag_at, method_at) in ((locals_[i], (6, 8)), (centrals[i], (8, 10))):
        if where in ("both", "local" if at == locals_[i] else "central"):
            if rng.random() < 0.5:
                struct.pack_into("<H", out, at + method_at, method)
            else:
                (old,) = struct.unpack_from("<H", out, at + flag_at)
                struct.pack_into("<H", out, at + flag_at, old | flag)
    return bytes(out)


# -- members --------------------------------------------------------------------------------


def members_of(data: bytes) -> dict[str, bytes]:
    """All members of a valid bundle, by name, in zip order (a fresh dict each call)."""
    return dict(_members(data))


@functools.lru_cache(maxsize=16)
def _members(data: bytes) -> tuple[tuple[str, bytes], ...]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return tuple((name, zf.read(name)) for name in zf.namelist())


@functools.lru_cache(maxsize=16)
def _bombed(data: bytes, megabytes: int) -> bytes:
    """The bundle with a first member of that many MiB of deflated zeros (made once: deflating is slow)."""
    return build_zip([("bomb.bin", bytes(megabytes << 20), zipfile.ZIP_DEFLATED), *_entries(members_of(data))])


def build_zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    """A zip of ``(name, bytes, compression)`` entries, duplicates allowed."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names we write on purpose
        with zipfile.ZipFile(buf, "w") as zf:
            for name, content, method in entries:
                zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), content, method)
    return buf.getvalue()


def _entries(members: dict[str, bytes]) -> list[tuple[str, bytes, int]]:
    return [(n, c, zipfile.ZIP_DEFLATED if n == "manifest.json" else zipfile.ZIP_STORED) for n, c in members.items()]


def rebuild(data: bytes, rng: random.Random) -> bytes:
    """Duplicate, drop, rename or recompress a member, or add one that inflates past every limit."""
    members = members_of(data)
    entries = _entries(members)
    i = rng.randrange(len(entries))
    name, content, method = entries[i]
    kind = rng.randrange(6)
    if kind == 0:  # a second copy, maybe different
        entries.insert(rng.randrange(len(entries) + 1), (name, rng.choice([content, content[::-1], b""]), method))
    elif kind == 1:
        del entries[i]
    elif kind == 2:
        entries[i] = (
            rng.choice([name.upper(), name + "/", "../" + name, name.replace("/", "\\"), ""]),
            content,
            method,
        )
    elif kind == 3:
        entries[i] = (name, content, rng.choice([zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]))
    elif kind == 4:  # a bomb: megabytes of zeros in a few kilobytes, before the bundle's own members
        return _bombed(data, rng.choice([1, 2, 8]))
    else:  # many tiny entries
        entries += [(f"x/{j}", b"", zipfile.ZIP_STORED) for j in range(rng.choice([10, 300, 600]))]
    return build_zip(entries)


# -- the manifest -------------------------------------------------------------------------------

_DEEP = 200


def _hostile_values(rng: random.Random) -> list[Any]:
    text = ["", "a" * rng.choice([300, 5000]), "\ud800", "x\udfffy", "\x00", "line\nbreak", "\u202e", "é", "/", "."]
    numbers = [0, -1, 1, 2**31, 2**63, 10**30, -(10**30), 0.5, -0.0, 1e-300, 1e300, -1e300, 1e-45, 3.5e38, 1.0]
    nested: Any = 1
    for _ in range(rng.choice([10, 63, 64, 65, _DEEP])):
        nested = [nested] if rng.random() < 0.5 else {"k": nested}
    shapes = [[], [0], [-1], [1] * 9, [2**31], [10**9], [1.5], ["4"], [True], [4, 4]]
    return [*text, *numbers, None, True, False, [], {}, nested, *shapes, {"tensor": "tensors/in/x.npy"},
            {"part": "parts/none.onnx"}, [1, "a", None], {"a": {"b": [1, 2]}}]  # fmt: skip


@functools.lru_cache(maxsize=16)
def _manifest_paths(data: bytes) -> list[tuple[Any, ...]]:
    return json_paths(json.loads(dict(_members(data))["manifest.json"]))


def json_paths(doc: Any) -> list[tuple[Any, ...]]:
    """Every path (keys and indices) into a decoded JSON document, the root excluded."""
    out: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), doc)]
    while stack:
        path, value = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            out.append((*path, key))
            stack.append(((*path, key), item))
    return sorted(out, key=repr)


def _set_path(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


def _del_path(doc: Any, path: tuple[Any, ...]) -> None:
    for key in path[:-1]:
        doc = doc[key]
    del doc[path[-1]]


def edit_manifest(data: bytes, edit: Callable[[dict[str, Any]], None], *, raw: bytes | None = None) -> bytes:
    """The bundle with its manifest decoded, edited in place and written back (or replaced by ``raw``)."""
    members = members_of(data)
    doc = json.loads(members["manifest.json"])
    edit(doc)
    members["manifest.json"] = raw if raw is not None else json.dumps(doc).encode()
    return build_zip(_entries(members))


def _near(value: Any, rng: random.Random) -> Any:
    """A plausible-looking change of a number (scaled, negated, off by one), so that type checks pass."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, int):
        return rng.choice([value + 1, value - 1, value * 1000, -value, 0, value * 2**20])
    return rng.choice([value * 1e3, value * 1e6, value * 1e-6, -value, 0.0, value * 1e300, value + 1.0])


def manifest_field(data: bytes, rng: random.Random) -> bytes:
    """Give one manifest field a hostile or a nearly right value, delete it, or add an unknown sibling.

    Half the time the field is one of the graph's or the model's, where values (not just
    types) decide whether a model loads and what its session allocates.
    """
    paths = _manifest_paths(data)
    if rng.random() < 0.5:
        paths = [p for p in paths if p[0] in ("graph", "model") and p[:2] != ("graph", "edges")] or paths
    path = rng.choice(paths)
    kind = rng.random()

    def edit(d: dict[str, Any]) -> None:
        if kind < 0.3:
            parent = d
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = _near(parent[path[-1]], rng)
        elif kind < 0.8:
            _set_path(d, path, rng.choice(_hostile_values(rng)))
        elif kind < 0.9:
            _del_path(d, path)
        else:
            parent = d
            for key in path[:-1]:
                parent = parent[key]
            if isinstance(parent, dict):
                parent[rng.choice(["extra", "\ud800", "type", "shape"])] = rng.choice(_hostile_values(rng))
            else:
                parent.append(rng.choice(_hostile_values(rng)))

    return edit_manifest(data, edit)


def manifest_text(data: bytes, rng: random.Random) -> bytes:
    """Damage the manifest's text itself: cut it, nest it deeply, duplicate a key, add NaN or stray bytes."""
    raw = members_of(data)["manifest.json"]
    kind = rng.randrange(6)
    if kind == 0:
        text = raw[: rng.randrange(len(raw))]
    elif kind == 1:
        depth = rng.choice([65, 1000, 100_000])
        text = b'{"schema_version": 2, "x": ' + b"[" * depth + b"]" * depth + b"}"
    elif kind == 2:
        text = raw.replace(b"{", b'{"dt_s": 1, "dt_s": 2, ', 1)
    elif kind == 3:
        text = raw.replace(b"0.0005", rng.choice([b"NaN", b"Infinity", b"1e400", b"-1e400", b"1" * 5000]), 1)
    elif kind == 4:
        at = rng.randrange(len(raw))
        text = raw[:at] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b'"', b"\\u"]) + raw[at:]
    else:
        text = raw.replace(b'"word_0"', rng.choice([b'"\\ud800"', b'"a\\u0000"', b'"\\udfff\\ud800"']), 1)
    return edit_manifest(data, lambda d: None, raw=text)


# -- tensors ---------------------------------------------------------------------------------------

_DESCRS = ["<f4", "<f8", ">f4", "|b1", "|O", "<U5", "V100", "<c8", "<f2", "[('a', '<f4')]", "'<f4'", "<f4<"]


def _npy(header: str, body: bytes, version: int = 1) -> bytes:
    text = header.encode("latin1")
    if version == 1:
        prefix = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text))
    else:
        prefix = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(text))
    return prefix + text + body


def tensor(data: bytes, rng: random.Random) -> bytes:
    """Replace one .npy member by a damaged one, usually re-recording its sha256 (and sometimes its shape)."""
    members = members_of(data)
    doc = json.loads(members["manifest.json"])
    name = rng.choice(sorted(doc["tensors"]))
    old = members[name]
    arr = np.load(io.BytesIO(old), allow_pickle=False)
    kind = rng.randrange(6)
    shape = tuple(arr.shape)
    if kind == 0:  # another shape or dtype in the header, data unchanged
        shape = rng.choice([(), (0,), (arr.size + 1,), (-1,), (2**40,), (1,) * 9, shape[::-1], (arr.size, 1)])
        header = (
            f"{{'descr': '{rng.choice(_DESCRS)}', 'fortran_order': {rng.choice([False, True])}, 'shape': {shape}, }}"
        )
        new = _npy(header, arr.tobytes(), rng.choice([1, 2, 3]))
    elif kind == 1:  # header text that is not a dict literal
        junk = rng.choice(["{", "(" * 300, "[" * 300 + "]" * 300, "{'descr': '<f4'}", "__import__('os')", "\x00", ""])
        new = _npy(junk, arr.tobytes())
    elif kind == 2:  # a header length pointing anywhere
        new = bytearray(old)
        struct.pack_into("<H", new, 8, rng.choice([0, 1, 0xFFFF, len(old)]))
        new = bytes(new)
    elif kind == 3:  # data cut short or grown
        new = old[: rng.randrange(len(old))] if rng.random() < 0.5 else old + rng.randbytes(rng.randint(1, 64))
    elif kind == 4:  # NaN, Inf, huge, tiny or negative values in place
        values = np.array(rng.choice([np.nan, np.inf, -np.inf, 3e38, -3e38, 1e-45, -1.0, 0.0]), np.float32)
        new = old[: len(old) - arr.nbytes] + np.full(arr.shape, values, np.float32).tobytes()
    else:  # Fortran order, with the same values
        new = _npy(f"{{'descr': '<f4', 'fortran_order': True, 'shape': {shape}, }}",
                   np.asfortranarray(arr).tobytes(order="F"))  # fmt: skip
    members[name] = new
    if rng.random() < 0.85:
        doc["tensors"][name]["sha256"] = hashlib.sha256(new).hexdigest()
    if kind == 0 and rng.random() < 0.5 and all(isinstance(s, int) and s >= 0 for s in shape):
        doc["tensors"][name]["shape"] = list(shape)
    members["manifest.json"] = json.dumps(doc).encode()
    return build_zip(_entries(members))


MUTATORS: dict[str, Mutator] = {
    "flip_bytes": flip_bytes,
    "cut": cut,
    "zip_header": zip_header,
    "zip_flags": zip_flags,
    "rebuild": rebuild,
    "manifest_field": manifest_field,
    "manifest_text": manifest_text,
    "tensor": tensor,
}
