"""What ``Device.load`` accepts, turned into what a device takes: bundle bytes, a bundle path or file."""

from __future__ import annotations

import io
import os
from typing import Any


def bundle_source(source: Any) -> Any:
    """A shipped name becomes its bundle's path; a .nir file or a Model becomes a .esnn bundle; the rest as given.

    NIR is imported here, on the client, as ``edgesnn.load`` does, so a device never needs the nir package;
    the bundle made from a .nir file is a file object named as that file, so the device names it alike.
    """
    from edgesnn.bundle import write_bundle
    from edgesnn.catalog import resolve
    from edgesnn.model import Model

    if isinstance(source, Model):
        model, name = source, None
    else:
        source = resolve(source)
        if not (isinstance(source, (str, os.PathLike)) and os.fspath(source).lower().endswith(".nir")):
            return source
        import edgesnn

        model, name = edgesnn.load(source), os.path.splitext(os.fspath(source))[0] + ".esnn"
    buf = io.BytesIO()
    write_bundle(model, buf)
    if name is None:
        return buf.getvalue()
    buf.seek(0)
    buf.name = name
    return buf
