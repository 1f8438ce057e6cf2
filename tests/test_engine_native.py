"""The native (C) backend agrees with the numpy reference kernels, op by op and on whole networks.

Every comparison steps the same model in two sessions, ``backends=("native",)``
and ``backends=("numpy",)``, and compares every node's output at every step:
spikes must be identical, analogue values equal to float32 rounding (sums may
run in another order than BLAS).
"""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.engine import SessionOptions, _native
from edgesnn.engine.backends import native_available
from edgesnn.engine.plan import compile_plan
from edgesnn.graph import (
    IF,
    LI,
    LIF,
    AdaptiveLIF,
    Affine,
    AvgPool2d,
    Conv1d,
    Conv2d,
    CubaLI,
    CubaLIF,
    Delay,
    Flatten,
    Graph,
    Input,
    Integrator,
    Linear,
    Onnx,
    Output,
    Scale,
    SumPool2d,
    Threshold,
)  # fmt: skip
from edgesnn.model import Model

pytestmark = pytest.mark.skipif(not native_available(), reason="native kernels not built (edgesnn.engine._ckernels)")

NATIVE = SessionOptions(backends=("native",))
NUMPY = SessionOptions(backends=("numpy",))


def spikes(shape: tuple[int, ...], p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < p).astype(np.float32)


def assert_backends_agree(model: Model, xs: np.ndarray, *, batch: int, rtol: float = 1e-5) -> dict[str, np.ndarray]:
    """Run ``xs`` (T, batch, ...) through both backends and compare every node at every step."""
    plan = compile_plan(model.graph, model.dt_s, model.method, batch)
    onnx_nodes = [n for n, node in model.graph.nodes.items() if isinstance(node, Onnx)]
    assert _native.numpy_fallbacks(plan.ops) == onnx_nodes  # the native side is really native
    nat = model.session(batch=batch, options=NATIVE)
    ref = model.session(batch=batch, options=NUMPY)
    assert nat.backend == "native" and ref.backend == "numpy"
    names = list(model.graph.nodes)
    got, want = nat.run(xs, outputs=names), ref.run(xs, outputs=names)
    for name in names:
        node = model.graph.nodes[name]
        if node.spiking:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"spikes of {name}")
        else:
            scale = max(1.0, float(np.nanmax(np.abs(want[name]), initial=0.0)))
            np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=rtol * scale, err_msg=name)
    return want


def chain(nodes: dict, *, dt_s: float = 1e-3) -> Model:
    """Model whose nodes are connected in the given order."""
    order = list(nodes)
    return Model(Graph(nodes, list(zip(order[:-1], order[1:], strict=False))), dt_s=dt_s)


# -- dense ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("density", [0.05, 0.6])
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("bias", [True, False])
def test_dense_sparse_and_dense_inputs(batch, density, binary, bias):
    rng = np.random.default_rng(1)
    w = rng.normal(size=(13, 40)).astype(np.float32)
    fc = Affine(w, rng.normal(size=13)) if bias else Linear(w)
    front = {"x": Input((40,))}
    if binary:
        front["spk"] = Threshold(np.full(40, 0.5))  # a spiking source: its 0/1 rows are added, not multiplied
    model = chain({**front, "fc": fc, "li": LI.uniform(13, tau_mem_s=0.01), "y": Output((13,))})
    xs = spikes((30, batch, 40), density, seed=2)
    if not binary:
        xs *= rng.normal(size=xs.shape).astype(np.float32)
    assert_backends_agree(model, xs, batch=batch)


def test_dense_with_no_active_input_gives_bias():
    b = np.arange(5, dtype=np.float32)
    model = chain(
        {"x": Input((8,)), "spk": Threshold(np.zeros(8)), "fc": Affine(np.ones((5, 8)), b), "y": Output((5,))}
    )
    y = model.session(options=NATIVE).step(np.zeros((1, 8)))["y"]
    np.testing.assert_array_equal(y, b[None])


