"""The AlphaGrad benchmark functions, rebuilt from the paper's task descriptions, and one step of each neuron cell.

Lohoff and Neftci (arXiv 2406.05027) evaluate elimination orders on these functions; the
operation sequences below follow the published task definitions (Roe's approximate Riemann
solver, the 6-DOF robot arm's forward kinematics, MINPACK-2's human heart dipole and propane
combustion, the Black-Scholes greeks, a perceptron and a transformer encoder), because the
multiplication count of an order depends on the exact graph: recomputed subexpressions are
vertices of their own. :data:`EXACT` names the tasks whose graph matches the published one;
only their counts are comparable to the published counts (:data:`PUBLISHED`).

The neuron cells are one step of a hidden layer of tools.train (synapses, then the neuron update
of tools.train.neurons with the surrogate spike) as a function of (parameters, state, input).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import jax.scipy.special as jss

from tools.jacobians import api
from tools.train import neurons as N
from tools.train.surrogate import make_spike_fn

#: Published multiplication counts: (best of forward, reverse and minimal Markowitz; AlphaGrad's order).
PUBLISHED: dict[str, tuple[int, int | None]] = {
    "RoeFlux_1d": (364, 320),
    "RoeFlux_3d": (938, 811),
    "RobotArm_6DOF": (288, 231),
    "HumanHeartDipole": (172, 148),
    "PropaneCombustion": (90, None),
    "BlackScholes_Jacobian": (350, 312),
    "MLP": (392, 389),
    "TransformerEncoder": (4688, 4656),
}

# ---- Roe's flux for the 1d and 3d Euler equations ---------------------------------------------------

_GAMMA = 0.5  # the value the published task uses


def _pressure_1d(u0: Any, u1: Any, u2: Any) -> Any:
    return (_GAMMA - 1.0) * (u2 - 0.5 * u1**2 / u0)


def _enthalpy(u0: Any, u_energy: Any, p: Any) -> Any:
    return (u_energy + p) / u0


def _euler_flux_1d(u0: Any, u1: Any, u2: Any, p: Any) -> tuple[Any, Any, Any]:
    v = u1 / u0
    return u1, p + u1 * v, v * (p + u2)


def roe_flux_1d(ul0: Any, ul1: Any, ul2: Any, ur0: Any, ur1: Any, ur2: Any) -> tuple[Any, Any, Any]:
    """Roe's (1981) approximate Riemann flux between left state ``ul*`` and right state ``ur*``."""
    du0 = ur0 - ul0
    rho = jnp.sqrt(ul0 * ur0)
    w1 = jnp.sqrt(ul0) + jnp.sqrt(ur0)
    vl = ul1 / ul0
    pl = _pressure_1d(ul0, ul1, ul2)
    hl = _enthalpy(ul0, ul2, pl)
    vr = ur1 / ur0
    pr = _pressure_1d(ur0, ur1, ur2)
    hr = _enthalpy(ur0, ur2, pr)
    dp, dv = pr - pl, vr - vl
    # Roe averages of velocity and enthalpy.
    u = (jnp.sqrt(ul0) * vl + jnp.sqrt(ur0) * vr) / w1
    h = (jnp.sqrt(ul0) * hl + jnp.sqrt(ur0) * hr) / w1
    q2 = u**2
    a2 = (_GAMMA - 1.0) * (h - 0.5 * q2)
    a = jnp.sqrt(a2)
    lam_plus, lam0, lam_minus = jnp.abs(u + a), jnp.abs(u), jnp.abs(u)
    n = a * rho
    c0 = (du0 - dp / a2) * lam0
    c1 = (dv + dp / n) * lam_plus
    c2 = (dv - dp / n) * lam_minus
    fl0, fl1, fl2 = _euler_flux_1d(ul0, ul1, ul2, pl)
    fr0, fr1, fr2 = _euler_flux_1d(ur0, ur1, ur2, pr)
    f0, f1, f2 = fl0 + fr0, fl1 + fr1, fl2 + fr2
    c = 0.5 * rho / a
    df0 = c0 + c * c1 - c * c2
    df1 = c0 * u + c * c1 * (u + a) - c * c2 * (u - a)
    df2 = c0 * 0.5 * q2 + c * c1 * (h + u * a) - c * c2 * (h - u * a)
    return 0.5 * (f0 - df0), 0.5 * (f1 - df1), 0.5 * (f2 - df2)


