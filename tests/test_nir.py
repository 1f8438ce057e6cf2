"""NIR import and export: every profile against its framework's own update loop, and exact round trips.

Each framework test builds a NIR graph the way that framework's exporter writes
it (same parameter conventions), imports it with the matching profile, runs it
through the engine, and compares the spikes with a small numpy re-implementation
of the framework's own simulation loop.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from edgesnn.bundle.nir import PROFILES, from_nir, read_nir, to_nir, write_nir  # noqa: E402
from edgesnn.cli import PROFILES as CLI_PROFILES  # noqa: E402
from edgesnn.errors import NIRImportError, OptionError  # noqa: E402
from edgesnn.graph import NODE_TYPES, AdaptiveLIF, Graph, Input, Onnx, Output  # noqa: E402
from edgesnn.model import Model  # noqa: E402
from tests.helpers import (  # noqa: E402
    assert_models_equal,
    mock_conv_model,
    mock_model,
    mock_node_graph,
    mock_rnn_model,
    tiny_onnx_model,
)

F32 = np.float32
DATA = pathlib.Path(__file__).parent / "data" / "nir"


def dense_graph(neuron, n_in: int, weight: np.ndarray, *, name: str = "lif") -> nir.NIRGraph:
    """``input -> fc (Linear) -> neuron -> output``, as nirtorch-based exporters lay it out."""
    n_out = weight.shape[0]
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([n_in])),
            "fc": nir.Linear(weight=weight.astype(F32)),
            name: neuron,
            "output": nir.Output(output_type=np.array([n_out])),
        },
        edges=[("input", "fc"), ("fc", name), (name, "output")],
        type_check=False,  # 0-d parameters (Norse 1.1) fail nir's checker; edgesnn broadcasts them
    )


def run(model: Model, xs: np.ndarray, output: str = "output") -> np.ndarray:
    """Run a (T, n) input sequence with batch 1 and return the (T, m) output."""
    return model.session().run(xs[:, None, :].astype(F32))[output][:, 0]


def spike_inputs(seed: int, steps: int, n: int, p: float = 0.3) -> np.ndarray:
    return (np.random.default_rng(seed).random((steps, n)) < p).astype(F32)


# -- snnTorch ------------------------------------------------------------------------


def snntorch_lif(beta: np.ndarray, threshold: np.ndarray) -> nir.LIF:
    """Leaky(beta) as snntorch/export_nir.py writes it: dt = 1e-4, tau = dt/(1-beta), r = tau/dt."""
    dt = 1e-4
    tau = dt / (1 - beta)
    return nir.LIF(tau=tau, r=tau / dt, v_leak=np.zeros_like(beta), v_threshold=threshold, v_reset=np.zeros_like(beta))


def snntorch_cubalif(alpha: np.ndarray, beta: np.ndarray, threshold: np.ndarray) -> nir.CubaLIF:
    """Synaptic(alpha, beta) as snnTorch writes it: w_in = tau_syn/dt."""
    dt = 1e-4
    tau_syn, tau_mem = dt / (1 - alpha), dt / (1 - beta)
    return nir.CubaLIF(
        tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / dt, v_leak=np.zeros_like(beta), v_threshold=threshold,
        v_reset=np.zeros_like(beta), w_in=tau_syn / dt,
    )  # fmt: skip


def snntorch_leaky_loop(x: np.ndarray, beta, thr, mode: str = "subtract") -> np.ndarray:
    """snnTorch Leaky, reset_delay=True: reset = H(mem_prev - thr) applied in the next update."""
    mem = np.zeros(x.shape[1], F32)
    out = []
    for xt in x:
        reset = (mem > thr).astype(F32)
        if mode == "subtract":
            mem = beta * mem + xt - reset * thr
        else:  # reset_mechanism="zero": the previous membrane is zeroed before the decay
            mem = beta * (1 - reset) * mem + xt
        out.append((mem > thr).astype(F32))
    return np.array(out)


def snntorch_synaptic_loop(x, alpha, beta, thr, mode="subtract", w_rec=None) -> np.ndarray:
    """snnTorch Synaptic / RSynaptic: syn = alpha*syn + x (+ W_rec spk_prev); mem = beta*mem + syn."""
    syn = np.zeros(x.shape[1], F32)
    mem = np.zeros(x.shape[1], F32)
    spk = np.zeros(x.shape[1], F32)
    out = []
    for xt in x:
        reset = (mem > thr).astype(F32)
        drive = xt if w_rec is None else xt + w_rec @ spk
        syn = alpha * syn + drive
        if mode == "subtract":
            mem = beta * mem + syn - reset * thr
        else:  # zero: the whole new membrane is zeroed in the step after a spike
            mem = (1 - reset) * (beta * mem + syn)
        spk = (mem > thr).astype(F32)
        out.append(spk)
    return np.array(out)


def test_snntorch_leaky_reproduces_subtract_reset_one_step_late():
    rng = np.random.default_rng(1)
    w = rng.uniform(0.0, 0.8, (4, 6)).astype(F32)
    beta = np.full(4, 0.9, F32)
    thr = np.array([1.0, 0.8, 1.2, 0.7], F32)
    graph = dense_graph(snntorch_lif(beta, thr), 6, w)
    x = spike_inputs(2, 60, 6)

    model = from_nir(graph, profile="snntorch")

    expected = snntorch_leaky_loop(x @ w.T, beta, thr)
    assert expected.sum() > 20
    np.testing.assert_array_equal(run(model, x), expected)
    assert model.dt_s == 1e-4 and model.method == "euler"
    assert model.producer["profile"] == "snntorch"
    assert model.graph.metadata["nir_import"]["reset_timing"] == "next_step"
    # What the file literally says (reset to zero at once) is a different network.
    plain = from_nir(graph, dt_s=1e-4)
    assert not np.array_equal(run(plain, x), expected)


def test_snntorch_zero_reset_for_leaky_and_synaptic():
    rng = np.random.default_rng(3)
    w = rng.uniform(0.0, 0.6, (3, 5)).astype(F32)
    alpha, beta = np.full(3, 0.8, F32), np.full(3, 0.85, F32)
    thr = np.ones(3, F32)
    x = spike_inputs(4, 80, 5)

    leaky = from_nir(dense_graph(snntorch_lif(beta, thr), 5, w), profile="snntorch", reset_mode="to_value")
    synaptic = from_nir(
        dense_graph(snntorch_cubalif(alpha, beta, thr), 5, w), profile="snntorch", reset_mode="to_value"
    )

    np.testing.assert_array_equal(run(leaky, x), snntorch_leaky_loop(x @ w.T, beta, thr, "zero"))
    expected = snntorch_synaptic_loop(x @ w.T, alpha, beta, thr, "zero")
    assert expected.sum() > 10
    np.testing.assert_array_equal(run(synaptic, x), expected)


def test_snntorch_rsynaptic_subgraph_is_flattened_with_prefixed_names():
    rng = np.random.default_rng(5)
    n = 4
    w_in = rng.uniform(0.0, 0.7, (n, 3)).astype(F32)
    w_rec = rng.uniform(-0.4, 0.4, (n, n)).astype(F32)
    alpha, beta, thr = np.full(n, 0.7, F32), np.full(n, 0.9, F32), np.ones(n, F32)
    rnn = nir.NIRGraph(  # snnTorch's RSynaptic export: a subgraph with a recurrent Linear
        nodes={
            "input": nir.Input(input_type=[n]),
            "lif": snntorch_cubalif(alpha, beta, thr),
            "w_rec": nir.Linear(weight=w_rec),
            "output": nir.Output(output_type=[n]),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
    )
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([3])), "fc": nir.Linear(weight=w_in), "rnn": rnn,
               "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "fc"), ("fc", "rnn"), ("rnn", "output")],
    )  # fmt: skip
    x = spike_inputs(6, 70, 3)

    model = from_nir(graph, profile="snntorch")

    assert list(model.graph.nodes) == ["input", "fc", "rnn.lif", "rnn.w_rec", "output"]
    assert ("rnn.w_rec", "rnn.lif") in model.graph.back_edges
    expected = snntorch_synaptic_loop(x @ w_in.T, alpha, beta, thr, w_rec=w_rec)
    assert expected.sum() > 10
    np.testing.assert_array_equal(run(model, x), expected)


# -- Norse ---------------------------------------------------------------------------


def norse_lif_loop(x, tau_syn_inv, tau_mem_inv, v_th, v_leak=0.0, v_reset=0.0, dt=1e-3, spiking=True):
    """Norse 1.x lif_feed_forward_step / li_feed_forward_step, float32."""
    v = np.full(x.shape[1], v_leak, F32)
    i = np.zeros(x.shape[1], F32)
    dt, tsi, tmi = F32(dt), F32(tau_syn_inv), F32(tau_mem_inv)
    out = []
    for xt in x:
        i = i + xt
        v = v + dt * tmi * ((F32(v_leak) - v) + i)
        i = i - dt * tsi * i
        if spiking:
            z = (v > v_th).astype(F32)
            v = (1 - z) * v + z * F32(v_reset)
            out.append(z)
        else:
            out.append(v.copy())
    return np.array(out)


def test_norse_lifcell_gets_unit_current_jumps_back():
    rng = np.random.default_rng(7)
    n = 5
    w = rng.uniform(0.0, 3.0, (n, 4)).astype(F32)
    tau_syn_inv, tau_mem_inv = 200.0, 100.0
    v_leak, v_reset, v_th = 0.1, -0.2, 0.5
    lif = nir.CubaLIF(  # norse/torch/utils/export_nir.py: tau = 1/tau_inv, r = 1, w_in = 1
        tau_syn=np.full(n, 1 / tau_syn_inv, F32), tau_mem=np.full(n, 1 / tau_mem_inv, F32), r=np.ones(n, F32),
        v_leak=np.full(n, v_leak, F32), v_threshold=np.full(n, v_th, F32), v_reset=np.full(n, v_reset, F32),
        w_in=np.ones(n, F32),
    )  # fmt: skip
    x = spike_inputs(8, 100, 4)

    model = from_nir(dense_graph(lif, 4, w), profile="norse")

    expected = norse_lif_loop(x @ w.T, tau_syn_inv, tau_mem_inv, v_th, v_leak, v_reset)
    assert expected.sum() > 10
    np.testing.assert_array_equal(run(model, x), expected)
    assert model.dt_s == 1e-3


def test_norse_licell_and_iafcell():
    rng = np.random.default_rng(9)
    w = rng.uniform(0.0, 1.0, (3, 4)).astype(F32)
    li = nir.CubaLI(tau_syn=np.full(3, 1 / 200, F32), tau_mem=np.full(3, 1 / 100, F32), r=np.ones(3, F32),
                    v_leak=np.zeros(3, F32), w_in=np.ones(3, F32))  # fmt: skip
    iaf = nir.IF(r=np.ones(3, F32), v_threshold=np.full(3, 1.5, F32), v_reset=np.zeros(3, F32))
    x = spike_inputs(10, 50, 4)

    readout = run(from_nir(dense_graph(li, 4, w), profile="norse"), x)
    spikes = run(from_nir(dense_graph(iaf, 4, w), profile="norse"), x)

    np.testing.assert_allclose(readout, norse_lif_loop(x @ w.T, 200.0, 100.0, 0.0, spiking=False), rtol=1e-5, atol=1e-6)
    v, expected = np.zeros(3, F32), []
    for xt in x @ w.T:  # IAFCell: v = v + x, no dt
        v = v + xt
        z = (v > 1.5).astype(F32)
        v = (1 - z) * v
        expected.append(z)
    np.testing.assert_array_equal(spikes, np.array(expected))


def test_norse_1_1_writes_dt_times_tau_as_scalars():
    # Norse 1.1 (PyPI): tau = dt/tau_inv with dt = 1 ms, 0-d parameters, no v_reset and no w_in.
    dt, tau_syn_inv, tau_mem_inv = 1e-3, 200.0, 100.0
    lif = nir.CubaLIF(tau_syn=np.array(dt / tau_syn_inv), tau_mem=np.array(dt / tau_mem_inv), r=np.array(1.0),
                      v_leak=np.array(0.0), v_threshold=np.array(1.0))  # fmt: skip
    w = np.random.default_rng(21).uniform(0.0, 3.0, (3, 4)).astype(F32)
    x = spike_inputs(22, 80, 4)

    model = from_nir(dense_graph(lif, 4, w), profile="norse")

    assert model.graph.nodes["lif"].shape == (3,)
    assert model.producer["tau_scale"] == pytest.approx(1 / dt)
    expected = norse_lif_loop(x @ w.T, tau_syn_inv, tau_mem_inv, 1.0)
    assert expected.sum() > 10
    np.testing.assert_array_equal(run(model, x), expected)


def test_norse_mixed_time_units_are_refused():
    lif = nir.CubaLIF(tau_syn=np.array([1e-5, 5e-3]), tau_mem=np.array([1e-2, 1e-2]), r=np.ones(2),
                      v_leak=np.zeros(2), v_threshold=np.ones(2))  # fmt: skip
    with pytest.raises(NIRImportError, match="dt_s"):
        from_nir(dense_graph(lif, 2, np.eye(2)), profile="norse")


# -- golden fixtures made by the frameworks themselves (tools/fixtures/snntorch.py, norse.py) --


@pytest.mark.parametrize(("name", "profile"), [("snntorch_leaky_synaptic", "snntorch"), ("norse_lifcell", "norse")])
def test_framework_exported_files_reproduce_the_framework_spikes(name, profile):
    data = np.load(DATA / f"{name}.npz")

    model = read_nir(DATA / f"{name}.nir", profile=profile)

    y = model.session().run(data["x"])[model.graph.outputs[0]]
    assert data["y"].sum() > 10
    np.testing.assert_array_equal(y, data["y"])


# -- Sinabs --------------------------------------------------------------------------


def test_sinabs_iaf_fires_on_equality_and_subtracts():
    # Quarter-valued inputs land exactly on the threshold: Sinabs fires on v >= threshold.
    x = np.random.default_rng(11).integers(0, 4, (60, 3)).astype(F32) * F32(0.25)
    iaf = nir.IF(r=np.ones(3, F32), v_threshold=np.ones(3, F32))  # sinabs/nir.py: IAF -> IF(r=1)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "iaf": iaf,
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "iaf"), ("iaf", "output")],
    )

    spikes = run(from_nir(graph, profile="sinabs"), x)

    v, expected = np.zeros(3, F32), []
    for xt in x:
        v = v + xt
        s = (v >= 1.0).astype(F32)  # SingleSpike / MultiSpike below 2*threshold
        v = v - s
        expected.append(s)
    expected = np.array(expected)
    assert expected.sum() > 10
    np.testing.assert_array_equal(spikes, expected)


def test_sinabs_lif_and_expleak_in_time_steps():
    rng = np.random.default_rng(13)
    w = rng.uniform(0.0, 2.0, (4, 5)).astype(F32)
    tau = np.array([4.0, 8.0, 12.0, 20.0], F32)  # time steps
    lif = nir.LIF(tau=tau, v_threshold=np.full(4, 0.3, F32), v_leak=np.zeros(4, F32), r=np.ones(4, F32))
    leak = nir.LI(tau=tau, v_leak=np.zeros(4, F32), r=np.ones(4, F32))
    x = spike_inputs(14, 80, 5)

    spikes = run(from_nir(dense_graph(lif, 5, w), profile="sinabs"), x)
    single = run(from_nir(dense_graph(lif, 5, w), profile="sinabs", max_spikes_per_step=1), x)
    trace = run(from_nir(dense_graph(leak, 5, w), profile="sinabs"), x)

    alpha = np.exp(-1.0 / tau).astype(F32)
    thr = F32(0.3)
    v, v1, u = np.zeros(4, F32), np.zeros(4, F32), np.zeros(4, F32)
    exp_spikes, exp_single, exp_trace = [], [], []
    for xt in x @ w.T:
        v = alpha * v + (1 - alpha) * xt  # LIF, norm_input=True, default MultiSpike
        s = np.maximum(np.floor(v / thr), 0).astype(F32)
        v = v - s * thr
        exp_spikes.append(s)
        v1 = alpha * v1 + (1 - alpha) * xt  # the same layer with SingleSpike
        s1 = (v1 >= thr).astype(F32)
        v1 = v1 - s1 * thr
        exp_single.append(s1)
        u = alpha * u + xt  # ExpLeak, norm_input=False
        exp_trace.append(u)
    assert np.max(exp_spikes) > 1 and np.sum(exp_single) > 10  # graded spikes do occur
    np.testing.assert_array_equal(spikes, np.array(exp_spikes))
    np.testing.assert_array_equal(single, np.array(exp_single))
    np.testing.assert_allclose(trace, np.array(exp_trace), rtol=1e-5)


# -- Rockpool ------------------------------------------------------------------------


def test_rockpool_lif_recovers_dt_and_decays_current_after_input():
    rng = np.random.default_rng(15)
    n, dt = 4, 1e-3
    w = rng.uniform(0.0, 0.8, (n, 3)).astype(F32)
    tau_mem = np.array([0.02, 0.01, 0.05, 0.03], F32)
    tau_syn = np.array([0.005, 0.01, 0.02, 0.004], F32)
    thr = np.full(n, 1.0, F32)
    lif = nir.CubaLIF(  # rockpool/nn/modules/torch/nir.py: r = tau_mem exp(-dt/tau_mem)/dt, bias dropped
        tau_syn=tau_syn, tau_mem=tau_mem, r=(tau_mem * np.exp(-dt / tau_mem) / dt).astype(F32),
        v_leak=np.zeros(n, F32), v_threshold=thr,
    )  # fmt: skip
    x = spike_inputs(16, 120, 3)

    model = from_nir(dense_graph(lif, 3, w), profile="rockpool")

    alpha, beta = np.exp(-dt / tau_mem).astype(F32), np.exp(-dt / tau_syn).astype(F32)
    isyn, vmem, expected = np.zeros(n, F32), np.zeros(n, F32), []
    for xt in x @ w.T:  # LIFTorch.forward
        isyn = beta * (isyn + xt)
        vmem = alpha * vmem + isyn
        s = np.maximum(np.floor(vmem / thr), 0).astype(F32)  # graded spikes, max_spikes_per_dt
        vmem = vmem - s * thr
        expected.append(s)
    assert np.sum(expected) > 10
    assert model.dt_s == pytest.approx(dt, rel=1e-5)
    np.testing.assert_array_equal(run(model, x), np.array(expected))


# -- Lava-dl -------------------------------------------------------------------------


def test_lava_dl_cuba_with_12_bit_decays():
    rng = np.random.default_rng(17)
    n = 3
    w = rng.uniform(0.0, 0.6, (n, 4)).astype(F32)
    i_decay, v_decay, vth = 1024.0, 256.0, 1.5
    cuba = nir.CubaLIF(  # lava/lib/dl/netx/nir.py: tau = 1/decay, r = 1, w_in = tau_syn
        tau_syn=np.full(n, 1 / i_decay), tau_mem=np.full(n, 1 / v_decay), r=np.ones(n), v_leak=np.zeros(n),
        v_threshold=np.full(n, vth), w_in=np.full(n, 1 / i_decay),
    )  # fmt: skip
    x = spike_inputs(18, 80, 4)

    model = from_nir(dense_graph(cuba, 4, w), profile="lava-dl")

    cur, vol, expected = np.zeros(n, F32), np.zeros(n, F32), []
    for xt in x @ w.T:
        cur = cur * F32(1 - i_decay / 4096) + xt
        vol = vol * F32(1 - v_decay / 4096) + cur
        s = (vol >= vth).astype(F32)
        vol = vol * (1 - s)
        expected.append(s)
    assert np.sum(expected) > 5
    np.testing.assert_array_equal(run(model, x), np.array(expected))


# -- plain NIR -----------------------------------------------------------------------


def test_plain_nir_lif_matches_forward_euler_closed_form():
    dt, tau, r, drive, thr = 1e-3, 0.02, 2.0, 0.8, 1.0
    lif = nir.LIF(tau=np.array([tau]), r=np.array([r]), v_leak=np.array([0.0]), v_threshold=np.array([thr]))
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1])),
            "lif": lif,
            "output": nir.Output(output_type=np.array([1])),
        },
        edges=[("input", "lif"), ("lif", "output")],
    )

    spikes = run(from_nir(graph, dt_s=dt), np.full((100, 1), drive, F32))[:, 0]

    # v_n = R*x*(1 - a^n) with a = 1 - dt/tau; it fires at the first n with v_n > thr, then restarts from 0.
    a = 1 - dt / tau
    period = int(np.ceil(np.log(1 - thr / (r * drive)) / np.log(a)))
    assert np.flatnonzero(spikes).tolist() == list(range(period - 1, 100, period))


def test_plain_nir_conv_same_padding_flatten_and_pool():
    rng = np.random.default_rng(19)
    weight = rng.standard_normal((3, 2, 3, 3)).astype(F32)
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([2, 6, 6])),
            "conv": nir.Conv2d(input_shape=(6, 6), weight=weight, stride=1, padding="same", dilation=1, groups=1,
                               bias=np.zeros(3, F32)),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type=np.array([3, 3, 3]), start_dim=0, end_dim=-1),  # snnTorch: torch dim 1 - 1
            "output": nir.Output(output_type=np.array([27])),
        },
        edges=[("input", "conv"), ("conv", "pool"), ("pool", "flat"), ("flat", "output")],
    )  # fmt: skip

    model = from_nir(graph, dt_s=1e-3)

    assert model.graph.nodes["conv"].padding == (1, 1)
    assert model.graph.shape("flat") == (27,)
    x = rng.standard_normal((1, 2, 6, 6)).astype(F32)
    y = model.session().step(x)["output"][0]
    padded = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    conv = np.array([[[np.sum(weight[o] * padded[:, i : i + 3, j : j + 3]) for j in range(6)] for i in range(6)]
                     for o in range(3)])  # fmt: skip
    np.testing.assert_allclose(y, conv.reshape(3, 3, 2, 3, 2).sum(axis=(2, 4)).reshape(-1), rtol=1e-4, atol=1e-5)


# -- round trips ---------------------------------------------------------------------

#: Node types NIR has no node for (the exporter refuses each, naming it).
NOT_IN_NIR = {"AdaptiveLIF", "Onnx", "ThresholdUnit", "TokenEmbedding", "PositionEmbedding", "LayerNorm", "GELU",
              "ReLU", "SlidingWindowAttention", "PlasticAttention"}  # fmt: skip
NIR_NODE_TYPES = sorted(set(NODE_TYPES) - NOT_IN_NIR)


@pytest.mark.parametrize("type_name", NIR_NODE_TYPES)
def test_round_trip_is_exact_for_every_node_nir_can_hold(type_name):
    model = mock_model(mock_node_graph(type_name, seed=3))

    back = from_nir(to_nir(model))

    assert_models_equal(model, back)


@pytest.mark.parametrize("make", [mock_rnn_model, mock_conv_model])
def test_round_trip_through_a_nir_file_is_exact(tmp_path, make):
    model = make()
    path = tmp_path / "model.nir"

    write_nir(model, path)
    back = read_nir(path)

    assert_models_equal(model, back)
    xs = (np.random.default_rng(0).random((20, 1, *model.inputs[0].shape)) < 0.3).astype(F32)
    name = model.outputs[0].name
    np.testing.assert_array_equal(model.session().run(xs)[name], back.session().run(xs)[name])


def test_written_file_is_plain_nir(tmp_path):
    model = mock_rnn_model()
    write_nir(model, tmp_path / "rnn.nir")

    graph = nir.read(tmp_path / "rnn.nir")

    assert isinstance(graph.nodes["lif1"], nir.LIF)
    np.testing.assert_array_equal(graph.nodes["lif1"].tau, model.graph.nodes["lif1"].tau_mem_s)
    assert sorted(graph.edges) == sorted(model.graph.edges)
    # A framework profile ignores the edgesnn record and reads the file as that framework would.
    assert from_nir(graph, profile="snntorch").dt_s == 1e-4


def test_all_nodes_in_one_graph_round_trip(tmp_path):
    nodes, edges = {}, []
    for i, type_name in enumerate(NIR_NODE_TYPES):
        g = mock_node_graph(type_name, seed=i)
        nodes.update({f"{n}_{type_name.lower()}": node for n, node in g.nodes.items()})
        edges += [(f"{a}_{type_name.lower()}", f"{b}_{type_name.lower()}") for a, b in g.edges]
    model = mock_model(Graph(nodes, edges, metadata={"purpose": "all NIR nodes"}))

    write_nir(model, tmp_path / "all.nir")

    assert_models_equal(model, read_nir(tmp_path / "all.nir"))


# -- bad input -----------------------------------------------------------------------


def test_profiles_are_listed_and_an_unknown_one_is_refused():
    assert PROFILES == ("nir", "snntorch", "norse", "sinabs", "rockpool", "lava-dl", "spyx")
    assert set(PROFILES) == set(CLI_PROFILES)
    graph = dense_graph(snntorch_lif(np.full(2, 0.9, F32), np.ones(2, F32)), 3, np.ones((2, 3)))
    with pytest.raises(OptionError, match="snntorch") as err:
        from_nir(graph, profile="tensorflow")
    assert err.value.path == "profile"


def test_missing_dt_tells_how_to_pass_it():
    graph = dense_graph(snntorch_lif(np.full(2, 0.9, F32), np.ones(2, F32)), 3, np.ones((2, 3)))
    with pytest.raises(OptionError, match=r"dt_s \(CLI: --dt\)"):
        from_nir(graph)


def test_bad_options_are_refused():
    graph = dense_graph(snntorch_lif(np.full(2, 0.9, F32), np.ones(2, F32)), 3, np.ones((2, 3)))
    with pytest.raises(OptionError, match="subtract"):
        from_nir(graph, dt_s=1e-3, reset_mode="bounce")
    with pytest.raises(OptionError, match="zoh"):
        from_nir(graph, dt_s=1e-3, method="rk4")
    with pytest.raises(OptionError, match="step > 0"):
        from_nir(graph, dt_s=-1.0)


def test_unsupported_nodes_are_named():
    identity = nir.ir.graph.Identity(input_type={"input": np.array([3])})
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([3])),
            "odd": identity,
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "odd"), ("odd", "output")],
        type_check=False,
    )
    with pytest.raises(NIRImportError, match="Identity is not supported") as err:
        from_nir(graph, dt_s=1e-3)
    assert err.value.path == "nodes/odd"

    even = nir.Conv2d(input_shape=(5, 5), weight=np.ones((1, 1, 2, 2), F32), stride=1, padding="same", dilation=1,
                      groups=1, bias=np.zeros(1, F32))  # fmt: skip
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([1, 5, 5])), "conv": even,
               "output": nir.Output(output_type=np.array([1, 5, 5]))},
        edges=[("input", "conv"), ("conv", "output")], type_check=False,
    )  # fmt: skip
    with pytest.raises(NIRImportError, match="symmetrically") as err:
        from_nir(graph, dt_s=1e-3)
    assert err.value.path == "nodes/conv/padding"


def test_a_broken_file_is_named(tmp_path):
    bad = tmp_path / "broken.nir"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(NIRImportError, match="not a readable NIR file") as err:
        read_nir(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(NIRImportError, match="no such file"):
        read_nir(tmp_path / "missing.nir")


def test_nodes_nir_cannot_hold_are_refused_on_export():
    adaptive = mock_model(mock_node_graph("AdaptiveLIF"))
    with pytest.raises(NIRImportError, match="adaptation state") as err:
        to_nir(adaptive)
    assert err.value.path == "nodes/node"

    onnx = Onnx(tiny_onnx_model(4), (4,), (4,))
    graph = Graph({"in": Input((4,)), "ann": onnx, "out": Output((4,))}, [("in", "ann"), ("ann", "out")])
    with pytest.raises(NIRImportError, match="ONNX"):
        to_nir(Model(graph, dt_s=1e-3))
    assert AdaptiveLIF.type_name() not in NIR_NODE_TYPES


def test_without_the_nir_package_the_error_names_the_extra(monkeypatch):
    import sys

    from edgesnn.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "nir", None)  # makes `import nir` fail
    with pytest.raises(MissingDependencyError, match=r"edgesnn\[nir\]"):
        to_nir(mock_rnn_model())


# -- what each profile says about the start and the discretisation ------------------------


@pytest.mark.parametrize(
    ("profile", "initial", "coupled_method"),
    [("nir", "zero", "euler"), ("snntorch", "zero", "cascade-euler"), ("norse", "rest", "cascade-euler"),
     ("sinabs", "zero", "cascade"), ("lava-dl", "zero", "cascade-euler")],
)  # fmt: skip
def test_profiles_start_and_discretise_as_their_framework(profile, initial, coupled_method):
    n = 3
    in_steps = profile in ("sinabs", "lava-dl")  # these write time constants in steps (or 12-bit decays)
    tau_syn, tau_mem = (5.0, 10.0) if in_steps else (5e-3, 1e-2)
    lif = nir.CubaLIF(tau_syn=np.full(n, tau_syn), tau_mem=np.full(n, tau_mem), r=np.ones(n), v_leak=np.full(n, 0.1),
                      v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.ones(n))  # fmt: skip
    model = from_nir(dense_graph(lif, 4, np.ones((n, 4))), profile=profile, dt_s=1e-3 if profile == "nir" else None)
    assert model.initial_state == initial and model.method == coupled_method
    # Norse starts its membranes at v_leak; the others at 0.
    first = model.session().step(np.zeros((1, 4), np.float32), outputs=["lif/v"])["lif/v"][0, 0]
    assert (first > 0.099) == (initial == "rest")


def test_an_edgesnn_nir_file_keeps_the_initial_state_and_method(tmp_path):
    import dataclasses

    model = dataclasses.replace(mock_rnn_model(), initial_state="zero")
    write_nir(model, tmp_path / "m.nir")
    back = read_nir(tmp_path / "m.nir")
    assert back.initial_state == "zero" and back.method == model.method
