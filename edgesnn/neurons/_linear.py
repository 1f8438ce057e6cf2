"""Closed forms for the linear part of the neuron models: one step of a held input, in float64.

Pure functions on stacks of per-neuron parameters. The 2x2 matrix exponential uses
``e^M = e^{T/2} [c(q) I + s(q) (M - T/2 I)]`` with ``T = tr M``, ``q^2 = T^2/4 - det M``,
``c = cosh, s = sinh(q)/q`` for real eigenvalues and ``cos, sin(p)/p`` (``p^2 = -q^2``)
for a complex pair, written so that neither overflows nor cancels when the eigenvalues
are far apart or equal.
"""

from __future__ import annotations

import numpy as np


def relative_expm1(y: np.ndarray) -> np.ndarray:
    """``(e^y - 1) / y``, 1 at y = 0, without cancellation for small ``|y|``."""
    y = np.asarray(y, np.float64)
    small = np.abs(y) < 1e-5
    safe = np.where(small, 1.0, y)
    return np.where(small, 1.0 + y / 2 + y * y / 6, np.expm1(safe) / safe)


def expm2(m: np.ndarray) -> np.ndarray:
    """Matrix exponential of a stack of real 2x2 matrices (n, 2, 2)."""
    m = np.asarray(m, np.float64)
    half = (m[:, 0, 0] + m[:, 1, 1]) / 2
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    q2 = half * half - det
    q = np.sqrt(np.abs(q2))
    real = q2 >= 0
    # Real eigenvalues l1,2 = half +- q: c = (e^l1 + e^l2) / 2 and s = e^l2 (e^{2q} - 1) / (2q),
    # each term bounded by e^{l1}, so nothing overflows when q is large.
    l1, l2 = half + q, half - q
    c_real = (np.exp(l1) + np.exp(l2)) / 2
    big = q > 1.0
    far = (np.exp(l1) - np.exp(l2)) / (2 * np.where(big, q, 1.0))
    s_real = np.where(big, far, np.exp(l2) * relative_expm1(np.where(big, 0.0, 2 * q)))
    with np.errstate(over="ignore", invalid="ignore"):
        scale = np.exp(half)
        c_cplx = scale * np.cos(q)
        s_cplx = scale * np.where(q < 1e-8, 1.0 - q * q / 6, np.sin(q) / np.where(q < 1e-8, 1.0, q))
    c = np.where(real, c_real, c_cplx)
    s = np.where(real, s_real, s_cplx)
    shifted = m - half[:, None, None] * np.eye(2)[None]
    return c[:, None, None] * np.eye(2)[None] + s[:, None, None] * shifted


def held_input_response(a: np.ndarray, b: np.ndarray, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(Phi, Gamma) of ``ds/dt = A s + b x`` over ``dt_s`` with ``x`` held: ``s' = Phi s + Gamma x``.

    ``a`` is a stack (n, 2, 2), ``b`` (n, 2); ``Gamma = A^-1 (Phi - I) b`` needs an
    invertible ``A`` (every leaky neuron's is).
    """
    phi = expm2(np.asarray(a, np.float64) * dt_s)
    rhs = np.einsum("nij,nj->ni", phi - np.eye(2)[None], np.asarray(b, np.float64))
    gamma = np.linalg.solve(a, rhs[..., None])[..., 0]
    return phi, gamma


def synapse_membrane_gain(tau_syn_s: np.ndarray, tau_mem_s: np.ndarray, dt_s: float) -> np.ndarray:
    r"""Membrane response at the step's end to a unit synaptic current decaying from its start.

    For :math:`\tau_s \dot I = -I`, :math:`\tau_m \dot v = -v + I` with :math:`I(0) = 1`,
    :math:`v(0) = 0`: :math:`v(\Delta t) = \lambda_m (e^{-\lambda_s \Delta t} - e^{-\lambda_m \Delta t})
    / (\lambda_m - \lambda_s)` with :math:`\lambda = 1/\tau`, and :math:`\lambda \Delta t\,e^{-\lambda \Delta t}`
    when the two time constants are equal.
    """
    lam_s = 1.0 / np.asarray(tau_syn_s, np.float64)
    lam_m = 1.0 / np.asarray(tau_mem_s, np.float64)
    a_s, a_m = np.exp(-lam_s * dt_s), np.exp(-lam_m * dt_s)
    delta = lam_m - lam_s
    near = np.abs(delta * dt_s) < 1.0
    # Close rates: a_m * expm1(delta dt) / delta has no cancellation; far apart the difference has none.
    close = lam_m * dt_s * a_m * relative_expm1(np.where(near, delta * dt_s, 0.0))
    far = lam_m * (a_s - a_m) / np.where(near, 1.0, delta)
    return np.where(near, close, far)