def _pressure_3d(u0: Any, u: Any, u4: Any) -> Any:
    return (_GAMMA - 1.0) * (u4 - 0.5 * jnp.sum(u**2) / u0)


def _euler_flux_3d(u0: Any, u: Any, v: Any, u4: Any, p: Any) -> tuple[Any, Any, Any]:
    p3 = jnp.concatenate([p, jnp.zeros(2, dtype=jnp.float32)])
    return u[0:1], p3 + u * v, v[0:1] * (p + u4)


def roe_flux_3d(ul0: Any, ul: Any, ul4: Any, ur0: Any, ur: Any, ur4: Any) -> tuple[Any, Any, Any]:
    """Roe's flux in 3d: density (1,), momentum (3,) and energy (1,) of the left and right states."""
    du0 = ur0 - ul0
    du = ur - ul
    du1, du2, du3 = du[0:1], du[1:2], du[2:]
    du4 = ur4 - ul4
    vl, vr = ul / ul0, ur / ur0
    w1 = jnp.sqrt(ul0) + jnp.sqrt(ur0)
    uvw = (jnp.sqrt(ul0) * vl + jnp.sqrt(ur0) * vr) / w1
    u, v, w = uvw[0:1], uvw[1:2], uvw[2:]
    pl = _pressure_3d(ul0, ul, ul4)
    hl = _enthalpy(ul0, ul4, pl)
    pr = _pressure_3d(ur0, ur, ur4)
    hr = _enthalpy(ur0, ur4, pr)
    h = (jnp.sqrt(ul0) * hl + jnp.sqrt(ur0) * hr) / w1
    q2 = jnp.sum(uvw**2)
    a2 = (_GAMMA - 1.0) * (h - 0.5 * q2)
    a = jnp.sqrt(a2)
    lam_plus, lam0, lam_minus = u + a, u, u - a
    c3 = ((_GAMMA - 1.0) / a2 * ((h - q2) * du0 + jnp.dot(uvw, du) - du4)) * lam0
    c2 = (du3 / w - du1) * lam0
    c1 = (du2 / v - du0) * lam0
    k1 = du0 - c3
    k2 = (du1 - u * du0) / a
    c0 = 0.5 * (k1 - k2) * lam_minus
    c4 = 0.5 * (k1 + k2) * lam_plus
    fl0, fl, fl4 = _euler_flux_3d(ul0, ul, vl, ul4, pl)
    fr0, fr, fr4 = _euler_flux_3d(ur0, ur, vr, ur4, pr)
    f0, f, f4 = fl0 + fr0, fl + fr, fl4 + fr4
    df0 = c0 + c3 + c4 * lam_plus
    df1 = c0 * lam_minus + c3 * u + c4 * lam_plus
    df2 = c0 * v + c1 * v + c3 * v + c4 * v
    df3 = c0 * w + c2 * w + c3 * w + c4 * w
    df4 = c0 * (h - u * a) + c1 * v**2 + c2 * w**2 + c3 * 0.5 * q2 + c4 * (h + u * a)
    df = jnp.concatenate([df1, df2, df3])
    return 0.5 * (f0 - df0), 0.5 * (f - df), 0.5 * (f4 - df4)


# ---- forward kinematics of a 6-DOF robot arm ---------------------------------------------------------


def _sin_sum(a: Any, b: Any) -> Any:
    return jnp.cos(a) * jnp.sin(b) + jnp.sin(a) * jnp.cos(b)


def _cos_sum(a: Any, b: Any) -> Any:
    return jnp.cos(a) * jnp.cos(b) - jnp.sin(a) * jnp.sin(b)


