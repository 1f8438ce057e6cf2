"""Each Lava session runs in a worker process of its own: a fresh interpreter.

Lava starts its runtime by forking one process per Lava process; forking from a gRPC
server's handler threads can deadlock (gRPC skips its fork handlers while other
threads are inside it). The worker (``python -m firmware_bridges.loihi2.worker``) has
no gRPC, so Lava forks cleanly there; it is a plain subprocess rather than a
``multiprocessing`` child because Lava sets the fork start method at import, which a
spawned child refuses. Requests and replies cross an authenticated local socket
(``multiprocessing.connection``, a random key per worker) between the bridge and its
own child, never the network; errors come back as their ``edgesnn.errors`` class
name, message and path and are raised again here.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Client, Listener
from typing import Any

import numpy as np

from edgesnn import errors
from edgesnn.devices.base import DeviceSession
from edgesnn.errors import DeviceError, EdgeSNNError, NotFoundError
from edgesnn.model import TensorSpec

log = logging.getLogger("edgesnn.loihi2")

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _describe(session: Any) -> dict[str, Any]:
    return {"dt_s": session.dt_s, "adapt_method": session.adapt_method, "backend": session.backend,
            "inputs": session.inputs, "outputs": session.outputs, "recordable": session.recordable,
            "initial_state": session.initial_state}  # fmt: skip


def _serve(conn: Any) -> None:
    """Worker main: build the session, then answer (method, args, kwargs) requests until "close"."""
    import dataclasses

    from edgesnn.adapt import retime_model
    from edgesnn.bundle import read_bundle
    from firmware_bridges.loihi2.session import LavaSession

    model_id, bundle, dt, adapt_method, tag, store = conn.recv()
    try:
        model = read_bundle(io.BytesIO(bundle))
        if adapt_method is not None:
            model = dataclasses.replace(model, adapt_method=adapt_method)
        if dt is not None:
            model = retime_model(model, dt)
        session = LavaSession(model_id, model, tag, store)
        conn.send(("ok", _describe(session)))
    except EdgeSNNError as exc:
        conn.send(("error", (type(exc).__name__, exc.message, exc.path)))
        return
    except Exception as exc:  # reported to the bridge, which answers INTERNAL
        conn.send(("internal", f"{type(exc).__name__}: {exc}"))
        return
    try:
        while True:
            method, args, kwargs = conn.recv()
            if method == "close":
                break
            try:
                result = getattr(session, method)(*args, **kwargs)
                # Outputs change with a retime, and with the classes a learn or forget adds or removes.
                extra = _describe(session) if method in ("retime", "learn", "forget") else None
                conn.send(("ok", (result, extra)))
            except EdgeSNNError as exc:
                conn.send(("error", (type(exc).__name__, exc.message, exc.path)))
            except Exception as exc:
                conn.send(("internal", f"{type(exc).__name__}: {exc}"))
    except EOFError:
        pass  # the bridge went away
    finally:
        session.close()
        try:
            conn.send(("ok", None))
        except (BrokenPipeError, OSError):
            pass


def _raise(kind: str, payload: Any) -> None:
    if kind == "error":
        name, message, path = payload
        cls = getattr(errors, name, None)
        if not (isinstance(cls, type) and issubclass(cls, EdgeSNNError)):
            cls = DeviceError
        raise cls(message, path=path)
    raise DeviceError(f"Lava worker failed: {payload}", path="loihi2")


class WorkerSession(DeviceSession):
    """A LavaSession living in a spawned worker process; the same API, forwarded over a pipe."""

    def __init__(
        self,
        model_id: str,
        bundle: bytes,
        dt: float | None,
        adapt_method: str | None,
        tag: str,
        store: str | None = None,
    ) -> None:
        key = secrets.token_bytes(32)
        self._dir = tempfile.TemporaryDirectory(prefix="edgesnn-lava-")
        address = os.path.join(self._dir.name, "worker.sock")
        with Listener(address, family="AF_UNIX", authkey=key) as listener:
            env = {**os.environ, "EDGESNN_LAVA_WORKER_KEY": key.hex()}
            self._proc = subprocess.Popen([sys.executable, "-m", "firmware_bridges.loihi2.worker", address], env=env,
                                          cwd=_ROOT)  # fmt: skip
            self._conn = listener.accept()
        self._conn.send((model_id, bundle, dt, adapt_method, tag, store))
        self._lock = threading.Lock()
        self._closed = False
        self._model_id = model_id
        kind, payload = self._recv()
        if kind != "ok":
            self._proc.wait(10)
            _raise(kind, payload)
        self._info = payload

    def _recv(self) -> tuple[str, Any]:
        try:
            return self._conn.recv()
        except EOFError as exc:
            raise DeviceError("the Lava worker process exited", path="loihi2") from exc

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._closed:
                raise NotFoundError("session is closed", path="session")
            self._conn.send((method, args, kwargs))
            kind, payload = self._recv()
        if kind != "ok":
            _raise(kind, payload)
        result, info = payload
        if info is not None:
            self._info = info
        return result

    @property
    def model_id(self) -> str:
        """Id of the model this session runs."""
        return self._model_id

    @property
    def dt_s(self) -> float:
        """Step in seconds."""
        return self._info["dt_s"]

    @property
    def batch(self) -> int:
        """One stream."""
        return 1

    @property
    def adapt_method(self) -> str:
        """Adaptation method retime uses by default."""
        return self._info["adapt_method"]

    @property
    def backend(self) -> str:
        """Lava run configuration."""
        return self._info["backend"]

    @property
    def inputs(self) -> list[TensorSpec]:
        """Input specs."""
        return list(self._info["inputs"])

    @property
    def outputs(self) -> list[TensorSpec]:
        """Output specs."""
        return list(self._info["outputs"])

    @property
    def recordable(self) -> list[str]:
        """Layer states step/run return by name ("lif/u", "lif/v", ...)."""
        return list(self._info["recordable"])

    @property
    def initial_state(self) -> str:
        """Where the session starts: the network's rest (its u_init and v_init)."""
        return self._info["initial_state"]

    def step(
        self, x: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """One Loihi time step in the worker."""
        return self._call("step", x, outputs)

    def run(
        self, xs: np.ndarray | Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
    ) -> dict[str, np.ndarray]:
        """A sequence in the worker."""
        return self._call("run", xs, outputs)

    def reset(self) -> None:
        """Reset Lava's state."""
        self._call("reset")

    def state(self) -> bytes:
        """Serialised state."""
        return self._call("state")

    def load_state(self, data: bytes) -> None:
        """Restore a state."""
        self._call("load_state", data)

    def retime(self, dt: float, method: str | None = None) -> None:
        """Recompile at another step."""
        self._call("retime", dt, method)

    def learn(self, label: str, example: np.ndarray) -> dict[str, Any]:
        """Teach a class in the worker: the example through Lava, the rule on Lava's learning engine."""
        return self._call("learn", label, example)

    def forget(self, label: str) -> dict[str, Any]:
        """Forget a learned class in the worker."""
        return self._call("forget", label)

    def classes(self) -> list[str]:
        """Learned classes."""
        return self._call("classes")

    def decide(self) -> list[str | None]:
        """The learned label scoring highest now."""
        return self._call("decide")

    def close(self) -> None:
        """Stop Lava and the worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._conn.send(("close", (), {}))
                if self._conn.poll(30):
                    self._conn.recv()
            except (BrokenPipeError, EOFError, OSError):
                pass
            self._conn.close()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            log.warning("Lava worker %s did not stop; terminating it", self._proc.pid)
            self._proc.terminate()
            self._proc.wait(5)
        self._dir.cleanup()


if __name__ == "__main__":
    with Client(sys.argv[1], family="AF_UNIX", authkey=bytes.fromhex(os.environ["EDGESNN_LAVA_WORKER_KEY"])) as c:
        _serve(c)
