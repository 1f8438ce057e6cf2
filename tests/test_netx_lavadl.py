"""netx files from lava-dl 0.6.0 itself, and edgesnn's netx files in lava-dl's reader, against Lava's own runs.

The fixtures in tests/data/netx/ come from ``bash tools/fixtures/run.sh lavadl`` (see
tools/fixtures/lavadl.py): slayer CUBA blocks exported by slayer, slayer's own spikes, and the
files read by lava-dl's ``netx.hdf5.Network`` and run on Lava 0.10's fixed_pt models (spikes,
u and v per step). These tests need neither lava-dl nor Lava.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

pytest.importorskip("h5py")

from edgesnn.bundle.netx import read_netx, write_netx  # noqa: E402
from edgesnn.errors import BundleFormatError, UnsupportedError  # noqa: E402
from edgesnn.loihi import quantize, to_model  # noqa: E402
from tools.fixtures.lavadl import INPUTS, esnn_models  # noqa: E402

DATA = pathlib.Path(__file__).parent / "data" / "netx"


def load(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA / f"{name}.npz") as f:
        return {k: f[k] for k in f.files}


def layer_keys(data: dict[str, np.ndarray], who: str) -> list[str]:
    """``<who>/layer<i>`` spike arrays of a fixture, by layer index."""
    keys = [k for k in data if k.startswith(f"{who}/layer") and k.count("/") == 1]
    return sorted(keys, key=lambda k: int(k.rsplit("layer", 1)[1]))


def run_loihi(model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's spikes, u and v under numerics="loihi", batch of one, (T, *shape)."""
    names = [f"{n}{k}" for n in model.loihi.neurons for k in ("", "/u", "/v")]
    out = model.session(numerics="loihi").run(x[:, None], outputs=names)
    return {k: v[:, 0] for k, v in out.items()}


@pytest.mark.parametrize("net", ["dense", "conv"])
def test_slayer_and_lava_dl_netx_agree_on_the_exported_file(net):
    # What the fixture shows: slayer's forward pass (its delay_shift per block) and lava-dl's netx
    # reader on Lava's fixed_pt models give the same spikes, layer for layer.
    data = load(f"lavadl_{net}")
    for key in layer_keys(data, "slayer"):
        assert data[key].sum() > 10, key
        np.testing.assert_array_equal(data[key], data[key.replace("slayer/", "lava/")], err_msg=key)


@pytest.mark.parametrize("net", ["dense", "conv"])
def test_a_lava_dl_file_reads_as_its_integers_bit_exact_with_lava(net):
    # dense: dense -> dense_rec (one weight exponent for both matrices) -> dense, no input layer;
    # conv: a 3 x 2 kernel, stride (2, 1), padding (1, 0) on 9 x 6 input, flatten, two dense.
    data = load(f"lavadl_{net}")
    shape = INPUTS[net] if net == "conv" else None  # a dense first layer gives its own input size
    model = read_netx(DATA / f"lavadl_{net}.net", input_shape=shape)

    ours = run_loihi(model, data["x"])

    assert [int(n.removeprefix("neuron")) for n in model.loihi.neurons] == [
        int(k.rsplit("layer", 1)[1]) for k in layer_keys(data, "lava")
    ]
    for name in model.loihi.neurons:
        i = name.removeprefix("neuron")
        np.testing.assert_array_equal(ours[name], data[f"lava/layer{i}"], err_msg=name)
        for var in ("u", "v"):
            np.testing.assert_array_equal(ours[f"{name}/{var}"], data[f"lava/layer{i}/{var}"], err_msg=f"{name}/{var}")


@pytest.mark.parametrize("net", ["dense", "conv"])
def test_the_float_equivalent_follows_lava_but_not_bit_exactly(net):
    # The float graph keeps no per-connection step (LoihiNetwork.latency) and no truncation of the
    # 12-bit decays: shifted by the latency it agrees with Lava on nearly every entry.
    data = load(f"lavadl_{net}")
    model = read_netx(DATA / f"lavadl_{net}.net", input_shape=INPUTS[net] if net == "conv" else None)
    names = list(model.loihi.neurons)
    ours = model.session().run(data["x"][:, None], outputs=names)
    for name, lag in model.loihi.latency().items():
        lava = data[f"lava/layer{name.removeprefix('neuron')}"][lag:]
        float_spikes = ours[name][: len(ours[name]) - lag, 0]
        assert np.mean(float_spikes == lava) > 0.9, name


def test_edgesnn_files_in_lava_dl_netx_give_edgesnn_loihi_spikes(tmp_path):
    # The other direction: write_netx's file read by lava-dl's own netx.hdf5.Network and run on Lava
    # (fixture) against edgesnn's Loihi numerics of the model it was written from: the conv layer's
    # weight order (kernel 3 high, 2 wide; stride (2, 1)) and the flatten order agree with lava-dl's.
    for name, model in esnn_models().items():
        data = load(f"lavadl_esnn_{name}")
        write_netx(model, tmp_path / "now.net")  # the committed file is still what write_netx writes
        now, then = read_netx(tmp_path / "now.net").loihi, read_netx(DATA / f"lavadl_esnn_{name}.net").loihi
        for a, b in zip(now.connections.values(), then.connections.values(), strict=True):
            np.testing.assert_array_equal(a.weight, b.weight, err_msg=a.node)

        net = quantize(model, weight_exp=0, bias_exp=6)
        ours = run_loihi(to_model(net), data["x"])

        lava_layers = layer_keys(data, "lava")
        assert len(lava_layers) == len(net.neurons)
        for layer, key in zip(net.neurons, lava_layers, strict=True):
            assert data[key].sum() > 10, key
            np.testing.assert_array_equal(ours[layer], data[key], err_msg=f"{name}: {layer}")
            for var in ("u", "v"):
                np.testing.assert_array_equal(ours[f"{layer}/{var}"], data[f"{key}/{var}"], err_msg=f"{layer}/{var}")


def test_a_file_without_input_layer_needs_the_input_shape_only_for_a_conv_start():
    path = DATA / "lavadl_conv.net"
    with pytest.raises(BundleFormatError, match="layer/0: the file has no input layer and starts with a conv"):
        read_netx(path)
    with pytest.raises(BundleFormatError, match="layer/0/inChannels: input_shape has 3 channels"):
        read_netx(path, input_shape=(3, 9, 6))
    assert read_netx(DATA / "lavadl_dense.net").loihi.inputs == {"in": (16,)}
    with pytest.raises(BundleFormatError, match="layer/0/inFeatures: input_shape"):
        read_netx(DATA / "lavadl_dense.net", input_shape=(15,))
    with pytest.raises(BundleFormatError, match=r"layer/0/shape: the file's input layer has shape \(2, 9, 6\)"):
        read_netx(DATA / "lavadl_esnn_conv.net", input_shape=(2, 6, 9))


def test_a_recurrent_network_is_not_written_as_netx_and_the_connection_is_named(tmp_path):
    # write_netx writes sequential dense and conv layers; a dense_rec layer it reads is refused on the way out.
    model = read_netx(DATA / "lavadl_dense.net")
    with pytest.raises(UnsupportedError, match="netx layers are sequential") as err:
        write_netx(model, tmp_path / "rec.net")
    assert err.value.path in model.loihi.connections and not (tmp_path / "rec.net").exists()