def robot_arm_6dof(t1: Any, t2: Any, t3: Any, t4: Any, t5: Any, t6: Any) -> tuple[Any, ...]:
    """End-effector position and Tait-Bryan angles of a 6-joint arm (joint angles in radians, lengths in mm)."""
    a1, a2, a3, d1, d4, d6 = 175.0, 890.0, 50.0, 575.0, 1035.0, 185.0
    c1, c2, c4, c5, c6 = jnp.cos(t1), jnp.cos(t2), jnp.cos(t4), jnp.cos(t5), jnp.cos(t6)
    c23 = _cos_sum(t2, t3)
    s1, s2, s4, s5, s6 = jnp.sin(t1), jnp.sin(t2), jnp.sin(t4), jnp.sin(t5), jnp.sin(t6)
    s23 = _sin_sum(t2, t3)
    ax = s5 * (c1 * c23 * c4 + s1 * s4) + c1 * s23 * c5
    ay = s5 * (s1 * c23 * c4 - c1 * s4) + s1 * s23 * c5
    az = s23 * c4 * s5 - c23 * c5
    nz = c6 * (c23 * s5 + s23 * c4 * c5) - s23 * s4 * s6
    oz = -s6 * (c23 * s5 + s23 * c4 * c5) - s23 * s4 * c6
    yaw = jnp.arctan2(ay, ax)
    pitch = jnp.arctan2(jnp.sqrt(1.0 - az**2), az)
    roll = jnp.arctan2(oz, -nz)
    px = d6 * (s5 * (c1 * c23 * c4 + s1 * s4) + c1 * s23 * c5) + c1 * (a1 + a2 * c2 + a3 * c23 + d4 * s23)
    py = d6 * (s5 * (s1 * c23 * c4 + c1 * s4) + s1 * s23 * c5) + s1 * (a1 + a2 * c2 + a3 * c23 + d4 * s23)
    pz = a2 * s2 + d1 + a3 * s23 - d4 * c23 + d6 * (s23 * c4 * s5 - c23 * c5)
    return px, py, pz, yaw, pitch, roll


# ---- MINPACK-2 systems ----------------------------------------------------------------------------


def human_heart_dipole(x1: Any, x2: Any, x3: Any, x4: Any, x5: Any, x6: Any, x7: Any, x8: Any) -> tuple[Any, ...]:
    """The dipole model of the human heart (MINPACK-2), every measured sigma set to 1."""
    s = 1.0
    f1 = x1 + x2 - s
    f2 = x3 + x4 - s
    f3 = x5 * x1 + x6 * x2 - x7 * x3 - x8 * x4 - s
    f4 = x7 * x1 + x8 * x2 + x5 * x3 + x6 * x4 - s
    x57 = x5**2 - x7**2
    x68 = x6**2 - x8**2
    f5 = x1 * x57 - 2 * x3 * x5 * x7 + x2 * x68 - 2 * x4 * x6 * x8 - s
    f6 = x3 * x57 - 2 * x1 * x5 * x7 + x4 * x68 - 2 * x2 * x6 * x8 - s
    x557 = x5 * (x5**2 - 3 * x7**2)
    x775 = x7 * (x7**2 - 3 * x5**2)
    x668 = x6 * (x6**2 - 3 * x8**2)
    x886 = x8 * (x8**2 - 3 * x6**2)
    f7 = x1 * x557 + x3 * x775 + x2 * x668 + x4 * x886 - s
    f8 = x3 * x557 - x1 * x775 + x4 * x668 - x2 * x886 - s
    return f1, f2, f3, f4, f5, f6, f7, f8


def propane_combustion(*x: Any) -> tuple[Any, ...]:
    """The full formulation of propane combustion in air (MINPACK-2): 11 equations in 11 unknowns."""
    x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11 = x
    p, r = 40.0, 10.0
    px11 = jnp.sqrt(p / x11)
    f1 = x1 + x4 - 3.0
    f2 = 2 * x1 + x2 + x4 + x7 + x8 + x9 + 2 * x10 - r
    f3 = 2 * x2 + 2 * x5 + x6 + x7 - 8.0
    f4 = 2 * x3 + x9 - 4 * r
    f5 = x2 * x4 - x1 * x5
    f6 = jnp.sqrt(x2 * x4) - jnp.sqrt(x1) * px11 * x6
    f7 = jnp.sqrt(x1 * x2) - jnp.sqrt(x4) * x7 * px11
    f8 = x1 - x4 * x8 * p / x11
    f9 = x1 * jnp.sqrt(x3) - x4 * x9 * px11
    f10 = x1**2 - x4**2 * x10 * p / x11
    f11 = x11 - x1 - x2 - x3 - x4 - x5 - x6 - x7 - x8 - x9 - x10
    return f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11


# ---- Black-Scholes greeks ------------------------------------------------------------------------


def _normal_cdf(z: Any) -> Any:
    return (1.0 + jss.erf(z / jnp.sqrt(2.0))) / 2


def black_scholes(s: Any, k: Any, r: Any, sigma: Any, t: Any) -> Any:
    """Price of a European call (spot s, strike k, rate r, volatility sigma, expiry t) through Black-76."""
    f = jnp.exp(r * t) * s
    d1 = (jnp.log(f / k) + (sigma**2) / 2.0 * t) / (sigma * jnp.sqrt(t))
    d2 = d1 - sigma * jnp.sqrt(t)
    return jnp.exp(-r * t) * (f * _normal_cdf(d1) - k * _normal_cdf(d2))


