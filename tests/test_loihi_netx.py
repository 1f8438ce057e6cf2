"""lava-dl netx HDF5: the layout written, and files read as their own integers, bit-exact with Lava.

lava-dl itself (0.6.0) needs torch and Python < 3.11, so the outside reference for a file
is Lava's processes built straight from the file's integers
(``firmware_bridges/loihi2/netx_lava.py``), in the bridge venv.
"""

from __future__ import annotations

import pathlib

import h5py
import numpy as np
import pytest

from edgesnn.bundle.netx import netx_dense, read_netx, write_netx
from edgesnn.errors import BundleFormatError, UnsupportedError
from edgesnn.loihi import Connection, LoihiNetwork, NeuronLayer, quantize, to_model
from tests.loihi_helpers import bernoulli, conv_model, lava_simulate_netx
from tools.bench.workloads import w2


def _type(g: h5py.Group, name: str) -> None:
    g.create_dataset("type", (1,), "S10", [name.encode()])  # as slayer writes it


def _neuron(g: h5py.Group, i_decay: int, v_decay: int, vth: int) -> None:
    n = g.create_group("neuron")
    _type(n, "CUBA")
    n["iDecay"], n["vDecay"], n["vThMant"], n["refDelay"], n["gradedSpike"] = i_decay, v_decay, vth, 1, 0