# -- convolution ----------------------------------------------------------------------------------
CONV_CASES = {
    "plain": dict(stride=1, padding=0, dilation=1, groups=1),
    "stride2_pad1": dict(stride=2, padding=1, dilation=1, groups=1),
    "stride_hw": dict(stride=(2, 1), padding=(1, 0), dilation=1, groups=1),
    "dilated": dict(stride=1, padding=2, dilation=2, groups=1),
    "groups": dict(stride=1, padding=1, dilation=1, groups=2),
    "depthwise_strided": dict(stride=3, padding=1, dilation=(1, 2), groups=4),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("density", [0.03, 0.2, 0.5])  # scatter per channel plane, scatter + transpose, direct
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("batch", [1, 2])
def test_conv2d_every_geometry(case, density, binary, batch):
    opts = CONV_CASES[case]
    rng = np.random.default_rng(3)
    c_in, c_out, groups = 4, 8, opts["groups"]
    conv = Conv2d(rng.normal(size=(c_out, c_in // groups, 3, 3)), rng.normal(size=c_out), **opts)
    shape = (c_in, 11, 10)
    front = {"x": Input(shape)}
    if binary:
        front["spk"] = Threshold(np.full(shape, 0.5))
    out_shape = conv.output_shape(shape)
    model = chain({**front, "conv": conv, "y": Output(out_shape)})
    xs = spikes((6, batch, *shape), density, seed=4)
    if not binary:
        xs *= rng.normal(size=xs.shape).astype(np.float32)
    assert_backends_agree(model, xs, batch=batch)


@pytest.mark.parametrize("density", [0.05, 0.7])
def test_conv1d_runs_as_height_one(density):
    rng = np.random.default_rng(5)
    conv = Conv1d(rng.normal(size=(6, 2, 3)), rng.normal(size=6), stride=2, padding=1, dilation=2, groups=2)
    model = chain({"x": Input((4, 17)), "spk": Threshold(np.full((4, 17), 0.5)), "conv": conv,
                   "y": Output(conv.output_shape((4, 17)))})  # fmt: skip
    assert_backends_agree(model, spikes((8, 2, 4, 17), density, seed=6), batch=2)


def test_spiking_conv_network_like_w3():
    """Convolution into multi-dimensional LIF populations, flatten, dense readout."""
    rng = np.random.default_rng(7)
    lif = lambda shape: LIF.uniform(shape, tau_mem_s=0.02, v_threshold=1.0)  # noqa: E731
    model = chain({
        "x": Input((2, 16, 16)),
        "c1": Conv2d(rng.normal(8.0, 4.0, (8, 2, 3, 3)), np.zeros(8), stride=2, padding=1), "l1": lif((8, 8, 8)),
        "c2": Conv2d(rng.normal(0.6, 0.6, (6, 8, 3, 3)), np.zeros(6), stride=2, padding=1), "l2": lif((6, 4, 4)),
        "f": Flatten(), "fc": Affine(rng.normal(0, 0.3, (5, 96)), np.zeros(5)),
        "li": LI.uniform(5, tau_mem_s=0.01), "y": Output((5,)),
    })  # fmt: skip
    want = assert_backends_agree(model, spikes((60, 2, 2, 16, 16), 0.05, seed=8), batch=2)
    assert 0 < want["l1"].mean() < 0.5 and 0 < want["l2"].mean() < 0.5  # the layers really spike


@pytest.mark.parametrize("threads", [1, 2])
def test_spike_maps_between_layers_change_nothing(monkeypatch, threads):
    """A conv or dense op reading a neuron's spikes takes them from the neuron's bit map: exactly the
    results of scanning the spikes, on rows that straddle 64-bit words, for plain LIF (blocked map)
    and a synaptic LIF (general path), with batch and threads."""
    rng = np.random.default_rng(21)
    model = chain({
        "x": Input((2, 20, 70)),
        "c1": Conv2d(rng.normal(6.0, 3.0, (4, 2, 3, 3)), np.zeros(4), stride=1, padding=1),
        "l1": LIF.uniform((4, 20, 70), tau_mem_s=0.02, v_threshold=1.0),
        "c2": Conv2d(rng.normal(0.8, 0.6, (6, 4, 3, 3)), np.zeros(6), stride=2, padding=1),
        "l2": CubaLIF.uniform((6, 10, 35), tau_mem_s=0.02, tau_syn_s=0.005, v_threshold=0.5, reset_mode="subtract"),
        "f": Flatten(), "fc": Affine(rng.normal(0, 0.3, (5, 2100)), np.zeros(5)),
        "li": LI.uniform(5, tau_mem_s=0.01), "y": Output((5,)),
    })  # fmt: skip
    xs = spikes((25, 3, 2, 20, 70), 0.05, seed=22)
    options = SessionOptions(backends=("native",), num_threads=threads)
    linked = []
    link = _native._link_spike_maps

    def counting(ops, parts):
        link(ops, parts)
        linked.append(sum(1 for op, p in zip(ops, parts, strict=True)
                          if type(op) in _native._MAP_FIELD and p.code[_native._MAP_FIELD[type(op)]]))  # fmt: skip

    monkeypatch.setattr(_native, "_link_spike_maps", counting)
    names = list(model.graph.nodes)
    got = model.session(batch=3, options=options).run(xs, outputs=names)
    assert max(linked) == 4  # l1 -> c2 and l2 -> fc, both ends of each; c1 reads the input, li feeds no one
    monkeypatch.setattr(_native, "_link_spike_maps", lambda ops, parts: None)
    want = model.session(batch=3, options=options).run(xs, outputs=names)
    for name in names:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert 0 < want["l1"].mean() < 0.5 and 0 < want["l2"].mean() < 0.5


# -- pooling, scale, threshold, delay, sums -------------------------------------------------------
@pytest.mark.parametrize(
    "pool",
    [SumPool2d((2, 2)), SumPool2d((3, 2), stride=(1, 2), padding=(1, 0)), AvgPool2d((2, 3), stride=1, padding=1),
     AvgPool2d(3, stride=2, padding=1)],
    ids=["sum2", "sum_strided_padded", "avg_padded", "avg_strided"],
)  # fmt: skip
@pytest.mark.parametrize("batch", [1, 3])
def test_pooling(pool, batch):
    shape = (3, 7, 8)
    model = chain({"x": Input(shape), "pool": pool, "y": Output(pool.output_shape(shape))})
    xs = np.random.default_rng(9).normal(size=(5, batch, *shape)).astype(np.float32)
    assert_backends_agree(model, xs, batch=batch)


@pytest.mark.parametrize("batch", [1, 2])
def test_scale_and_threshold(batch):
    rng = np.random.default_rng(10)
    model = chain({"x": Input((2, 6)), "s": Scale(rng.normal(size=(2, 6))), "t": Threshold(rng.normal(size=(2, 6))),
                   "y": Output((2, 6))})  # fmt: skip
    xs = rng.normal(size=(20, batch, 2, 6)).astype(np.float32)
    assert_backends_agree(model, xs, batch=batch)


@pytest.mark.parametrize("delay_s", [0.0, 1e-3, 3e-3])
@pytest.mark.parametrize("batch", [1, 2])
def test_delay_ring(delay_s, batch):
    model = chain({"x": Input((5,)), "d": Delay(delay_s), "y": Output((5,))})
    xs = np.random.default_rng(11).normal(size=(12, batch, 5)).astype(np.float32)
    want = assert_backends_agree(model, xs, batch=batch)
    k = round(delay_s / 1e-3)
    np.testing.assert_array_equal(want["y"][k:], xs[: len(xs) - k])


def test_node_with_several_inputs_sums_them():
    rng = np.random.default_rng(12)
    g = Graph(
        {"x": Input((6,)), "a": Linear(rng.normal(size=(4, 6))), "b": Linear(rng.normal(size=(4, 6))),
         "c": Scale(np.full(6, 0.5)), "d": Linear(rng.normal(size=(4, 6))),
         "lif": LIF.uniform(4, tau_mem_s=0.01, r=10.0, v_threshold=1.0), "y": Output((4,))},
        [("x", "a"), ("x", "b"), ("x", "c"), ("c", "d"), ("a", "lif"), ("b", "lif"), ("d", "lif"), ("lif", "y")],
    )  # fmt: skip
    xs = np.random.default_rng(13).normal(size=(40, 2, 6)).astype(np.float32)
    assert_backends_agree(Model(g, dt_s=1e-3), xs, batch=2)


# -- neurons --------------------------------------------------------------------------------------
def _per_neuron(rng: np.random.Generator, cls, n: int, uniform: bool, **options):
    ranges = {
        "tau_mem_s": (5e-3, 20e-3), "tau_syn_s": (2e-3, 8e-3), "tau_adapt_s": (50e-3, 200e-3), "r": (0.5, 2.0),
        "v_leak": (-0.1, 0.1), "v_threshold": (0.3, 0.6), "v_reset": (-0.2, 0.0), "w_in": (0.5, 1.5),
        "a_coupling": (0.0, 0.5), "b_spike": (0.0, 0.3),
    }  # fmt: skip
    size = 1 if uniform else n
    params = {k: np.resize(rng.uniform(lo, hi, size), n).astype(np.float32)
              for k, (lo, hi) in ranges.items() if k in cls.array_fields()}  # fmt: skip
    return cls(**params, **options)


RESETS = [dict(reset_mode=m, reset_timing=t) for m in ("to_value", "subtract") for t in ("immediate", "next_step")]
SPIKES = [
    {},
    dict(threshold_inclusive=True),
    dict(threshold_inclusive=True, max_spikes_per_step=4),
    dict(min_spike_interval_s=3e-3),
    dict(threshold_inclusive=True, max_spikes_per_step=4, min_spike_interval_s=2e-3),
]
NEURONS = [(Integrator, {}), (LI, {}), (CubaLI, {})] + [
    (cls, {**r, **sp}) for cls in (IF, LIF, CubaLIF, AdaptiveLIF) for r in RESETS for sp in SPIKES
]  # fmt: skip


@pytest.mark.parametrize(
    "cls,options", NEURONS, ids=[f"{c.__name__}-{'-'.join(map(str, o.values())) or 'plain'}" for c, o in NEURONS]
)
@pytest.mark.parametrize("uniform", [True, False], ids=["shared_params", "per_neuron"])
@pytest.mark.parametrize("method", ["zoh", "euler", "cascade", "cascade-euler"])
def test_every_neuron_model(cls, options, uniform, method):
    rng = np.random.default_rng(14)
    n = 12
    neuron = _per_neuron(rng, cls, n, uniform, **options)
    g = Graph(
        {"x": Input((9,)), "fc": Linear(rng.normal(0.3, 1.0, (n, 9))), "pop": neuron,
         "rec": Linear(rng.normal(0.0, 0.3, (n, n))), "y": Output((n,))},
        [("x", "fc"), ("fc", "pop"), ("pop", "rec"), ("rec", "pop"), ("pop", "y")],
    )  # fmt: skip
    xs = np.abs(np.random.default_rng(15).normal(size=(80, 2, 9))).astype(np.float32) * 3
    want = assert_backends_agree(Model(g, dt_s=1e-3, method=method), xs, batch=2)
    if neuron.spiking:
        assert 0 < (want["pop"] > 0).mean() < 1  # both spiking and silent steps were exercised
        if neuron.max_spikes_per_step > 1 and cls is not IF:  # IF integrates too slowly here to stack spikes
            assert want["pop"].max() > 1  # graded spikes were exercised
        gap = round(neuron.min_spike_interval_s / 1e-3)
        if gap > 1:  # a neuron that fired waits gap steps, though its membrane goes on integrating
            fired = want["pop"] > 0
            for lag in range(1, gap):
                assert not np.any(fired[lag:] & fired[:-lag])


def test_nan_input_compares_false_like_numpy():
    # Scale, not a matrix: a NaN times a zero weight would spread to every output.
    model = chain({"x": Input((4,)), "fc": Scale(np.ones(4)), "lif": LIF.uniform(4, tau_mem_s=0.01, r=100.0,
                   v_threshold=0.5), "y": Output((4,))})  # fmt: skip
    xs = np.ones((5, 1, 4), np.float32)
    xs[1, 0, 2] = np.nan
    with np.errstate(invalid="ignore"):
        want = assert_backends_agree(model, xs, batch=1)
    assert np.isnan(want["fc"][1, 0, 2])
    assert (want["lif"][1:, 0, 2] == 0).all()  # the membrane stays NaN; NaN > threshold is false: no spike
    assert want["lif"][1:, 0, [0, 1, 3]].any()  # its neighbours do spike


# -- whole networks, state, mixed segments --------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 4])
def test_benchmark_networks_spike_identically(batch):
    from tools.bench.workloads import w1, w2

    for build in (w1, w2):
        wl = build(np.random.default_rng(0))
        xs = wl.inputs(np.random.default_rng(1), batch=batch, steps=60)
        want = assert_backends_agree(wl.model, xs, batch=batch)
        for layer in wl.lif_layers:
            assert 0.005 < want[layer].mean() < 0.3


def test_state_reset_and_restore_keep_native_buffers_live():
    from tools.bench.workloads import w1

    model = w1(np.random.default_rng(0)).model
    xs = spikes((40, 1, 700), 0.05, seed=16)
    s = model.session(options=NATIVE)
    first = s.run(xs)["out"]
    saved = s.state()
    second = s.run(xs)["out"]
    s.load_state(saved)
    np.testing.assert_array_equal(s.run(xs)["out"], second)
    s.reset()
    np.testing.assert_array_equal(s.run(xs)["out"], first)


def test_onnx_part_runs_between_native_segments():
    pytest.importorskip("onnx")
    from tests.helpers import tiny_onnx_model

    rng = np.random.default_rng(17)
    model = chain({
        "x": Input((6,)), "fc1": Linear(rng.normal(size=(4, 6))), "lif1": LIF.uniform(4, tau_mem_s=0.01, r=50.0,
        v_threshold=0.5), "fc2": Linear(rng.normal(size=(4, 4))), "ann": Onnx(tiny_onnx_model(4), input_shape=(4,),
        out_shape=(4,)), "fc3": Linear(rng.normal(size=(3, 4))), "li": LI.uniform(3, tau_mem_s=0.01), "y": Output((3,)),
    })  # fmt: skip
    step = _native.make_step(compile_plan(model.graph, model.dt_s, model.method, 2).ops)
    assert step.__name__ == "step"  # several segments: native, numpy (ONNX), native
    want = assert_backends_agree(model, np.abs(rng.normal(size=(30, 2, 6))).astype(np.float32), batch=2)
    assert (want["ann"] >= 0).all() and want["ann"].max() > 0


def test_malformed_programs_are_refused():
    from edgesnn.engine import _ckernels

    with pytest.raises(ValueError, match="malformed record"):
        _ckernels.Program(np.array([_ckernels.OP_COPY, 4, 0, 0], np.int64).tobytes(), ())
    with pytest.raises(ValueError, match="malformed record"):
        _ckernels.Program(np.array([99, 3, 0], np.int64).tobytes(), ())
    with pytest.raises(ValueError, match="int64"):
        _ckernels.Program(b"\x00" * 12, ())


# -- whole sequences in one C call ----------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 3])
def test_run_loops_in_c_and_equals_stepping(batch):
    from tools.bench.workloads import w1, w2, w3

    for build in (w1, w2, w3):
        wl = build(np.random.default_rng(0))
        xs = wl.inputs(np.random.default_rng(2), batch=batch, steps=40)
        looped, stepped = (wl.model.session(batch=batch, options=NATIVE) for _ in range(2))
        assert looped._run_steps is not None  # one native program: Session.run does not return to Python per step
        names = [*wl.model.graph.nodes, *looped.recordable]
        got = looped.run(xs, outputs=names)
        for t in range(len(xs)):
            step = stepped.step(xs[t], outputs=names)
            for name in names:
                np.testing.assert_array_equal(got[name][t], step[name], err_msg=f"{wl.name} {name} step {t}")
        # The loop leaves the session where stepping does: the next step agrees too.
        np.testing.assert_array_equal(looped.step(xs[0])["out"], stepped.step(xs[0])["out"])


@pytest.mark.parametrize("threads", [1, 2])
def test_run_reads_inputs_in_place_and_changes_nothing(threads):
    """Without the input among the recorded outputs, Session.run points the ops that read the input
    at each step of the sequence instead of copying it in: same results as stepping, and the input
    buffer ends holding the last step, as the copying loop leaves it."""
    from tools.bench.workloads import w1, w3

    for build in (w1, w3):
        wl = build(np.random.default_rng(0))
        xs = wl.inputs(np.random.default_rng(2), batch=3, steps=30)
        options = SessionOptions(backends=("native",), num_threads=threads)
        looped, stepped = wl.model.session(batch=3, options=options), wl.model.session(batch=3, options=NATIVE)
        ops, (spec,) = looped._plan.ops, looped.inputs
        buf = looped._plan.buffers[spec.name]
        program = looped._step.__self__
        pairs = np.frombuffer(_native._aliases(program, ops, [(buf, xs)], []), np.int64)
        assert len(pairs) == 2 and pairs[0] == 0  # the first op reads the input in place
        names = list(wl.lif_layers) + ["out"]
        got = looped.run(xs, outputs=names)
        for t in range(len(xs)):
            want = stepped.step(xs[t], outputs=names)
            for name in names:
                np.testing.assert_array_equal(got[name][t], want[name], err_msg=f"{wl.name} {name} step {t}")
        np.testing.assert_array_equal(buf, xs[-1])
        assert _native._aliases(program, ops, [(buf, xs)], [(buf, xs)]) == b""  # recorded: copied as before
    with pytest.raises(ValueError, match="aliases"):  # a field that does not hold the input's address
        program.run_steps(1, _native._table([(buf, xs[:1])], 1, "inputs"), b"", np.array([0, 3], np.int64).tobytes())


def test_run_casts_inputs_and_accepts_an_empty_sequence():
    from tools.bench.workloads import w1

    model = w1(np.random.default_rng(0)).model
    xs = spikes((25, 1, 700), 0.05, seed=21)
    want = model.session(options=NATIVE).run(xs)["out"]
    np.testing.assert_array_equal(model.session(options=NATIVE).run(xs.astype(np.uint8))["out"], want)
    np.testing.assert_array_equal(model.session(options=NATIVE).run(xs[:, 0])["out"], want)  # batch axis left out
    assert model.session(options=NATIVE).run(xs[:0])["out"].shape == (0, 1, 20)


def test_run_steps_checks_its_tables():
    s = chain({"x": Input((4,)), "lif": LIF.uniform(4, tau_mem_s=0.01, r=1.0, v_threshold=1.0), "y": Output((4,))})
    s = s.session(options=NATIVE)
    run_steps = _native.sequence_runner(s._step)
    buf = s._plan.buffers["x"]
    with pytest.raises(ValueError, match="inputs: sequence of 32 bytes for 3 steps of 16"):
        run_steps(3, [(buf, np.zeros((2, 1, 4), np.float32))], [])
    with pytest.raises(ValueError, match="outputs: expected C-contiguous"):
        run_steps(2, [], [(buf, np.zeros((2, 1, 8), np.float32)[:, :, ::2])])


def test_run_on_two_threads_splits_the_batch_and_changes_nothing():
    from tools.bench.workloads import w1, w3

    for build in (w1, w3):
        wl = build(np.random.default_rng(0))
        xs = wl.inputs(np.random.default_rng(3), batch=5, steps=30)
        one = wl.model.session(batch=5, options=NATIVE)
        two = wl.model.session(batch=5, options=SessionOptions(backends=("native",), num_threads=2))
        names = [*wl.model.graph.nodes, *one.recordable]
        got, want = two.run(xs, outputs=names), one.run(xs, outputs=names)
        for name in names:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{wl.name} {name}")
        np.testing.assert_array_equal(two.step(xs[0])["out"], one.step(xs[0])["out"])  # same state after


def test_a_delay_keeps_the_batch_on_one_thread():
    model = chain({"x": Input((3,)), "d": Delay(0.002), "y": Output((3,))})
    s = model.session(batch=4, options=SessionOptions(backends=("native",), num_threads=2))
    xs = spikes((6, 4, 3), 0.5, seed=22)
    np.testing.assert_array_equal(s.run(xs)["y"][2:], xs[:-2])
    assert _native._batch_slices(s._plan.ops, 4, 2) is None