def black_scholes_jacobian(s: Any, k: Any, r: Any, sigma: Any, t: Any) -> Any:
    """The first-order greeks, by reverse-mode elimination; its Jacobian holds the second-order greeks."""
    return api.jacobian(black_scholes, order="reverse", argnums=(0, 1, 2, 3, 4))(s, k, r, sigma, t)


# ---- a perceptron and a transformer encoder ------------------------------------------------------


def _softmax_cross_entropy(logits: Any, labels: Any) -> Any:
    return -jnp.sum(labels * jnp.log(jax.nn.softmax(logits, axis=-1)), axis=-1)


def _layer_norm(x: Any, gamma: Any, beta: Any) -> Any:
    mu = jnp.mean(x, axis=-1)
    var = jnp.sum((x - mu) ** 2, axis=-1) / x.shape[-1]
    return (x - mu) / jnp.sqrt(var + 1e-6) * gamma + beta


def perceptron(x: Any, y: Any, w1: Any, b1: Any, w2: Any, b2: Any, gamma: Any, beta: Any) -> Any:
    """Two tanh layers with a layer norm between them, and the softmax cross-entropy against ``y``."""
    out = jnp.tanh(w1 @ x + b1)
    out = _layer_norm(out, gamma, beta)
    out = jnp.tanh(w2 @ out + b2)
    return _softmax_cross_entropy(out, y)


def _attention(q: Any, k: Any, v: Any) -> Any:
    return jax.nn.softmax(q.T @ k, axis=1) @ v


def _encoder_block(x: Any, wq: Any, wk: Any, wv: Any, w: Any, b: Any, gamma: Any, beta: Any) -> Any:
    a = x + _attention(wq @ x, wk @ x, wv @ x)
    c = _layer_norm(a, gamma, beta)
    z = w @ c + b
    return z * (1.0 / (1.0 + jnp.exp(-z)))  # SiLU


def transformer_encoder(x: Any, y: Any, wq1: Any, wq2: Any, wk1: Any, wk2: Any, wv1: Any, wv2: Any, w1: Any,
                        w2: Any, b1: Any, b2: Any, g0: Any, beta0: Any, g1: Any, beta1: Any) -> Any:  # fmt: skip
    """Two attention blocks (self-attention, layer norm, SiLU layer) and the softmax cross-entropy against ``y``."""
    z1 = _encoder_block(x, wq1, wk1, wv1, w1, b1, g0, beta0)
    z2 = _encoder_block(z1, wq2, wk2, wv2, w2, b2, g1, beta1)
    return _softmax_cross_entropy(z2, y)


# ---- the task table ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Task:
    """A function, the inputs it is differentiated at (all of them), and whether its graph is the published one."""

    name: str
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    exact: bool
    note: str = ""
    wrt: tuple[int, ...] | None = None  # None: every argument, as the published tasks have it

    @property
    def argnums(self) -> tuple[int, ...]:
        """The arguments the Jacobian is taken with respect to."""
        return self.wrt if self.wrt is not None else tuple(range(len(self.args)))


def _batch1(*xs: Any) -> tuple[Any, ...]:
    return tuple(jnp.asarray(x, jnp.float32)[None] for x in xs)


