"""Time-resolution adaptation against closed forms, identity, composition, and in a session."""

import dataclasses

import numpy as np
import pytest

from edgesnn.adapt import METHODS, input_is_counts, retime_model, retime_node
from edgesnn.engine import SessionOptions
from edgesnn.errors import OptionError
from edgesnn.graph import IF, LI, LIF, AdaptiveLIF, CubaLIF, Graph, Input, Integrator, Linear, Output
from edgesnn.model import Model
from edgesnn.neurons import discretise

NUMPY = SessionOptions(backends=("numpy",))
SSM = [m for m in METHODS if m != "tau"]


def neurons():
    """One population of every neuron model, with varied per-neuron parameters."""
    tau = np.array([5e-3, 10e-3, 20e-3, 40e-3])
    return {
        "LI": LI(tau_mem_s=tau, r=np.array([1.0, 2.0, 0.5, 1.0]), v_leak=np.array([0.0, 0.1, -0.1, 0.0])),
        "LIF": LIF(tau_mem_s=tau, r=np.ones(4), v_threshold=np.ones(4)),
        "IF": IF.uniform(4, r=3.0, v_threshold=1.0),
        "Integrator": Integrator.uniform(4, r=2.0),
        "CubaLIF": CubaLIF(
            tau_syn_s=tau / 4, tau_mem_s=tau, r=np.ones(4), v_threshold=np.ones(4), w_in=np.full(4, 2.0)
        ),
        "AdaptiveLIF": AdaptiveLIF(
            tau_mem_s=tau, tau_adapt_s=tau * 10, r=np.ones(4), v_threshold=np.ones(4),
            a_coupling=np.array([0.0, 0.5, 1.0, 2.0]), b_spike=np.full(4, 0.1),
        ),
    }  # fmt: skip


