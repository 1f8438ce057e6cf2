"""lava-dl netx HDF5: the layout written, and a round trip back to a model with the same Loihi program."""

from __future__ import annotations

import pathlib

import h5py
import numpy as np
import pytest

from edgesnn.bundle.netx import read_netx, write_netx
from edgesnn.errors import BundleFormatError
from edgesnn.loihi import quantize
from tests.loihi_helpers import bernoulli, conv_model
from tools.bench.workloads import w2


def test_netx_layout_follows_lava_dl(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "conv.net"
    write_netx(conv_model(), path)
    with h5py.File(path, "r") as f:
        assert f["layer/0/type"][()] == b"input" and list(f["layer/0/shape"][()]) == [12, 12, 2]  # x, y, z
        conv = f["layer/1"]
        assert conv["type"][()] == b"conv" and list(conv["shape"][()]) == [6, 6, 6]
        assert conv["weight"].shape == (6, 2, 3, 3) and list(conv["stride"][()]) == [2, 2]
        assert conv["neuron/type"][()] == b"CUBA" and conv["neuron/iDecay"][()] == 4096  # du 4095 + 1
        assert f["layer/2/type"][()] == b"flatten" and f["layer/3/type"][()] == b"dense"
        assert f["layer/3/inFeatures"][()] == 216 and f["layer/3/outFeatures"][()] == 8


@pytest.mark.parametrize("which", ["W2", "conv"])
def test_round_trip_keeps_the_loihi_program(tmp_path: pathlib.Path, which: str) -> None:
    model = w2(np.random.default_rng(0)).model if which == "W2" else conv_model()
    shape = model.inputs[0].shape
    path = tmp_path / "m.net"
    write_netx(model, path)
    back = read_netx(path, dt_s=model.dt_s)
    a, b = quantize(model), quantize(back)
    for la, lb in zip(a.neurons.values(), b.neurons.values(), strict=True):
        assert (la.du, la.dv, la.spiking) == (lb.du, lb.dv, lb.spiking)
    xs = bernoulli(shape, 60, 0.02 if which == "W2" else 0.1)[:, None]
    names_a, names_b = list(a.neurons), list(b.neurons)
    ra, rb = model.session().run(xs, outputs=names_a), back.session().run(xs, outputs=names_b)
    for na, nb in zip(names_a, names_b, strict=True):
        if a.neurons[na].spiking:  # the imported weights are the 8-bit mantissas: close, not equal
            assert np.mean(ra[na] == rb[nb]) > 0.9


def test_not_a_netx_file_is_named(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty.net"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with pytest.raises(BundleFormatError, match="no 'layer' group"):
        read_netx(path)
