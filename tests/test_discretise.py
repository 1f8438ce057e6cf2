"""Every neuron kind under every method against the closed form of its definition, at dt 0.25-4 ms.

``"zoh"`` is the exact solution of the continuous equations with the input held over each
step: it must match scipy's matrix exponential of the continuous system to float32
precision. ``"euler"`` is forward Euler of the same system, and the two cascades
(``"cascade"``, ``"cascade-euler"``) are the recursions snnTorch, Rockpool, Sinabs and Lava
compute; each is checked against its own recursion, written out here in float64.
"""

import numpy as np
import pytest
import scipy.linalg

from edgesnn.engine import SessionOptions, available_backends
from edgesnn.graph import IF, LI, LIF, AdaptiveLIF, CubaLI, CubaLIF, Graph, Input, Integrator, Output
from edgesnn.model import Model
from edgesnn.neurons import METHODS, discretise

STEPS_S = [0.25e-3, 0.5e-3, 1e-3, 2e-3, 4e-3]
BACKENDS = [b for b in ("numpy", "native") if b in available_backends()]
TAU_MEM = np.array([20e-3, 6e-3, 8e-3, 40e-3])
TAU_SYN = np.array([4e-3, 6e-3, 10e-3, 5e-3])  # the second equals its tau_mem: the confluent case
R = np.array([1.0, 2.0, 0.5, 1.5])
V_LEAK = np.array([0.0, 0.1, -0.2, 0.05])


def population(kind: str, **spiking) -> object:
    """Four neurons of one kind with varied parameters (sub-threshold unless ``spiking`` says otherwise)."""
    th = spiking.pop("v_threshold", 1e9)
    common = {"v_threshold": np.full(4, th), **spiking}
    return {
        "Integrator": lambda: Integrator(r=R * 50),
        "IF": lambda: IF(r=R * 50, **common),
        "LI": lambda: LI(tau_mem_s=TAU_MEM, r=R, v_leak=V_LEAK),
        "LIF": lambda: LIF(tau_mem_s=TAU_MEM, r=R, v_leak=V_LEAK, **common),
        "CubaLI": lambda: CubaLI(tau_syn_s=TAU_SYN, tau_mem_s=TAU_MEM, r=R, v_leak=V_LEAK, w_in=np.full(4, 2.0)),
        "CubaLIF": lambda: CubaLIF(tau_syn_s=TAU_SYN, tau_mem_s=TAU_MEM, r=R, v_leak=V_LEAK, w_in=np.full(4, 2.0),
                                   **common),
        # a_coupling * g_adapt = 4 gives the third neuron a complex eigenvalue pair (a damped oscillation).
        "AdaptiveLIF": lambda: AdaptiveLIF(tau_mem_s=TAU_MEM, tau_adapt_s=np.array([50e-3, 0.1, 0.2, 0.4]), r=R,
                                           v_leak=V_LEAK, a_coupling=np.array([0.0, 0.5, 4.0, -0.3]),
                                           g_adapt=np.array([1.0, 1.0, 1.0, 2.0]), b_spike=np.full(4, 0.2),
                                           **common),
    }[kind]()  # fmt: skip