def _normal(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jax.random.normal(key, shape, jnp.float32)


def benchmark_tasks() -> list[Task]:
    """The published tasks at the published inputs (batched ones with a batch of 1, as published)."""
    key = jax.random.PRNGKey(1234)
    k = jax.random.split(key, 4)
    mlp_args = (jnp.ones((1, 4)), _normal(k[0], (1, 4)), _normal(k[1], (8, 4)), _normal(k[2], (8,)),
                _normal(k[3], (4, 8)), jnp.zeros((4,)), 0.0, 1.0)  # fmt: skip
    ke = jax.random.split(jax.random.PRNGKey(250197), 12)
    enc = [_normal(ke[i], (4, 4)) for i in range(9)]
    enc_args = (jnp.ones((4, 4)), _normal(ke[9], (2, 4)), *enc[:6], enc[6], _normal(ke[10], (2, 4)), enc[7][0],
                _normal(ke[11], (2, 1)), 0.0, 1.0, 0.0, 1.0)  # fmt: skip
    mlp = jax.vmap(perceptron, in_axes=(0, 0, None, None, None, None, None, None))
    return [
        Task("RoeFlux_1d", roe_flux_1d, (0.01, 0.02, 0.02, 0.01, 0.03, 0.03), True),
        Task("RoeFlux_3d", jax.vmap(roe_flux_3d),
             _batch1([0.1], [0.1, 0.2, 0.3], [0.5], [0.2], [0.2, 0.2, 0.4], [0.6]), False,
             "vector graph: block structure and counting differ from Graphax's sparsity types"),
        Task("RobotArm_6DOF", robot_arm_6dof, (0.02,) * 6, True),
        Task("HumanHeartDipole", human_heart_dipole, (0.15,) * 8, True),
        Task("PropaneCombustion", propane_combustion, (0.15,) * 11, True),
        Task("BlackScholes_Jacobian", jax.vmap(black_scholes_jacobian), _batch1(1.0, 1.0, 1.0, 1.0, 1.0), False,
             "the inner greeks come from this package's reverse elimination, not Graphax's, so the graph differs"),
        Task("MLP", mlp, mlp_args, False, "vector graph; random weights drawn here"),
        Task("TransformerEncoder", transformer_encoder, enc_args, False, "vector graph; random weights drawn here"),
    ]  # fmt: skip


# ---- one step of the trainer's neuron cells --------------------------------------------------------

CELLS = ("lif", "cubalif", "adlif", "recurrent")


def cell_step(kind: str, *, n: int = 16, n_in: int = 8, dt_s: float = 1e-3, method: str = "cascade") -> Task:
    """One step of a hidden layer as tools.train runs it: (params, state, x) -> new state, for ``kind``.

    "recurrent" is an adaptive LIF layer with recurrent weights (the keyword-spotting recurrent model).
    """
    neuron = "adlif" if kind == "recurrent" else kind
    spec = N.NeuronSpec(neuron)
    spike = make_spike_fn("fast_sigmoid", 10.0)
    key = jax.random.split(jax.random.PRNGKey(7), 6)
    params: dict[str, Any] = {"w": _normal(key[0], (n, n_in)) / n_in**0.5,
                              "log_tau_mem": jnp.log(0.02) + 0.3 * _normal(key[1], (n,)),
                              "v_threshold": jnp.ones((n,), jnp.float32)}  # fmt: skip
    if spec.has_synapse:
        params["log_tau_syn"] = jnp.log(0.005) + 0.3 * _normal(key[2], (n,))
    if spec.has_adaptation:
        params.update(log_tau_adapt=jnp.log(0.2) + 0.3 * _normal(key[3], (n,)), a_coupling=jnp.full((n,), 0.5),
                      b_spike=jnp.full((n,), 0.5))  # fmt: skip
    if kind == "recurrent":
        params["w_rec"] = _normal(key[4], (n, n)) / n**0.5

    def step(p: dict[str, Any], state: N.NeuronState, x: Any) -> N.NeuronState:
        cont = {"tau_mem_s": jnp.exp(p["log_tau_mem"]), "v_threshold": p["v_threshold"]}
        if spec.has_synapse:
            cont["tau_syn_s"] = jnp.exp(p["log_tau_syn"])
        if spec.has_adaptation:
            cont.update(tau_adapt_s=jnp.exp(p["log_tau_adapt"]), a_coupling=p["a_coupling"], b_spike=p["b_spike"])
        c = N.coefficients(spec, cont, dt_s, method)
        drive = p["w"] @ x
        if "w_rec" in p:
            drive = drive + p["w_rec"] @ state.z
        new, _ = N.step(spec, spike, c, N.NeuronState(*(s[None] for s in state)), drive[None], method)
        return N.NeuronState(*(s[0] for s in new))

    state = N.NeuronState(0.9 * jax.random.uniform(key[5], (n,)), 0.1 * jnp.ones((n,)), 0.05 * jnp.ones((n,)),
                          (jnp.arange(n) % 3 == 0).astype(jnp.float32))  # fmt: skip
    x = (jnp.arange(n_in) % 2).astype(jnp.float32) * 2.0
    return Task(f"cell_{kind}", step, (params, state, x), False, f"{neuron}, n={n}, n_in={n_in}, {method}", (0, 1))


def cell_tasks(**kw: Any) -> list[Task]:
    """One step of each neuron cell; the Jacobian is taken with respect to parameters and state."""
    return [cell_step(kind, **kw) for kind in CELLS]
