"""Neuron dynamics against closed forms, for both discretisations and every reset option."""

import numpy as np
import pytest

from edgesnn.engine import SessionOptions
from edgesnn.errors import OptionError
from edgesnn.graph import IF, LI, LIF, AdaptiveLIF, CubaLIF, Graph, Input, Integrator, Output
from edgesnn.model import Model
from edgesnn.neurons import discretise

BACKENDS = ["numpy", "native"]


def single_neuron_model(neuron, method="zoh", dt_s=1e-3) -> Model:
    n = neuron.size
    g = Graph({"x": Input((n,)), "n": neuron, "y": Output((n,))}, [("x", "n"), ("n", "y")])
    return Model(g, dt_s=dt_s, method=method)


def trace(model, xs, backend="numpy", record=("n",)):
    from edgesnn.engine.backends import available_backends

    if backend not in available_backends():
        pytest.skip(f"backend {backend} not built here")
    s = model.session(options=SessionOptions(backends=(backend,)))
    return s.run(np.asarray(xs, np.float32)[:, None, :], outputs=list(record))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["zoh", "euler"])
def test_li_relaxes_to_r_times_input(method, backend):
    tau, dt, r, x = 0.01, 1e-3, 2.0, 0.5
    m = single_neuron_model(LI.uniform(1, tau_mem_s=tau, r=r, v_leak=0.1), method, dt)
    v = trace(m, np.full((50, 1), x), backend)["n"][:, 0, 0]
    a = np.exp(-dt / tau) if method == "zoh" else 1 - dt / tau
    t = np.arange(1, 51)
    # v[t] = v_inf + (v0 - v_inf) a^t with v_inf = v_leak + R x and v0 = v_leak
    expected = (0.1 + r * x) + (0.1 - (0.1 + r * x)) * a**t
    np.testing.assert_allclose(v, expected, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_if_fires_when_integral_crosses_threshold(backend):
    dt, r, x, th = 1e-3, 100.0, 1.0, 0.95  # 0.1 per step: crosses 0.95 at step 10
    m = single_neuron_model(IF.uniform(1, r=r, v_threshold=th), "zoh", dt)
    z = trace(m, np.full((25, 1), x), backend)["n"][:, 0, 0]
    assert np.flatnonzero(z).tolist() == [9, 19]


@pytest.mark.parametrize("backend", BACKENDS)
def test_integrator_outputs_membrane(backend):
    m = single_neuron_model(Integrator.uniform(2, r=np.array([1.0, 2.0])), "zoh", 0.5)
    v = trace(m, np.ones((4, 2)), backend)["n"][:, 0]
    np.testing.assert_allclose(v, np.outer(np.arange(1, 5) * 0.5, [1.0, 2.0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_subtract_reset_keeps_the_overshoot(backend):
    # Unit gain Euler LIF with almost no leak: v accumulates 0.45 per step.
    kw = dict(tau_mem_s=1e3, r=1e6, v_threshold=1.0)
    to_value = single_neuron_model(LIF.uniform(1, **kw), "euler", 1e-3)
    subtract = single_neuron_model(LIF.uniform(1, reset_mode="subtract", **kw), "euler", 1e-3)
    xs = np.full((10, 1), 0.45)
    v0 = trace(to_value, xs, backend, ("n", "y"))
    v1 = trace(subtract, xs, backend, ("n", "y"))
    assert np.flatnonzero(v0["n"][:, 0, 0]).tolist() == [2, 5, 8]  # 1.35 fires -> 0, 0.45, 0.9, 1.35 ...
    assert np.flatnonzero(v1["n"][:, 0, 0]).tolist() == [2, 4, 6, 8]  # 1.35 fires -> 0.35, 0.8, 1.25 ...


@pytest.mark.parametrize("backend", BACKENDS)
def test_next_step_subtract_matches_snntorch_leaky(backend):
    beta, thr = 0.9, 1.0
    dt = 1e-4
    tau = dt / (1 - beta)
    node = LIF.uniform(3, tau_mem_s=tau, r=tau / dt, v_threshold=thr, reset_mode="subtract", reset_timing="next_step")
    m = single_neuron_model(node, "euler", dt)
    rng = np.random.default_rng(1)
    xs = rng.uniform(0, 0.6, (60, 3)).astype(np.float32)
    z = trace(m, xs, backend)["n"][:, 0]
    # snnTorch Leaky: reset = H(mem_prev - thr); mem = beta*mem + x - reset*thr; spk = H(mem - thr)
    mem = np.zeros(3, np.float32)
    expected = []
    for x in xs:
        reset = (mem > thr).astype(np.float32)
        mem = np.float32(beta) * mem + x - reset * thr
        expected.append((mem > thr).astype(np.float32))
    np.testing.assert_array_equal(z, np.array(expected))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["cascade", "cascade-euler"])
def test_cuba_lif_cascade_recursion(method, backend):
    # The cascades: the membrane is driven by the updated current, as snnTorch and Lava compute.
    dt, ts, tm = 1e-3, 5e-3, 2e-2
    node = CubaLIF.uniform(1, tau_syn_s=ts, tau_mem_s=tm, v_threshold=1e9, w_in=3.0)
    m = single_neuron_model(node, method, dt)
    steps = 40
    out = trace(m, np.ones((steps, 1)), backend, ("n",))
    c = discretise(node, dt, method)
    a_s, g_s = float(c.a_syn[0]), float(c.g_syn[0])
    a_v, g_v = float(c.a_v[0]), float(c.g_v[0])
    i = g_s * (1 - a_s ** np.arange(1, steps + 1)) / (1 - a_s)  # geometric sum of the input
    v = np.zeros(steps)
    prev = 0.0
    for t in range(steps):
        prev = a_v * prev + g_v * i[t]
        v[t] = prev
    s = m.session(options=SessionOptions(backends=("numpy",)))
    s.run(np.ones((steps, 1, 1), np.float32))
    state_i = s._plan.state["n/i"][0, 0]
    np.testing.assert_allclose(state_i, i[-1], rtol=1e-5)
    np.testing.assert_allclose(s._plan.state["n/v"][0, 0], v[-1], rtol=1e-5)
    assert out["n"].sum() == 0  # threshold out of reach: no spikes
    if method == "cascade":
        np.testing.assert_allclose(i[-1] / (1 - a_s**steps), 3.0, rtol=1e-5)  # steady state w_in * x


@pytest.mark.parametrize("backend", BACKENDS)
def test_adaptive_lif_cascade_spike_raises_adaptation_by_b(backend):
    node = AdaptiveLIF.uniform(1, tau_mem_s=0.01, tau_adapt_s=0.1, r=50.0, v_threshold=1.0, a_coupling=0.0, b_spike=0.3)
    m = single_neuron_model(node, "cascade", 1e-3)
    xs = np.ones((60, 1))
    z = trace(m, xs, backend)["n"][:, 0, 0]
    spikes = np.flatnonzero(z)
    assert len(spikes) >= 3
    isi = np.diff(spikes)
    assert isi[-1] >= isi[0]  # adaptation slows firing
    # With no sub-threshold coupling, w[t] = a_w w[t-1] + b z[t-1]: rebuild it from the spikes.
    a_w = np.exp(-1e-3 / 0.1)
    w = 0.0
    for t in range(1, len(z)):
        w = a_w * w + 0.3 * z[t - 1]
    s = m.session(options=SessionOptions(backends=("numpy",)))
    s.run(np.ones((len(z), 1, 1), np.float32))
    np.testing.assert_allclose(s._plan.state["n/w"][0, 0], w, rtol=1e-5)


def test_euler_refuses_steps_longer_than_tau():
    with pytest.raises(OptionError, match="dt <= tau"):
        discretise(LIF.uniform(1, tau_mem_s=1e-3, v_threshold=1.0), 2e-3, "euler")


def test_unknown_method_lists_choices():
    with pytest.raises(OptionError, match="zoh, euler, cascade, cascade-euler"):
        discretise(LIF.uniform(1, tau_mem_s=1e-3, v_threshold=1.0), 1e-3, "rk4")


def test_zoh_coefficients_are_exponential_decays():
    c = discretise(LIF.uniform(2, tau_mem_s=[0.01, 0.02], r=3.0, v_leak=-0.5, v_threshold=1.0), 1e-3)
    a = np.exp(-1e-3 / np.array([0.01, 0.02]))
    np.testing.assert_allclose(c.a_v, a, rtol=1e-6)
    np.testing.assert_allclose(c.g_v, 3.0 * (1 - a), rtol=1e-6)
    np.testing.assert_allclose(c.k_v, -0.5 * (1 - a), rtol=1e-6)
    assert c.a_v.dtype == np.float32


@pytest.mark.parametrize("backend", BACKENDS)
def test_inclusive_threshold_fires_at_equality(backend):
    kw = dict(r=1.0, v_threshold=1.0, reset_mode="subtract")
    xs = np.full((4, 1), 500.0)  # IF with dt 1 ms: +0.5 per step, reaching exactly 1.0 at step 1
    strict = trace(single_neuron_model(IF.uniform(1, **kw)), xs, backend)["n"][:, 0, 0]
    inclusive = trace(single_neuron_model(IF.uniform(1, threshold_inclusive=True, **kw)), xs, backend)["n"][:, 0, 0]
    assert strict.tolist() == [0, 0, 1, 0]  # 0.5, 1.0 (not > 1), 1.5 fires -> 0.5, 1.0
    assert inclusive.tolist() == [0, 1, 0, 1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_graded_spikes_count_thresholds_and_subtract_them(backend):
    node = IF.uniform(1, r=1.0, v_threshold=1.0, reset_mode="subtract", threshold_inclusive=True, max_spikes_per_step=3)
    xs = np.array([[2500.0], [0.0], [5000.0], [0.0]])  # +2.5 V, then +5 V (capped at 3 spikes)
    z = trace(single_neuron_model(node), xs, backend)["n"][:, 0, 0]
    assert z.tolist() == [2, 0, 3, 2]  # 2.5 -> 2 spikes, 0.5 left; 5.5 -> 3 (the cap), 2.5 left -> 2


def test_graded_spikes_need_an_inclusive_positive_threshold():
    from edgesnn.errors import NodeValidationError

    with pytest.raises(NodeValidationError, match="threshold_inclusive=True"):
        IF.uniform(1, r=1.0, v_threshold=1.0, max_spikes_per_step=2)
    with pytest.raises(NodeValidationError, match="max_spikes_per_step: expected an int in 1..32768"):
        IF.uniform(1, r=1.0, v_threshold=1.0, max_spikes_per_step=0)
