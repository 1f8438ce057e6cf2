"""Where bundle bytes come from and go to: paths, binary file objects, atomic replace."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
from collections.abc import Callable, Iterator
from typing import IO, Union

from edgesnn import limits

#: A filesystem path or an open binary file (``read``/``write``, and ``seek`` for reading).
Target = Union[str, "os.PathLike[str]", IO[bytes]]
#: What a zip adds around each member's bytes, at most (headers and a name), for a stream that is not seekable.
_ENTRY_OVERHEAD = 256


def is_path(target: object) -> bool:
    """True when ``target`` names a file rather than being an open one."""
    return isinstance(target, (str, os.PathLike))


def display_name(target: object) -> str:
    """How errors name the bundle: its path, or the file object's name if it has one."""
    if is_path(target):
        return os.fspath(target)  # type: ignore[arg-type]
    name = getattr(target, "name", None)
    return name if isinstance(name, str) else "<bundle stream>"


@contextlib.contextmanager
def open_source(source: Target) -> Iterator[IO[bytes]]:
    """Yield a seekable binary file for ``source``; the caller's own file is not closed."""
    if is_path(source):
        with open(source, "rb") as f:  # type: ignore[arg-type]
            yield f
        return
    seekable = getattr(source, "seekable", None)
    if callable(seekable) and seekable():
        yield source  # type: ignore[misc]
    else:
        # zipfile needs to seek to the central directory at the end; a pipe has to be buffered,
        # and no more of it than a bundle within the limits can take (stored members, headers).
        bounds = limits.current()
        overhead = bounds.bundle_members * _ENTRY_OVERHEAD
        data = source.read(bounds.bundle_bytes + overhead + 1)  # type: ignore[union-attr]
        bounds.check("bundle_bytes", max(len(data) - overhead, 0), "a bundle stream, less its zip headers,",
                     path=display_name(source))  # fmt: skip
        yield io.BytesIO(data)


def write_atomic(path: str | os.PathLike[str], write: Callable[[IO[bytes]], None]) -> None:
    """Write a file so that a crash leaves the old file or the new one, never a torn one."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    # os.open with 0o666 lets the umask decide permissions, as a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    # The rename is durable only once the directory entry is on disk; not every platform can open a directory.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