def coefficients(node, dt, method="zoh"):
    c = discretise(node, dt, method)
    return {
        k: np.asarray(getattr(c, k), np.float64)
        for k in ("a_syn", "g_syn", "a_w", "c_w", "b_w", "a_v", "k_v", "g_v", "g_w", "g_x", "h_w")
    }


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", list(neurons()))
@pytest.mark.parametrize("discretisation", ["zoh", "euler", "cascade", "cascade-euler"])
def test_identity_at_rho_one(kind, method, discretisation):
    node = neurons()[kind]
    same = retime_node(node, 1e-3, 1e-3, method, discretisation=discretisation)
    for k, v in coefficients(node, 1e-3, discretisation).items():
        np.testing.assert_allclose(coefficients(same, 1e-3, discretisation)[k], v, rtol=2e-5, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", list(neurons()))
@pytest.mark.parametrize("discretisation", ["zoh", "euler", "cascade", "cascade-euler"])
def test_composition_equals_the_direct_map(kind, method, discretisation):
    node = neurons()[kind]
    d = discretisation
    via = retime_node(retime_node(node, 1e-3, 0.5e-3, method, discretisation=d), 0.5e-3, 0.25e-3, method,
                      discretisation=d)  # fmt: skip
    direct = retime_node(node, 1e-3, 0.25e-3, method, discretisation=d)
    for k, v in coefficients(direct, 0.25e-3, d).items():
        np.testing.assert_allclose(coefficients(via, 0.25e-3, d)[k], v, rtol=1e-4, atol=1e-7, err_msg=k)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", list(neurons()))
@pytest.mark.parametrize("discretisation", ["zoh", "euler", "cascade", "cascade-euler"])
def test_round_trip_to_a_finer_step_and_back_is_the_identity(kind, method, discretisation):
    node, d = neurons()[kind], discretisation
    back = retime_node(retime_node(node, 1e-3, 0.25e-3, method, discretisation=d), 0.25e-3, 1e-3, method,
                       discretisation=d)  # fmt: skip
    for k, v in coefficients(node, 1e-3, d).items():
        np.testing.assert_allclose(coefficients(back, 1e-3, d)[k], v, rtol=1e-4, atol=1e-7, err_msg=k)


def lif_response(node, dt_train, dt_run, method, rate_hz, duration_s):
    """Membrane of a LIF readout fed the expected binned count of a constant event rate."""
    g = Graph({"x": Input((4,), unit="spikes"), "n": node, "y": Output((4,))}, [("x", "n"), ("n", "y")])
    model = Model(g, dt_s=dt_train, adapt_method=method)
    steps = int(round(duration_s / dt_run))
    xs = np.full((steps, 1, 4), rate_hz * dt_run, np.float32)  # expected count per step
    return model.session(dt=dt_run, options=NUMPY).run(xs)["y"][:, 0]


@pytest.mark.parametrize("method", SSM)
@pytest.mark.parametrize("rho", [0.25, 0.5, 2.0])
def test_leaky_readout_follows_the_continuous_response_at_the_new_step(method, rho):
    dt = 1e-3
    tau = np.array([5e-3, 10e-3, 20e-3, 40e-3])
    node = LI(tau_mem_s=tau, r=np.ones(4))
    rate = 400.0  # events/s; the source sees 0.4 per step, so v settles at R * 0.4
    v = lif_response(node, dt, dt * rho, method, rate, 0.2)
    t = np.arange(1, len(v) + 1)[:, None] * dt * rho
    closed_form = rate * dt * (1 - np.exp(-t / tau))
    # zoh-rate is exact for a rate input; the others approximate it (integral keeps per-event jumps,
    # the Euler and bilinear decays only approximate the exponential), more so for the fastest neuron.
    tol = {"zoh-rate": 1e-4, "bilinear-rate": 0.02, "euler-rate": 0.08, "integral": 0.1}[method]
    np.testing.assert_allclose(v, closed_form, atol=tol * rate * dt)


def test_tau_scaling_loses_the_input_magnitude_at_finer_steps():
    node = LI(tau_mem_s=np.full(4, 0.02), r=np.ones(4))
    v = lif_response(node, 1e-3, 0.25e-3, "tau", 400.0, 0.3)
    np.testing.assert_allclose(v[-1], 0.25 * 0.4, rtol=0.02)  # a quarter of the source's steady state


@pytest.mark.parametrize("method", ["integral", "zoh-rate", "euler-rate", "bilinear-rate"])
def test_adaptive_lif_samples_match_the_source_trajectory(method):
    node = neurons()["AdaptiveLIF"]
    node = node.replace(v_threshold=np.full(4, 1e9))  # stay sub-threshold: a linear system
    g = Graph({"x": Input((4,), unit="spikes"), "n": node, "y": Output((4,))}, [("x", "n"), ("n", "y")])
    model = Model(g, dt_s=1e-3, adapt_method=method)
    src = model.session(options=NUMPY).run(np.full((200, 1, 4), 0.5, np.float32), outputs=["n"])["n"][:, 0]
    s = model.session(dt=0.25e-3, options=NUMPY)
    dst = s.run(np.full((800, 1, 4), 0.125, np.float32), outputs=["n"])["n"][3::4, 0]
    scale = np.abs(src).max(axis=0)
    assert np.all(np.abs(dst - src) <= 0.05 * scale)


def test_matrix_power_keeps_the_coupled_eigenvalues():
    node = neurons()["AdaptiveLIF"]
    c_src = discretise(node, 1e-3)
    c_dst = discretise(retime_node(node, 1e-3, 0.25e-3, "zoh-rate"), 0.25e-3)

    def matrix(c):
        a_v, g_w, c_w, a_w = (np.asarray(getattr(c, k), np.float64) for k in ("a_v", "g_w", "c_w", "a_w"))
        return np.stack([np.stack([a_v - g_w * c_w, -g_w * a_w], -1), np.stack([c_w, a_w], -1)], -2)

    h4 = np.linalg.matrix_power(matrix(c_dst), 4)
    np.testing.assert_allclose(h4, matrix(c_src), rtol=1e-4, atol=1e-6)


def spiking_model(method):
    rng = np.random.default_rng(0)
    g = Graph(
        {"x": Input((50,), unit="spikes"), "fc": Linear(rng.normal(0.2, 0.2, (30, 50))),
         "lif": CubaLIF.uniform(30, tau_syn_s=5e-3, tau_mem_s=20e-3, r=3.0, w_in=1.0, v_threshold=1.0),
         "y": Output((30,))},
        [("x", "fc"), ("fc", "lif"), ("lif", "y")],
    )  # fmt: skip
    return Model(g, dt_s=1e-3, adapt_method=method)


def firing_rate_hz(model, dt, seconds=1.0, rate_hz=40.0):
    rng = np.random.default_rng(1)
    steps = int(round(seconds / dt))
    xs = (rng.random((steps, 1, 50)) < rate_hz * dt).astype(np.float32)
    return model.session(dt=dt, options=NUMPY).run(xs)["y"].sum() / 30 / seconds


@pytest.mark.parametrize("method", SSM)
def test_ssm_methods_keep_the_firing_rate_where_tau_scaling_collapses(method):
    source = firing_rate_hz(spiking_model(method), 1e-3)
    assert 5 < source < 100
    tol = 0.3 if method == "integral" else 0.1  # integral keeps per-event jumps: exact for impulses, not rates
    for dt in (0.25e-3, 0.5e-3, 2e-3):
        assert abs(firing_rate_hz(spiking_model(method), dt) - source) < tol * source, dt
    assert firing_rate_hz(spiking_model("tau"), 0.25e-3) < 0.5 * source


def test_session_retime_keeps_state_and_records_history():
    model = spiking_model("integral")
    s = model.session(options=NUMPY)
    s.run(np.ones((10, 1, 50), np.float32))
    v_before = s._plan.state["lif/v"].copy()
    s.retime(0.5e-3)
    assert s.dt_s == 0.5e-3
    np.testing.assert_array_equal(s._plan.state["lif/v"], v_before)
    assert s.model.producer["retimed"] == [{"from_dt_s": 1e-3, "to_dt_s": 0.5e-3, "method": "integral"}]


def test_input_units_decide_counts_or_signal():
    g = Graph(
        {"a": Input((3,), unit="spikes"), "b": Input((3,), unit="mV"), "la": LI.uniform(3, tau_mem_s=0.01),
         "lb": LI.uniform(3, tau_mem_s=0.01), "lc": LI.uniform(3, tau_mem_s=0.01), "ya": Output((3,)),
         "yb": Output((3,)), "yc": Output((3,))},
        [("a", "la"), ("b", "lb"), ("lb", "lc"), ("la", "ya"), ("lb", "yb"), ("lc", "yc")],
    )  # fmt: skip
    assert input_is_counts(g, "la") and not input_is_counts(g, "lb") and not input_is_counts(g, "lc")


def test_out_of_range_maps_are_refused_with_the_node_named():
    node = LIF.uniform(2, tau_mem_s=2e-3, v_threshold=1.0)
    with pytest.raises(OptionError, match=r"nodes/fast: method 'euler-rate' maps the membrane decay"):
        retime_node(node, 1e-3, 8e-3, "euler-rate", name="fast")
    with pytest.raises(OptionError, match="expected one of tau, integral"):
        retime_node(node, 1e-3, 2e-3, "magic")


def test_retimed_bundle_round_trips(tmp_path):
    from edgesnn.bundle import read_bundle, write_bundle

    adapted = retime_model(spiking_model("zoh-rate"), 0.5e-3)
    write_bundle(adapted, tmp_path / "a.esnn")
    back = read_bundle(tmp_path / "a.esnn")
    assert back.dt_s == 0.5e-3 and back.adapt_method == "zoh-rate"
    assert back.producer["retimed"][0]["method"] == "zoh-rate"
    assert back.graph.nodes["lif"].min_spike_interval_s == 1e-3  # the source's one spike per step


def test_recurrent_loops_keep_their_delay_in_seconds():
    g = Graph(
        {"x": Input((2,), unit="spikes"), "lif": LIF.uniform(2, tau_mem_s=0.02, v_threshold=1.0),
         "rec": Linear(np.eye(2)), "y": Output((2,))},
        [("x", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "y")],
    )  # fmt: skip
    model = Model(g, dt_s=1e-3)
    fine = retime_model(model, 0.25e-3)
    (delay_name,) = [n for n in fine.graph.nodes if n.endswith(".loop_delay")]
    assert fine.graph.nodes[delay_name].delay_s == pytest.approx(0.75e-3)
    assert (delay_name, "lif") in fine.graph.back_edges
    # Retiming again adjusts that delay instead of stacking another one.
    finer = retime_model(fine, 0.125e-3)
    assert [n for n in finer.graph.nodes if n.endswith(".loop_delay")] == [delay_name]
    assert finer.graph.nodes[delay_name].delay_s == pytest.approx(0.875e-3)
    assert retime_model(model, 0.25e-3, "tau").graph.nodes.keys() == model.graph.nodes.keys()


def saturated_layer(dt_s):
    """A subtractive-reset LIF layer driven far above threshold: it fires every step at dt_s."""
    g = Graph(
        {"x": Input((3,), unit="spikes"), "lif": LIF.uniform(3, tau_mem_s=0.05, r=1.0, v_threshold=1.0,
                                                            reset_mode="subtract"), "y": Output((3,))},
        [("x", "lif"), ("lif", "y")],
    )  # fmt: skip
    return Model(g, dt_s=dt_s)


@pytest.mark.parametrize("method", SSM)
def test_finer_steps_keep_the_source_limit_of_one_spike_per_step(method):
    source = saturated_layer(4e-3)
    rates = np.array([2000.0, 500.0, 100.0])  # events/s: the first two saturate at 4 ms
    seconds = 0.4

    def spikes(model, dt):
        steps = int(round(seconds / dt))
        xs = np.broadcast_to(rates * dt * 60, (steps, 1, 3)).astype(np.float32)  # expected counts, strong weight
        return model.session(dt=dt, options=NUMPY).run(xs)["y"][:, 0].sum(axis=0)

    at_source = spikes(source, 4e-3)
    assert at_source[0] == seconds / 4e-3  # one spike per 4 ms step, the cap
    fine = retime_model(source, 1e-3, method)
    assert fine.graph.nodes["lif"].min_spike_interval_s == pytest.approx(4e-3)
    np.testing.assert_allclose(spikes(fine, 1e-3), at_source, rtol=0.1, atol=2)
    # Without the kept interval the saturated neurons would fire up to four times as often.
    g = fine.graph
    free = g.nodes["lif"].replace(min_spike_interval_s=0.0)
    unlimited = dataclasses.replace(fine, graph=Graph({**g.nodes, "lif": free}, list(g.edges), g.metadata))
    assert spikes(unlimited, 1e-3)[0] > 3 * at_source[0]


def test_the_kept_interval_composes_and_is_left_alone_when_coarser():
    node = LIF.uniform(2, tau_mem_s=0.02, v_threshold=1.0)
    via = retime_node(retime_node(node, 4e-3, 2e-3, "integral"), 2e-3, 1e-3, "integral")
    assert via.min_spike_interval_s == retime_node(node, 4e-3, 1e-3, "integral").min_spike_interval_s == 4e-3
    assert retime_node(node, 1e-3, 2e-3, "integral").min_spike_interval_s == 0.0
    assert retime_node(node, 4e-3, 1e-3, "tau").min_spike_interval_s == 0.0  # the reference keeps nothing


# -- what the input is, and the method matching the discretisation ------------------------


def unitless_model(unit=""):
    g = Graph({"x": Input((4,), unit=unit), "n": LI(tau_mem_s=np.full(4, 0.02), r=np.ones(4)), "y": Output((4,))},
              [("x", "n"), ("n", "y")])  # fmt: skip
    return Model(g, dt_s=1e-3)


def test_adapting_an_input_without_a_unit_names_it_and_both_meanings():
    with pytest.raises(OptionError) as info:
        unitless_model().session(dt=0.25e-3)
    assert info.value.path == "inputs/x"
    assert "events counted per step" in info.value.message and "a sampled signal" in info.value.message
    assert retime_model(unitless_model(), 0.25e-3, "tau").dt_s == 0.25e-3  # time constants alone need no unit
    assert unitless_model().session().dt_s == 1e-3  # nor does running at the model's own step


@pytest.mark.parametrize(("unit", "counts"), [("spikes", True), ("events", True), ("mV", False), ("signal", False)])
def test_saying_the_unit_decides_the_map(unit, counts):
    model = unitless_model().with_input_units({"x": unit})
    assert model.inputs[0].unit == unit and input_is_counts(model.graph, "n") is counts
    steady = model.session(dt=0.25e-3, options=NUMPY).run(np.ones((800, 1, 4), np.float32))["y"][-1, 0, 0]
    # One event per 0.25 ms step is four times the source's rate; one unit of a signal is one unit.
    assert steady == pytest.approx(4.0 if counts else 1.0, rel=1e-3)


def test_with_input_units_refuses_unknown_inputs_and_empty_units():
    with pytest.raises(OptionError, match="no input named 'y'"):
        unitless_model().with_input_units({"y": "spikes"})
    with pytest.raises(OptionError, match="expected a unit"):
        unitless_model().with_input_units({"x": " "})


@pytest.mark.parametrize(
    ("method", "adapt"),
    [("zoh", "zoh-rate"), ("cascade", "zoh-rate"), ("euler", "euler-rate"), ("cascade-euler", "euler-rate")],
)
def test_the_adaptation_method_defaults_to_the_one_matching_the_discretisation(method, adapt):
    assert Model(unitless_model().graph, dt_s=1e-3, method=method).adapt_method == adapt
    assert Model(unitless_model().graph, dt_s=1e-3, method=method, adapt_method="tau").adapt_method == "tau"


def test_an_euler_model_adapts_exactly_under_its_default_and_not_under_zoh_rate():
    g = unitless_model("spikes").graph
    model = Model(g, dt_s=1e-3, method="euler")
    xs = np.random.default_rng(0).random((400, 1, 4)).astype(np.float32) * 0.25  # expected counts at 0.25 ms
    # Forward Euler of tau dv/dt = -v + R x at 0.25 ms, the counts per step scaled back to the source's rate.
    a = 1 - 0.25e-3 / 0.02
    v, want = 0.0, []
    for x in xs[:, 0, 0].astype(np.float64):
        v = a * v + (1 - a) * x * 4
        want.append(v)
    got = {m: retime_model(model, 0.25e-3, m).session(options=NUMPY).run(xs)["y"][:, 0, 0]
           for m in ("euler-rate", "zoh-rate")}  # fmt: skip
    assert model.adapt_method == "euler-rate"
    np.testing.assert_allclose(got["euler-rate"], want, rtol=1e-5, atol=1e-7)
    assert np.abs(got["zoh-rate"] - want).max() > 1e-3 * np.abs(want).max()


@pytest.mark.parametrize(("discretisation", "method"), [("zoh", "zoh-rate"), ("euler", "euler-rate")])
@pytest.mark.parametrize("kind", ["LIF", "CubaLIF", "AdaptiveLIF"])
def test_the_matching_method_is_the_exact_discretisation_at_the_new_step(kind, discretisation, method):
    # Same time constants and couplings; counts at 4x finer steps need 4x the gain per event.
    node = neurons()[kind]
    fine = retime_node(node, 1e-3, 0.25e-3, method, discretisation=discretisation)
    gain = "w_in" if kind == "CubaLIF" else "r"
    for field in node.array_fields():
        want = np.asarray(getattr(node, field)) * (4.0 if field == gain else 1.0)
        np.testing.assert_allclose(getattr(fine, field), want, rtol=2e-5, atol=1e-9, err_msg=field)


@pytest.mark.parametrize("method", ["zoh-rate", "euler-rate", "bilinear-rate"])
@pytest.mark.parametrize("discretisation", ["cascade", "cascade-euler"])  # zoh refuses such a neuron outright
def test_an_adaptive_neuron_that_integrates_is_retimed_as_an_integrator(method, discretisation):
    # a_coupling = -1 (g_adapt 1): the (v, w) system has an eigenvalue at 1 and no steady state, as a
    # trained network reaches when a is clamped at the bound of its range; the others map as before.
    a = np.array([-1.0, 0.5, -0.3, 0.0])

    def adaptive(a: np.ndarray) -> AdaptiveLIF:
        n = len(a)
        return AdaptiveLIF(tau_mem_s=np.full(n, 0.02), tau_adapt_s=np.full(n, 0.2), a_coupling=a,
                           b_spike=np.full(n, 0.1), v_threshold=np.ones(n))  # fmt: skip

    node = adaptive(a)
    out = retime_node(node, 4e-3, 1e-3, method, discretisation=discretisation, counts=True)
    alone = retime_node(adaptive(a[1:]), 4e-3, 1e-3, method, discretisation=discretisation, counts=True)
    assert np.all(np.isfinite(out.r)) and np.all(np.isfinite(out.tau_mem_s))
    np.testing.assert_allclose(out.r[1:], alone.r, rtol=1e-6)
    src, dst = discretise(node, 4e-3, discretisation), discretise(out, 1e-3, discretisation)
    # the integrating neuron keeps each input event's jump, as a perfect integrator does with counts
    np.testing.assert_allclose(dst.g_v[0], src.g_v[0], rtol=1e-5)
