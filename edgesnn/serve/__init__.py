"""The ``edgesnn serve`` daemon: the edgesnn.v1 gRPC service over any Device.

>>> from edgesnn.devices import LocalDevice            # doctest: +SKIP
>>> server, port = create_server(LocalDevice(), "127.0.0.1:0")

The server parts load on first use, so that clients importing :mod:`edgesnn.serve.errors`
do not pull in the health and reflection services.
"""

from typing import Any

__all__ = ["DeviceServer", "TLSConfig", "create_server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from edgesnn.serve import server

        return getattr(server, name)
    raise AttributeError(f"module 'edgesnn.serve' has no attribute {name!r}")