def lava_dl_file(path: pathlib.Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A netx file in lava-dl's layout: conv (per-channel bias, uneven stride), flatten, three dense layers.

    The dense weights take each of netx's weight fittings: odd mixed weights within +-127
    (netx doubles them, exponent -1), odd mixed weights up to 254 (9 weight bits), and
    one-signed weights with a bias. Returns the file's weights by layer.
    """
    weights = {
        "conv1": rng.integers(-40, 40, (4, 2, 3, 3)),
        "fc3": rng.integers(-127, 128, (16, 4 * 6 * 3)) | 1,
        "fc4": np.where(rng.random((12, 16)) < 0.5, rng.integers(-200, 254, (12, 16)) | 1, 0),
        "fc5": rng.integers(0, 255, (5, 12)),
    }
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        _type(g, "input")
        g["shape"] = [2, 12, 8]  # (C, H, W): netx reverses it into Lava's (x, y, c)
        g = f.create_group("layer/1")
        _type(g, "conv")
        g["shape"], g["inChannels"], g["outChannels"], g["kernelSize"] = [4, 6, 3], 2, 4, [3, 3]
        g["stride"], g["padding"], g["dilation"], g["groups"] = [2, 2], [1, 0], [1, 1], 1
        g["weight"], g["bias"] = weights["conv1"].astype(np.float32), np.array([3.0, -2.0, 0.0, 5.0], np.float32)
        _neuron(g, 1024, 300, 80)
        g = f.create_group("layer/2")
        _type(g, "flatten")
        g["shape"] = [72]
        for i, (name, i_decay, v_decay, vth) in enumerate((("fc3", 4096, 200, 300), ("fc4", 600, 100, 2500),
                                                            ("fc5", 2000, 50, 400)), start=3):  # fmt: skip
            g = f.create_group(f"layer/{i}")
            _type(g, "dense")
            w = weights[name]
            g["shape"], g["inFeatures"], g["outFeatures"] = [w.shape[0]], w.shape[1], w.shape[0]
            g["weight"] = w.astype(np.float32)
            if name == "fc5":
                g["bias"] = rng.integers(-20, 20, w.shape[0]).astype(np.float32)
            _neuron(g, i_decay, v_decay, vth)
    return weights


def test_netx_layout_follows_lava_dl(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "conv.net"
    write_netx(conv_model(), path)
    with h5py.File(path, "r") as f:
        # netx reads shape[::-1] as Lava's (x, y, c): the file holds (C, H, W)
        assert f["layer/0/type"][()] == b"input" and list(f["layer/0/shape"][()]) == [2, 12, 12]
        conv = f["layer/1"]
        assert conv["type"][()] == b"conv" and list(conv["shape"][()]) == [6, 6, 6]
        assert conv["weight"].shape == (6, 2, 3, 3) and list(conv["stride"][()]) == [2, 2]
        assert conv["neuron/type"][()] == b"CUBA" and conv["neuron/iDecay"][()] == 4096  # du 4095 + 1
        assert f["layer/2/type"][()] == b"flatten" and f["layer/3/type"][()] == b"dense"
        assert f["layer/3/inFeatures"][()] == 216 and f["layer/3/outFeatures"][()] == 8


@pytest.mark.parametrize("which", ["W2", "conv"])
def test_write_then_read_runs_the_same_integers(tmp_path: pathlib.Path, which: str) -> None:
    model = w2(np.random.default_rng(0)).model if which == "W2" else conv_model()
    path = tmp_path / "m.net"
    write_netx(model, path)  # quantised as netx needs it: weight_exp 0, bias_exp 6
    back = read_netx(path, dt_s=model.dt_s)
    net = quantize(model, weight_exp=0, bias_exp=6)
    assert [(la.du, la.dv, la.vth, la.spiking) for la in net.neurons.values()] == [
        (lb.du, lb.dv, lb.vth, lb.spiking) for lb in back.loihi.neurons.values()
    ]
    xs = bernoulli(model.inputs[0].shape, 60, 0.02 if which == "W2" else 0.1)[:, None]
    ours = to_model(net).session(numerics="loihi").run(xs, outputs=[f"{n}/v" for n in net.neurons])
    theirs = back.session(numerics="loihi").run(xs, outputs=[f"{n}/v" for n in back.loihi.neurons])
    for na, nb in zip(net.neurons, back.loihi.neurons, strict=True):
        np.testing.assert_array_equal(ours[f"{na}/v"], theirs[f"{nb}/v"], err_msg=na)
    assert any(np.any(theirs[f"{n}/v"]) for n in back.loihi.neurons)


def test_a_lava_dl_file_runs_its_own_integers_bit_exact_with_lava(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "lava_dl.net"
    weights = lava_dl_file(path, np.random.default_rng(5))
    model = read_netx(path, dt_s=1e-3)
    net = model.loihi
    # The file's integers, unchanged: what Lava computes with is the file's weights at its exponent.
    for name, w in weights.items():
        c = net.connections[name]
        np.testing.assert_array_equal(np.ldexp(c.lava_weight.astype(np.float64), c.weight_exp), w, err_msg=name)
    assert net.connections["fc3"].weight_exp == -1 and net.connections["fc4"].num_weight_bits == 9
    assert (net.neurons["neuron4"].du, net.neurons["neuron4"].dv, net.neurons["neuron4"].vth) == (599, 100, 2500)
    xs = bernoulli((2, 12, 8), 50, 0.3, seed=4)
    lava = lava_simulate_netx(tmp_path, path, xs, 1e-3)
    names = [f"{n}{k}" for n in net.neurons for k in ("", "/u", "/v")]
    ours = model.session(numerics="loihi").run(xs[:, None], outputs=names)
    for name in names:
        np.testing.assert_array_equal(ours[name][:, 0], lava[name], err_msg=name)
    assert all(lava[n].any() for n in net.neurons)  # every layer fires


def test_netx_weight_fitting_follows_lava_dl() -> None:
    w, exp, bits = netx_dense(np.array([[100, -3]]), "w")  # within +-127: doubled
    assert (w.tolist(), exp, bits) == ([[200, -6]], -1, 8)
    w, exp, bits = netx_dense(np.array([[201, -3]]), "w")  # up to 254, odd: every bit kept
    assert (w.tolist(), exp, bits) == ([[201, -3]], 0, 9)
    # Inhibitory, with 2 shared trailing zero bits: lava-dl doubles -128 to -256 and asks for 5 bits;
    # Lava clips -256 to -255 and truncates to -248: the file's -128 arrives as -124.
    w, exp, bits = netx_dense(np.array([[-128, -4]]), "w")
    assert (w.tolist(), exp, bits) == ([[-256, -8]], -1, 5)
    c = Connection(node="c", source="s", target="t", weight=w, weight_exp=exp, num_weight_bits=bits)
    assert c.resolved_sign_mode == "inhibitory" and c.lava_weight.tolist() == [[-248, -8]]


def _one_layer(**layer) -> LoihiNetwork:
    conn = {"weight_exp": 0, **layer.pop("conn", {})}
    weight = np.arange(12).reshape(3, 4) - 6
    return LoihiNetwork(
        dt_s=1e-3,
        inputs={"in": (4,)},
        neurons=[NeuronLayer(node="lif", shape=(3,), du=4095, dv=100, vth=200, **layer)],
        connections=[Connection(node="fc", source="in", target="lif", weight=weight, **conn)],
    )


def test_what_netx_cannot_hold_is_refused_by_name(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x.net"
    write_netx(_one_layer(bias_mant=[64, 0, -128], bias_exp=0), path)  # multiples of 2**6 fold into netx's bias
    with h5py.File(path, "r") as f:
        assert f["layer/1/bias"][()].tolist() == [1, 0, -2]
    write_netx(_one_layer(conn={"weight_exp": -1}), path)  # Lava keeps even mixed weights: -1 folds into them
    with pytest.raises(UnsupportedError, match="fc/weight_exp: weight_exp -2 does not fold"):
        write_netx(_one_layer(conn={"weight_exp": -2}), path)
    with pytest.raises(UnsupportedError, match="lif/bias_mant: netx biases are bias_mant << 6"):
        write_netx(_one_layer(bias_mant=5), path)
    with pytest.raises(UnsupportedError, match="lif/v_init: netx files have no initial"):
        write_netx(_one_layer(v_init=7), path)


def test_not_a_netx_file_is_named(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "empty.net"
    with h5py.File(path, "w") as f:
        f["x"] = 1
    with pytest.raises(BundleFormatError, match="no 'layer' group"):
        read_netx(path)
    lava_dl_file(path, np.random.default_rng(0))
    with h5py.File(path, "a") as f:
        f["layer/3/neuron/vThMant"][()] = 1 << 17
    with pytest.raises(BundleFormatError, match=r"layer/3/neuron/vThMant: expected an integer in \[0, 131071\]"):
        read_netx(path)
