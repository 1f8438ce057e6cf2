"""Session behaviour: stepping, batching, recurrence timing, state, named outputs, bad input."""

import numpy as np
import pytest

from edgesnn.engine import SessionOptions
from edgesnn.errors import InputError, NodeValidationError, OptionError, StateError
from edgesnn.graph import LI, LIF, Conv2d, Delay, Flatten, Graph, Input, Linear, Output, SumPool2d, Threshold
from edgesnn.model import Model

NUMPY = SessionOptions(backends=("numpy",))


def rnn_model(seed=0, n_in=30, n=16, n_out=4) -> Model:
    rng = np.random.default_rng(seed)
    g = Graph(
        {
            "x": Input((n_in,), unit="spikes"),
            "fc": Linear(rng.normal(0, 1.0, (n, n_in))),
            "lif": LIF.uniform(n, tau_mem_s=0.02, r=20.0, v_threshold=1.0),
            "rec": Linear(rng.normal(0, 0.5, (n, n))),
            "ro": Linear(rng.normal(0, 0.5, (n_out, n))),
            "li": LI.uniform(n_out, tau_mem_s=0.02),
            "y": Output((n_out,)),
        },
        [("x", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "ro"), ("ro", "li"), ("li", "y")],
    )
    return Model(g, dt_s=1e-3)


def spikes(shape, p=0.2, seed=0):
    return (np.random.default_rng(seed).random(shape) < p).astype(np.float32)


def test_step_by_step_equals_run():
    m = rnn_model()
    xs = spikes((50, 1, 30))
    s = m.session(options=NUMPY)
    stepped = np.stack([s.step(x)["y"] for x in xs])
    s.reset()
    np.testing.assert_array_equal(s.run(xs)["y"], stepped)


@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_run_takes_any_numeric_layout_of_the_sequence(backend):
    m = rnn_model()
    xs = spikes((40, 1, 30))
    s = m.session(options=SessionOptions(backends=(backend,)))
    want = s.run(xs)["y"]
    read_only = np.frombuffer(xs.astype(np.uint8).tobytes(), np.uint8).reshape(xs.shape)
    strided = np.asfortranarray(xs)
    for seq in (xs.astype(np.uint8), read_only, strided, xs.astype(np.float64)):
        s.reset()
        np.testing.assert_array_equal(s.run(seq)["y"], want)


@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_step_outputs_are_fresh_arrays(backend):
    m = rnn_model()
    s = m.session(options=SessionOptions(backends=(backend,)))
    x = spikes((1, 30))
    first = s.step(x)["y"]
    kept = first.copy()
    second = s.step(x)["y"]
    first[...] = -1.0  # the caller owns what it got back
    np.testing.assert_array_equal(s.step(x, outputs=["li"])["li"].shape, (1, 4))
    assert not np.shares_memory(first, second)
    s.reset()
    np.testing.assert_array_equal(s.step(x)["y"], kept)


def test_recurrent_input_arrives_one_step_late():
    # One self-exciting neuron: an input pulse at t=0 makes it fire; its own spike
    # comes back through the recurrent edge at t=1, then t=2, ...; never at t=0 twice.
    g = Graph(
        {"x": Input((1,)), "lif": LIF.uniform(1, tau_mem_s=1.0, r=1e3, v_threshold=1.0), "rec": Linear([[2.0]]),
         "y": Output((1,))},
        [("x", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "y")],
    )  # fmt: skip
    xs = np.zeros((5, 1, 1), np.float32)
    xs[0] = 2.0
    r = Model(g, dt_s=1e-3, method="euler").session(options=NUMPY).run(xs, outputs=["y", "rec"])
    np.testing.assert_array_equal(r["y"][:, 0, 0], [1, 1, 1, 1, 1])
    np.testing.assert_array_equal(r["rec"][:, 0, 0], [2, 2, 2, 2, 2])
    # Cut the input pulse to below threshold: nothing fires, nothing recurs.
    xs[0] = 0.5
    r = Model(g, dt_s=1e-3, method="euler").session(options=NUMPY).run(xs)
    np.testing.assert_array_equal(r["y"][:, 0, 0], [0, 0, 0, 0, 0])


def test_batch_rows_are_independent_streams():
    m = rnn_model()
    xs = spikes((30, 3, 30), seed=4)
    batched = m.session(batch=3, options=NUMPY).run(xs)["y"]
    for b in range(3):
        single = m.session(options=NUMPY).run(xs[:, b : b + 1])["y"]
        np.testing.assert_allclose(batched[:, b : b + 1], single, rtol=1e-5, atol=1e-6)


