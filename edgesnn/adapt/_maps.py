"""Pure maps of discrete state-space coefficients from a step dt_src to a step dt_dst.

A neuron section is a linear state update ``s[t] = H s[t-1] + G x[t]`` (a scalar
``H = a`` for leaky and integrating states, a 2x2 matrix for the coupled
membrane/adaptation pair of AdaptiveLIF), with ``rho = dt_dst / dt_src``. The
derivation of every map is in ``edgesnn/adapt/derivations.md``.
"""

from __future__ import annotations

import numpy as np

from edgesnn.errors import OptionError

#: Adaptation methods: the reference (keep time constants, re-discretise) and four SSM mappings.
METHODS = ("tau", "integral", "zoh-rate", "bilinear-rate", "euler-rate")
#: What each method assumes the decay mapping is.
DECAY_RULE = {"integral": "power", "zoh-rate": "power", "bilinear-rate": "bilinear", "euler-rate": "euler"}


def check_method(method: str) -> str:
    """Refuse an unknown adaptation method, listing the known ones."""
    if method not in METHODS:
        raise OptionError(f"expected one of {', '.join(METHODS)}, got {method!r}", path="method")
    return method


def _eigen_function(h: np.ndarray, f, df, what: str) -> np.ndarray:  # noqa: ANN001 - scalar functions
    """``f(H)`` for a stack of real 2x2 matrices (n, 2, 2), principal branch.

    Uses the Lagrange-Sylvester form f(H) = sum_i f(l_i) prod_{j!=i} (H - l_j)/(l_i - l_j),
    with the confluent form f(l) I + f'(l)(H - l I) for a repeated eigenvalue. A real
    eigenvalue <= 0 has no real fractional power or logarithm and is refused.
    """
    tr = h[:, 0, 0] + h[:, 1, 1]
    det = h[:, 0, 0] * h[:, 1, 1] - h[:, 0, 1] * h[:, 1, 0]
    root = np.sqrt((tr * tr / 4 - det).astype(np.complex128))
    l1, l2 = tr / 2 + root, tr / 2 - root
    for lam in (l1, l2):
        bad = (np.abs(lam.imag) < 1e-12) & (lam.real <= 0)
        if np.any(bad):
            raise OptionError(
                f"state matrix of neuron {int(np.flatnonzero(bad)[0])} has an eigenvalue <= 0 ({lam[bad][0].real:.4g});"
                f" its {what} is undefined, use method 'euler-rate' or 'tau'",
                path="method",
            )
    eye = np.eye(2)[None]
    f1, f2 = f(l1), f(l2)
    distinct = np.abs(l1 - l2) > 1e-9 * np.maximum(1.0, np.abs(l1))
    safe = np.where(distinct, l1 - l2, 1.0)
    out_distinct = (
        f1[:, None, None] * (h - l2[:, None, None] * eye) - f2[:, None, None] * (h - l1[:, None, None] * eye)
    ) / safe[:, None, None]
    lam = (l1 + l2) / 2
    out_confluent = f(lam)[:, None, None] * eye + df(lam)[:, None, None] * (h - lam[:, None, None] * eye)
    out = np.where(distinct[:, None, None], out_distinct, out_confluent)
    return out.real


def _matrix_power(h: np.ndarray, rho: float) -> np.ndarray:
    """``h ** rho`` for a stack of real 2x2 matrices (n, 2, 2), principal branch."""
    return _eigen_function(h, lambda lam: lam**rho, lambda lam: rho * lam ** (rho - 1), "fractional power")


def matrix_log(h: np.ndarray) -> np.ndarray:
    """Principal logarithm of a stack of real 2x2 matrices (n, 2, 2): the A with ``e^A = h``."""
    return _eigen_function(h, np.log, lambda lam: 1.0 / lam, "logarithm")


def map_decay(h: np.ndarray, rho: float, dt_src: float, dt_dst: float, rule: str) -> np.ndarray:
    """Map a state matrix (scalars (n,) or stacked 2x2 (n, 2, 2)) to the new step."""
    scalar = h.ndim == 1
    hm = h.reshape(-1, 1, 1) if scalar else h
    eye = np.eye(hm.shape[-1])[None]
    if rule == "power":
        if scalar:
            if np.any(hm <= 0):
                raise OptionError(
                    "a decay <= 0 has no fractional power; use method 'euler-rate' or 'tau'", path="method"
                )
            out = hm**rho
        else:
            out = _matrix_power(hm, rho)
    elif rule == "euler":
        out = eye + rho * (hm - eye)
    elif rule == "bilinear":
        # Continuous A from the source by the inverse Tustin map, then Tustin at the new step.
        a_cont = (2.0 / dt_src) * (hm - eye) @ np.linalg.inv(hm + eye)
        out = (eye + a_cont * dt_dst / 2) @ np.linalg.inv(eye - a_cont * dt_dst / 2)
    else:  # pragma: no cover - rules come from DECAY_RULE
        raise OptionError(f"unknown decay rule {rule!r}", path="method")
    return out.reshape(-1) if scalar else out


def dc_gain(h: np.ndarray, g: np.ndarray | None = None) -> np.ndarray:
    """Steady-state gain of the first state to a constant input: [(I - H)^-1 G]_0 (G = e_0 by default)."""
    if h.ndim == 1:
        return 1.0 / (1.0 - h)
    det = (1.0 - h[:, 0, 0]) * (1.0 - h[:, 1, 1]) - h[:, 0, 1] * h[:, 1, 0]
    if g is None:
        return (1.0 - h[:, 1, 1]) / det
    return ((1.0 - h[:, 1, 1]) * g[:, 0] + h[:, 0, 1] * g[:, 1]) / det


def map_input_gain(
    g: np.ndarray, h_src: np.ndarray, h_dst: np.ndarray, rho: float, method: str, counts: bool, integrating: bool
) -> np.ndarray:
    """Map the input gain of a section whose decay went from ``h_src`` to ``h_dst``.

    ``counts``: the input is binned events, whose expected value per step scales
    with the step (by ``rho``); otherwise it is a signal sampled each step.
    """
    if method == "integral" and counts:
        return g  # every event still moves the state by the same jump
    per_time = g if counts else g * rho  # a perfect integrator has no DC gain: match the drive per unit time
    if integrating:
        return per_time
    # A coupled section can integrate too (an adaptive neuron with a_coupling * g_adapt = -1 has a
    # mode at eigenvalue 1): where either step's steady state does not exist, those neurons
    # take the integrator's rule rather than a ratio of infinities.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = dc_gain(h_src) / dc_gain(h_dst)
    mapped = g * ratio / rho if counts else g * ratio
    marginal = _no_steady_state(h_src) | _no_steady_state(h_dst) | ~np.isfinite(ratio)
    return np.where(marginal, per_time, mapped) if np.any(marginal) else mapped


def _no_steady_state(h: np.ndarray) -> np.ndarray:
    """Where ``I - H`` is singular to float64 precision (an integrating mode): no DC gain exists."""
    if h.ndim == 1:
        return np.abs(1.0 - h) <= 1e-12
    a, b = (1.0 - h[:, 0, 0]) * (1.0 - h[:, 1, 1]), h[:, 0, 1] * h[:, 1, 0]
    return np.abs(a - b) <= 1e-9 * (np.abs(a) + np.abs(b))
