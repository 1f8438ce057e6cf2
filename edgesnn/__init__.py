"""edgesnn: run spiking and hybrid SNN-ANN models on a stream, fast, on edge devices."""

import os as _os
from typing import IO as _IO
from typing import TYPE_CHECKING as _TYPE_CHECKING

if _TYPE_CHECKING:
    from edgesnn.devices.remote import RemoteDevice
    from edgesnn.model import Model

__version__ = "0.1.0"


def load(path: "str | _os.PathLike[str] | _IO[bytes]") -> "Model":
    """Load a model from a .esnn bundle, a .nir file (needs the ``nir`` extra) or a shipped model's name."""
    # Imports happen here so that `import edgesnn` stays light on a device.
    from edgesnn.catalog import resolve

    path = resolve(path)
    if isinstance(path, (str, _os.PathLike)) and _os.fspath(path).lower().endswith(".nir"):
        from edgesnn.errors import MissingDependencyError

        try:
            from edgesnn.bundle.nir import read_nir
        except MissingDependencyError:
            raise
        except ImportError as exc:
            if exc.name in ("nir", "h5py") or (exc.name or "").startswith("nir."):
                raise MissingDependencyError(
                    f"reading .nir files needs the {exc.name!r} package: pip install 'edgesnn[nir]'",
                    path=_os.fspath(path),
                ) from exc
            if exc.name == "edgesnn.bundle.nir":
                raise MissingDependencyError(
                    "NIR import (edgesnn.bundle.nir) is not available in this edgesnn installation",
                    path=_os.fspath(path),
                ) from exc
            raise
        return read_nir(path)
    from edgesnn.bundle import read_bundle

    return read_bundle(path)


def connect(address: str, **kwargs: object) -> "RemoteDevice":
    """Connect to an ``edgesnn serve`` daemon or a bridge; ``.load(path)`` then works as :func:`load` does."""
    from edgesnn.devices import connect as _connect

    return _connect(address, **kwargs)  # type: ignore[arg-type]