def test_unbatched_input_is_accepted_for_batch_one():
    s = rnn_model().session(options=NUMPY)
    assert s.step(np.zeros(30))["y"].shape == (1, 4)


def resumed_equals_uninterrupted(model, xs, split):
    """Run xs[:split], save the state, and check a new session loaded with it continues identically."""
    a = model.session(options=NUMPY)
    a.run(xs[:split])
    saved = a.state()
    rest = a.run(xs[split:])["y"]
    b = model.session(options=NUMPY)
    b.load_state(saved)
    np.testing.assert_array_equal(b.run(xs[split:])["y"], rest)
    return rest


def test_state_round_trip_continues_identically():
    resumed_equals_uninterrupted(rnn_model(), spikes((60, 1, 30), seed=2), 30)


def test_a_held_neuron_resumes_from_saved_state():
    m = rnn_model()
    g = m.graph
    held = Model(Graph({**g.nodes, "lif": g.nodes["lif"].replace(min_spike_interval_s=4e-3)}, list(g.edges)),
                 dt_s=1e-3)  # fmt: skip
    xs = spikes((60, 1, 30), p=0.6, seed=3)
    rest = resumed_equals_uninterrupted(held, xs, 31)  # 31: the split falls inside a hold
    assert not np.array_equal(rest, m.session(options=NUMPY).run(xs)["y"][31:])  # the hold changed the output


def test_minimum_spike_interval_must_be_seconds():
    for bad in (-1e-3, float("inf"), "4ms", True):
        with pytest.raises(NodeValidationError, match="min_spike_interval_s"):
            LIF.uniform(2, tau_mem_s=0.02, v_threshold=1.0, min_spike_interval_s=bad)


def test_state_from_another_model_dt_or_batch_is_refused():
    saved = rnn_model(seed=0).session(options=NUMPY).state()
    with pytest.raises(StateError, match="state/model"):
        rnn_model(seed=1).session(options=NUMPY).load_state(saved)
    with pytest.raises(StateError, match="state/dt_s"):
        rnn_model(seed=0).session(dt=5e-4, options=NUMPY).load_state(saved)
    with pytest.raises(StateError, match="state/batch"):
        rnn_model(seed=0).session(batch=2, options=NUMPY).load_state(saved)
    with pytest.raises(StateError, match="msgpack"):
        rnn_model(seed=0).session(options=NUMPY).load_state(b"\xc1garbage")


def test_reset_returns_to_rest():
    m = rnn_model()
    s = m.session(options=NUMPY)
    first = s.run(spikes((20, 1, 30)))["y"]
    s.reset()
    np.testing.assert_array_equal(s.run(spikes((20, 1, 30)))["y"], first)


def test_bad_inputs_name_the_problem():
    s = rnn_model().session(options=NUMPY)
    with pytest.raises(InputError, match=r"inputs/x: expected shape \(1, 30\), got \(1, 31\)"):
        s.step(np.zeros((1, 31)))
    with pytest.raises(InputError, match="missing \\['x'\\], unknown \\['z'\\]"):
        s.step({"z": np.zeros((1, 30))})
    with pytest.raises(InputError, match="numeric"):
        s.step(np.array([["a"] * 30]))
    with pytest.raises(InputError, match="no node named 'nope'"):
        s.step(np.zeros((1, 30)), outputs=["nope"])
    with pytest.raises(InputError, match="expected shape \\(T, 1, 30\\)"):
        s.run(np.zeros((5, 2, 30)))


def test_bad_options_are_refused():
    m = rnn_model()
    with pytest.raises(OptionError, match="batch"):
        m.session(batch=0)
    with pytest.raises(OptionError, match="dt"):
        m.session(dt=-1.0)
    with pytest.raises(OptionError, match="unknown backend 'gpu'; known: native, numpy"):
        m.session(options=SessionOptions(backends=("gpu",)))


def test_delay_shifts_by_whole_steps():
    g = Graph({"x": Input((2,)), "d": Delay(3e-3), "y": Output((2,))}, [("x", "d"), ("d", "y")])
    xs = np.arange(20, dtype=np.float32).reshape(10, 1, 2)
    ys = Model(g, dt_s=1e-3).session(options=NUMPY).run(xs)["y"]
    np.testing.assert_array_equal(ys[3:], xs[:-3])
    np.testing.assert_array_equal(ys[:3], 0)


