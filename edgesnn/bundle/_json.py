"""Strict, bounded JSON decoding for what a bundle or NIR file carries (manifest, edgesnn records).

``json.loads`` recurses once per nesting level, so a few kilobytes of ``[[[[...`` end in
RecursionError; and it accepts what a manifest must not hold (NaN, numbers that overflow
to Infinity, duplicate keys, lone surrogates that no UTF-8 file can contain). Here the
depth is measured on the raw text first, without recursion, and each of those is refused
with an error naming the document.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from edgesnn import limits
from edgesnn.errors import BundleFormatError, LimitError

# A string, escapes included (its brackets are not structure); one never closed runs to the end
# of the text. Possessive, and anchored at the end, so that no quote is scanned from twice.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
# A \u escape of a surrogate half; json.loads pairs valid halves into one character.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = np.zeros(256, np.int8)
_STEP[list(b"[{")], _STEP[list(b"]}")] = 1, -1
_CHUNK = 1 << 16


def nesting_depth(raw: bytes, stop: int | None = None) -> int:
    """Deepest nesting of objects and lists in JSON text, found in linear time without recursion.

    Strings are skipped, and so is everything after a string that is never closed. For
    text that is valid JSON up to some point this is at least the depth a parser reaches
    before it stops there, so it bounds the parser's recursion. With ``stop``, returns as
    soon as the depth exceeds it (the rest of a hostile text is not looked at).
    """
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for at in range(0, len(brackets), _CHUNK):
        steps = _STEP[np.frombuffer(brackets, np.uint8, min(_CHUNK, len(brackets) - at), at)]
        levels = depth + np.cumsum(steps, dtype=np.int64)
        deepest, depth = max(deepest, int(levels.max())), int(levels[-1])
        if stop is not None and deepest > stop:
            break
    return deepest


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # json would silently keep the last one; a duplicate node name must not vanish.
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _lone_surrogate(doc: Any) -> tuple[str, str] | None:
    """(JSON path, text) of the first string or key holding a lone surrogate, walking iteratively."""
    stack: list[tuple[str, Any]] = [("", doc)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                where = f"{path}/{_printable(key)}".lstrip("/")
                if not _is_utf8(key):
                    return where, key
                stack.append((where, item))
        elif isinstance(value, list):
            stack.extend((f"{path}/{i}".lstrip("/"), item) for i, item in enumerate(value))
        elif isinstance(value, str) and not _is_utf8(value):
            return path, value
    return None


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(text: str) -> str:
    # Error paths are printed: a key that cannot be encoded is shown with escapes.
    return text if _is_utf8(text) else ascii(text)[1:-1]


def loads(raw: bytes | str, where: str, *, size_limit: str = "manifest_bytes", allow_nan: bool = False) -> Any:
    """Parse JSON strictly within the limits ``size_limit`` and ``json_depth``; errors name ``where``.

    Refuses invalid UTF-8, NaN and Infinity, numbers that overflow, duplicate keys and
    strings with lone surrogates (:class:`BundleFormatError`), and text that is too long
    or too deeply nested (:class:`LimitError`). ``allow_nan`` accepts NaN and Infinity
    (edgesnn's NIR record writes them).
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    bounds = limits.current()
    bounds.check(size_limit, len(data), f"JSON text of {where}", path=where)
    depth = nesting_depth(data, stop=bounds.json_depth)
    if depth > bounds.json_depth:
        raise LimitError(
            f"nests objects and lists more than {bounds.json_depth} deep (the limit json_depth)",
            limit="json_depth",
            value=depth,
            path=where,
        )
    try:
        doc = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_refuse_duplicates,
            parse_constant=float if allow_nan else _refuse_constant,
            parse_float=float if allow_nan else _finite_float,
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleFormatError(f"invalid JSON: {exc}", path=where) from exc
    if _SURROGATE_ESCAPE.search(data):
        bad = _lone_surrogate(doc)
        if bad is not None:
            path, text = bad
            raise BundleFormatError(
                f"expected UTF-8 text, got a lone surrogate escape in {ascii(text)[:40]} (in {where})",
                path=path or where,
            )
    return doc


__all__ = ["loads", "nesting_depth"]