def continuous_system(node) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(A, B, c, state names) of ``ds/dt = A s + B x + c`` per neuron: A (n, k, k), B and c (n, k)."""
    n = node.size
    if isinstance(node, (Integrator, IF)):
        return np.zeros((n, 1, 1)), np.asarray(node.r, float)[:, None], np.zeros((n, 1)), ["v"]
    lam_m = 1.0 / np.asarray(node.tau_mem_s, float)
    r, vl = np.asarray(node.r, float), np.asarray(node.v_leak, float)
    if isinstance(node, (LI, LIF)):
        return (-lam_m)[:, None, None], (r * lam_m)[:, None], (vl * lam_m)[:, None], ["v"]
    if isinstance(node, (CubaLI, CubaLIF)):
        lam_s, w = 1.0 / np.asarray(node.tau_syn_s, float), np.asarray(node.w_in, float)
        a = np.zeros((n, 2, 2))
        a[:, 0, 0], a[:, 1, 0], a[:, 1, 1] = -lam_s, r * lam_m, -lam_m
        return a, np.stack([w * lam_s, np.zeros(n)], 1), np.stack([np.zeros(n), vl * lam_m], 1), ["i", "v"]
    lam_a = 1.0 / np.asarray(node.tau_adapt_s, float)
    coupling, kappa = np.asarray(node.a_coupling, float), np.asarray(node.g_adapt, float)
    a = np.zeros((n, 2, 2))
    a[:, 0, 0], a[:, 0, 1], a[:, 1, 0], a[:, 1, 1] = -lam_m, -kappa * lam_m, coupling * lam_a, -lam_a
    c = np.stack([vl * lam_m, -coupling * lam_a * vl], 1)
    return a, np.stack([r * lam_m, np.zeros(n)], 1), c, ["v", "w"]


def exact_step(a: np.ndarray, b: np.ndarray, c: np.ndarray, s: np.ndarray, x: np.ndarray, dt: float) -> np.ndarray:
    """The continuous solution after ``dt`` with ``x`` held: expm of the augmented system, by scipy."""
    out = np.empty_like(s)
    k = s.shape[1]
    for j in range(s.shape[0]):
        m = np.zeros((k + 1, k + 1))
        m[:k, :k], m[:k, k] = a[j], b[j] * x[j] + c[j]
        out[j] = (scipy.linalg.expm(m * dt) @ np.append(s[j], 1.0))[:k]
    return out


def cascade_step(node, s: np.ndarray, x: np.ndarray, z: np.ndarray, dt: float, rule: str) -> np.ndarray:
    """One step of the cascade: each state's own decay, the downstream state driven by the updated upstream."""

    def decay(tau):
        tau = np.asarray(tau, float)
        a = np.exp(-dt / tau) if rule == "exp" else 1.0 - dt / tau
        return a, 1.0 - a

    r, vl = np.asarray(node.r, float), np.asarray(node.v_leak, float)
    a_v, g = decay(node.tau_mem_s)
    if isinstance(node, (CubaLI, CubaLIF)):
        a_s, g_s = decay(node.tau_syn_s)
        i = a_s * s[:, 0] + g_s * np.asarray(node.w_in, float) * x
        return np.stack([i, a_v * s[:, 1] + g * (vl + r * i)], 1)
    a_w, g_w = decay(node.tau_adapt_s)
    w = a_w * s[:, 1] + g_w * np.asarray(node.a_coupling, float) * (s[:, 0] - vl) + np.asarray(node.b_spike) * z
    v = a_v * s[:, 0] + g * (vl + r * x - np.asarray(node.g_adapt, float) * w)
    return np.stack([v, w], 1)


