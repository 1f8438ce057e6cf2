r"""The Heaviside spike function with a surrogate derivative for backpropagation.

The forward pass is exactly the runtime's strict comparison :math:`z = [v > v_{th}]`;
only the derivative is replaced, with :math:`u = v - v_{th}` and scale :math:`s`:

* ``"fast_sigmoid"``: :math:`\partial z/\partial u = 1 / (1 + s|u|)^2` (SuperSpike);
* ``"boxcar"``: :math:`\partial z/\partial u = s/2` for :math:`|u| < 1/s`, else 0 (unit area).

With a second threshold :math:`\theta_2 = g\,v_{th}` (sparse BPTT, Finkbeiner et al.) the derivative
is gated to zero wherever :math:`v \le \theta_2`, so only the neurons a spike buffer lists have one.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from edgesnn.errors import OptionError

SpikeFn = Callable[[jax.Array, jax.Array], jax.Array]


def surrogate_derivative(kind: str, scale: float) -> Callable[[jax.Array], jax.Array]:
    """Return the pseudo-derivative dz/du of the chosen surrogate."""
    if kind == "fast_sigmoid":
        return lambda u: 1.0 / (1.0 + scale * jnp.abs(u)) ** 2
    if kind == "boxcar":
        return lambda u: jnp.where(jnp.abs(u) < 1.0 / scale, 0.5 * scale, 0.0).astype(u.dtype)
    raise OptionError(f"expected one of fast_sigmoid, boxcar, got {kind!r}", path="surrogate/kind")


def make_spike_fn(kind: str = "fast_sigmoid", scale: float = 10.0, gate: float | None = None) -> SpikeFn:
    """Return ``spike(v, v_th)``: 1.0 where ``v > v_th`` (float32), with a surrogate gradient.

    ``gate``: the second threshold as a fraction of ``v_th``; the derivative is zero at and below it.
    """
    surrogate = surrogate_derivative(kind, scale)
    if gate is None:
        derivative = lambda v, v_th: surrogate(v - v_th)  # noqa: E731
    else:
        derivative = lambda v, v_th: jnp.where(v > gate * v_th, surrogate(v - v_th), 0.0)  # noqa: E731

    @jax.custom_jvp
    def spike(v: jax.Array, v_th: jax.Array) -> jax.Array:
        return (v > v_th).astype(v.dtype)

    @spike.defjvp
    def _spike_jvp(primals, tangents):  # type: ignore[no-untyped-def]
        v, v_th = primals
        dv, dth = tangents
        return spike(v, v_th), derivative(v, v_th) * (dv - dth)

    return spike