def conv_reference(x, w, b, stride, pad):
    """Direct loops, the textbook definition of cross-correlation."""
    c_out, c_in, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    ho = (x.shape[1] + 2 * pad - kh) // stride + 1
    wo = (x.shape[2] + 2 * pad - kw) // stride + 1
    y = np.zeros((c_out, ho, wo))
    for o in range(c_out):
        for i in range(ho):
            for j in range(wo):
                y[o, i, j] = b[o] + np.sum(w[o] * xp[:, i * stride : i * stride + kh, j * stride : j * stride + kw])
    return y


def test_conv_and_pool_match_direct_loops():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(4, 2, 3, 3)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    g = Graph(
        {"x": Input((2, 9, 9)), "c": Conv2d(w, bias, stride=2, padding=1), "p": SumPool2d(2, stride=1),
         "f": Flatten(), "y": Output((4 * 4 * 4,))},
        [("x", "c"), ("c", "p"), ("p", "f"), ("f", "y")],
    )  # fmt: skip
    x = rng.normal(size=(1, 2, 9, 9)).astype(np.float32)
    r = Model(g, dt_s=1e-3).session(options=NUMPY).step(x, outputs=["c", "y"])
    ref = conv_reference(x[0], w, bias, 2, 1)
    np.testing.assert_allclose(r["c"][0], ref, rtol=1e-4, atol=1e-5)
    pooled = ref[:, :-1, :-1] + ref[:, 1:, :-1] + ref[:, :-1, 1:] + ref[:, 1:, 1:]
    np.testing.assert_allclose(r["y"][0], pooled.reshape(-1), rtol=1e-4, atol=1e-4)


def test_threshold_is_strict():
    g = Graph(
        {"x": Input((3,)), "t": Threshold(np.array([0.0, 1.0, 2.0])), "y": Output((3,))}, [("x", "t"), ("t", "y")]
    )
    y = Model(g, dt_s=1.0).session(options=NUMPY).step(np.array([[0.0, 1.5, 2.0]]))["y"]
    np.testing.assert_array_equal(y, [[0.0, 1.0, 0.0]])


def test_sessions_share_the_model_but_not_state():
    m = rnn_model()
    a, b = m.session(options=NUMPY), m.session(options=NUMPY)
    a.run(spikes((20, 1, 30), p=0.5))
    assert b.step(np.zeros((1, 30)), outputs=["lif"])["lif"].sum() == 0


def test_onnx_part_runs_between_spiking_layers():
    pytest.importorskip("onnx")
    from edgesnn.graph import Onnx
    from tests.helpers import tiny_onnx_model

    g = Graph(
        {"x": Input((4,)), "fc": Linear(np.diag([1.0, -1.0, 2.0, -2.0])),
         "ann": Onnx(tiny_onnx_model(4), input_shape=(4,), out_shape=(4,)), "y": Output((4,))},
        [("x", "fc"), ("fc", "ann"), ("ann", "y")],
    )  # fmt: skip
    y = Model(g, dt_s=1e-3).session(batch=2, options=NUMPY).step(np.ones((2, 4)))["y"]
    np.testing.assert_array_equal(y, [[1, 0, 2, 0], [1, 0, 2, 0]])  # relu(W x)


def test_import_edgesnn_stays_light():
    import subprocess
    import sys

    heavy = "('onnxruntime', 'nir', 'h5py', 'jax')"
    code = f"import sys, edgesnn; m = edgesnn.load; print(sorted(k for k in {heavy} if k in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", ["numpy", "native", "loihi", "learning"])
def test_a_dropped_session_frees_its_memory_without_the_cycle_collector(kind):
    import gc
    import weakref

    from edgesnn.engine import available_backends
    from edgesnn.learn import enable_learning
    from tests.conformance._models import small_model

    if kind == "native" and "native" not in available_backends():
        pytest.skip("native backend not built here")
    model = enable_learning(small_model(), "lif") if kind == "learning" else small_model()
    options = SessionOptions(backends=(kind,)) if kind in ("numpy", "native") else None
    gc.disable()  # a closed session must not wait for the cyclic collector (a server would hold its memory)
    try:
        s = model.session(options=options, numerics="loihi" if kind == "loihi" else None)
        s.run(np.ones((3, 1, 12), np.float32))
        arrays = [weakref.ref(a) for a in (*s._plan.buffers.values(), *s._plan.state.values())]
        del s
        assert [r() for r in arrays if r() is not None] == []
    finally:
        gc.enable()
