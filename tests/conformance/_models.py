"""Small models, bundles and a served-device context shared by the device and serve tests."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

import numpy as np

from edgesnn.bundle import write_bundle
from edgesnn.devices import LocalDevice, RemoteDevice
from edgesnn.graph import LI, LIF, Affine, Graph, Input, Linear, Output
from edgesnn.learn.config import enable_learning
from edgesnn.model import Model
from edgesnn.serve import create_server

N_IN, N_HID, N_OUT = 12, 24, 4


def small_model(seed: int = 0) -> Model:
    """12 inputs -> 24 recurrent LIF -> 4 LI, dt 1 ms; fires a few percent of steps on Bernoulli input."""
    rng = np.random.default_rng(seed)
    nodes = {
        "in": Input((N_IN,), unit="spikes"),
        "fc_in": Linear((0.6 + 0.5 * rng.standard_normal((N_HID, N_IN))).astype(np.float32)),
        "lif": LIF.uniform(N_HID, tau_mem_s=20e-3, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0),
        "fc_rec": Linear((0.3 * rng.standard_normal((N_HID, N_HID))).astype(np.float32)),
        "fc_out": Affine((0.3 * rng.standard_normal((N_OUT, N_HID))).astype(np.float32), np.zeros(N_OUT, np.float32)),
        "li": LI.uniform(N_OUT, tau_mem_s=10e-3, r=1.0, v_leak=0.0),
        "out": Output((N_OUT,)),
    }
    edges = (("in", "fc_in"), ("fc_in", "lif"), ("lif", "fc_rec"), ("fc_rec", "lif"), ("lif", "fc_out"),
             ("fc_out", "li"), ("li", "out"))  # fmt: skip
    return Model(Graph(nodes, edges), 1e-3)


def learning_model(seed: int = 0) -> Model:
    """:func:`small_model` with on-device learning on the LIF layer."""
    return enable_learning(small_model(seed), feature_node="lif")


def bundle_bytes(model: Model) -> bytes:
    """The .esnn bundle of ``model``."""
    buf = io.BytesIO()
    write_bundle(model, buf)
    return buf.getvalue()


def spikes(steps: int, batch: int = 1, seed: int = 1, density: float = 0.3) -> np.ndarray:
    """Bernoulli spike input (steps, batch, N_IN) float32."""
    rng = np.random.default_rng(seed)
    return (rng.random((steps, batch, N_IN)) < density).astype(np.float32)


@contextlib.contextmanager
def served(device: LocalDevice | None = None, address: str = "127.0.0.1:0", **options) -> Iterator[tuple[object, str]]:
    """A server for ``device`` on ``address``; yields (server, client address) and stops it afterwards."""
    server, port = create_server(device or LocalDevice(), address, **options)
    target = address if address.startswith("unix:") else f"127.0.0.1:{port}"
    try:
        yield server, target
    finally:
        server.stop(0)


@contextlib.contextmanager
def remote(address: str, **kw) -> Iterator[RemoteDevice]:
    """A RemoteDevice for ``address``, closed afterwards."""
    dev = RemoteDevice(address, **kw)
    try:
        yield dev
    finally:
        dev.close()