def reference(node, method: str, xs: np.ndarray, dt: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Float64 states after each step and the spikes, by the method's own definition."""
    a, b, c, names = continuous_system(node)
    n = node.size
    s = np.zeros((n, len(names)))
    v_at = names.index("v")
    s[:, v_at] = np.asarray(getattr(node, "v_leak", np.zeros(n)), float)  # sessions start at rest
    spiking = node.spiking
    th = np.asarray(node.v_threshold, float) if spiking else np.full(n, np.inf)
    z = np.zeros(n)
    states, spikes = [], []
    adaptive = isinstance(node, AdaptiveLIF)
    for x in xs:
        jump = s.copy()
        if adaptive:  # a spike moves w by b at the end of the step that fired
            jump[:, 1] += np.asarray(node.b_spike, float) * z
        if method == "zoh":
            s = exact_step(a, b, c, jump, x, dt)
        elif method == "euler":
            s = jump + dt * (np.einsum("nij,nj->ni", a, jump) + b * x[:, None] + c)
        elif len(names) == 1:  # single-state neurons: the cascades are their rule
            rule = "exp" if method == "cascade" else "euler"
            s = exact_step(a, b, c, s, x, dt) if rule == "exp" else s + dt * (a[:, :, 0] * s + b * x[:, None] + c)
        else:
            s = cascade_step(node, s, x, z, dt, "exp" if method == "cascade" else "euler")
        z = (s[:, v_at] > th).astype(float) if spiking else z
        s[z != 0, v_at] = np.asarray(getattr(node, "v_reset", np.zeros(n)), float)[z != 0]
        states.append(s.copy())
        spikes.append(z.copy())
    return {name: np.array([st[:, k] for st in states]) for k, name in enumerate(names)}, np.array(spikes)


def run(node, method: str, xs: np.ndarray, dt: float, backend: str) -> dict[str, np.ndarray]:
    g = Graph({"x": Input((4,), unit="A"), "n": node, "y": Output((4,))}, [("x", "n"), ("n", "y")])
    s = Model(g, dt_s=dt, method=method).session(options=SessionOptions(backends=(backend,)))
    out = s.run(xs[:, None], outputs=[*s.recordable, "n"])
    return {k.split("/")[-1]: v[:, 0] for k, v in out.items()}  # "n/v" -> "v"; "n" stays


def drive(steps: int, seed: int = 0) -> np.ndarray:
    """A held input that changes every step: positive on average, with sign changes."""
    return np.random.default_rng(seed).normal(0.6, 0.8, (steps, 4)).astype(np.float32)


KINDS = ["Integrator", "IF", "LI", "LIF", "CubaLI", "CubaLIF", "AdaptiveLIF"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt", STEPS_S)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", KINDS)
def test_every_state_follows_its_method_s_closed_form(kind, method, dt, backend):
    node = population(kind)
    steps = int(round(40e-3 / dt))
    xs = drive(steps)
    want, _ = reference(node, method, xs.astype(np.float64), dt)
    got = run(node, method, xs, dt, backend)
    for name, trace in want.items():
        scale = np.abs(trace).max(axis=0) + 1e-3
        # float32 over up to 160 steps: a few float32 roundings of the state's scale per step
        np.testing.assert_allclose(got[name] / scale, trace / scale, rtol=0, atol=4e-6, err_msg=f"{kind}/{name}")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", ["IF", "LIF", "CubaLIF", "AdaptiveLIF"])
def test_spikes_and_resets_follow_the_closed_form(kind, method, backend):
    dt = 1e-3
    node = population(kind, v_threshold=0.12, v_reset=np.full(4, -0.05))
    xs = drive(120, seed=3) * 1.5
    want, spikes = reference(node, method, xs.astype(np.float64), dt)
    got = run(node, method, xs, dt, backend)
    assert spikes.sum() > 20, "the test needs spikes"
    np.testing.assert_array_equal(got["n"], spikes)
    np.testing.assert_allclose(got["v"], want["v"], rtol=1e-5, atol=5e-6)


def test_exact_zoh_of_a_current_based_neuron_is_the_coupled_solution_not_the_cascade():
    # One CubaLIF (tau_syn 5 ms, tau_mem 20 ms) given one 1 ms step of unit current, then nothing.
    node = CubaLIF.uniform(1, tau_syn_s=5e-3, tau_mem_s=20e-3, v_threshold=1e9)
    xs = np.zeros((2, 1), np.float32)
    xs[0] = 1.0
    g = Graph({"x": Input((1,), unit="A"), "n": node, "y": Output((1,))}, [("x", "n"), ("n", "y")])
    v = {m: Model(g, dt_s=1e-3, method=m).session().run(xs[:, None], outputs=["n/v"])["n/v"][:, 0, 0]
         for m in ("zoh", "cascade")}  # fmt: skip
    np.testing.assert_allclose(v["zoh"], [0.00460, 0.01239], atol=5e-6)
    np.testing.assert_allclose(v["cascade"], [0.00884, 0.01565], atol=5e-6)


def test_the_cascade_is_not_exact_and_is_named_so():
    # At 0.25 ms the cascade's error against the continuous solution is of forward Euler's order.
    node = population("CubaLIF")
    xs = drive(160)
    exact, _ = reference(node, "zoh", xs.astype(np.float64), 0.25e-3)
    err = {m: np.abs(run(node, m, xs, 0.25e-3, "numpy")["v"] - exact["v"]).max() for m in METHODS}
    assert err["zoh"] < 1e-5 < err["cascade"]
    assert err["cascade"] > 0.2 * err["euler"]


def test_single_state_neurons_have_one_update_under_both_exponential_methods():
    for kind in ("LIF", "LI", "IF", "Integrator"):
        node = population(kind)
        for a, b in (("zoh", "cascade"), ("euler", "cascade-euler")):
            ca, cb = discretise(node, 1e-3, a), discretise(node, 1e-3, b)
            for field in ("a_v", "k_v", "g_v", "g_x", "h_w"):
                np.testing.assert_array_equal(getattr(ca, field), getattr(cb, field), err_msg=f"{kind} {field}")
