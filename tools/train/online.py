r"""Online (forward-mode) gradients for one hidden spiking layer and the LI read-out: no BPTT tape.

Each step, the per-neuron Jacobians of the neuron update, :math:`\partial s_t/\partial s_{t-1}`
(4 x 4: membrane, current, adaptation, spike), :math:`\partial s_t/\partial \theta` (the neuron's
parameters) and :math:`\partial s_t/\partial I_t` (the drive), come from cross-country elimination
(:func:`tools.jacobians.jacobian`, order ``train/online/order``), and carry eligibility traces
forward in time:

.. math::

    e_t = \frac{\partial s_t}{\partial s_{t-1}} e_{t-1} + \frac{\partial s_t}{\partial I_t}
          \frac{\partial I_t}{\partial W} \quad\text{(and } + \partial s_t/\partial\theta \text{ for the
          neuron's own parameters)}.

The read-out is linear (LI, logits = the mean membrane over time), so the derivative of the logits
with respect to the spikes of step t is :math:`g\,W_{out}\,\kappa_t` with
:math:`\kappa_t = \frac{g_c}{T}\sum_{t' \ge t} a_c^{t'-t}`, known in advance: accumulating
:math:`\sum_t \kappa_t e^z_t` per class during the pass gives the exact logit Jacobian of every
weight, and the loss gradient at the end is one contraction with :math:`\partial L/\partial\text{logits}`.
Memory is constant in T (states, traces and accumulators; no activations are stored).

Exactness: for a feed-forward hidden layer the traces are exact, so the gradient equals BPTT's
(the same surrogate derivative, the same detached reset). For a recurrent layer this is e-prop
(Bellec et al. 2020): the traces keep each neuron's own dependence on its past and drop the paths
through the recurrent weights to other neurons (exact real-time recurrent learning would carry an
N x N x |W| sensitivity), so the gradient is approximate unless ``w_rec`` is zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from tools.jacobians import jacobian
from tools.train import neurons as N
from tools.train.config import LossConfig
from tools.train.models import Network, Params, neuron_params
from tools.train.surrogate import SpikeFn


def make_online_gradients(net: Network, spike: SpikeFn, loss: LossConfig, order: str) -> Callable[..., Any]:
    """``gradients(params, x (B, T, C), y, key) -> (grads, loss, correct, {})``, computed forward in time."""
    spec, layer = net.neuron, net.layers[0]
    n, n_in, k_cls = layer.out_shape[0], layer.in_shape[0], net.n_classes
    gain = net.weight_gain

    def cell(theta: dict[str, jax.Array], state: N.NeuronState, drive: jax.Array) -> N.NeuronState:
        # One neuron, one step, exactly as the trainer's time loop computes it.
        c = N.coefficients(spec, neuron_params(net, theta, ()), net.dt_s, net.method)
        new, _ = N.step(spec, spike, c, state, drive, net.method)
        return new

    step_jac = jacobian(cell, order=order, argnums=(0, 1, 2), has_value=True)
    # neurons share nothing: map over neurons (parameters too), then over the batch (not the parameters)
    per_neuron = jax.vmap(step_jac, in_axes=(0, 0, 0))
    per_batch = jax.vmap(per_neuron, in_axes=(None, 0, 0))

    def gradients(params: Params, x: jax.Array, y: jax.Array, key: jax.Array):  # type: ignore[no-untyped-def]
        del key  # no dropout in online training
        p, r = params["layers"][0], params["readout"]
        b, t = x.shape[:2]
        theta = p["neuron"]
        w, w_rec = gain * p["w"], (gain * p["w_rec"] if "w_rec" in p else None)
        c0 = N.coefficients(spec, neuron_params(net, theta, (n,)), net.dt_s, net.method)
        s0 = N.initial_state(c0, b)

        # The read-out: v_t = a v_{t-1} + g (gain W_out z_t); logits = mean_t v_t.
        def readout_coefs(log_tau: jax.Array) -> tuple[jax.Array, jax.Array]:
            c = N.coefficients(net.readout, neuron_params(net, {"log_tau_mem": log_tau}, (k_cls,), hidden=False),
                               net.dt_s, net.method)  # fmt: skip
            return c.a_v, c.g_v

        (a_r, g_r), coef_jvp = jax.linearize(readout_coefs, r["neuron"]["log_tau_mem"])
        da_r, dg_r = coef_jvp(jnp.ones_like(a_r))  # per-class derivatives (each coefficient is elementwise)

        def kappa_at(step: jax.Array) -> jax.Array:
            # kappa[t, c] = g_c / T * sum_{t' = t}^{T-1} a_c^(t' - t), computed in the loop (nothing of length T)
            return g_r / t * (1.0 - a_r ** (t - step).astype(jnp.float32)) / (1.0 - a_r)

        w_out = gain * r["w"]
        names = sorted(theta)
        n_par = len(names)

        def body(step, carry):  # type: ignore[no-untyped-def]
            s, e_w, e_rec, e_th, acc, v_r, dv_r, sums = carry
            # Read step t of the (B, T, C) batch in place: a transposed copy would grow with T.
            x_t = jax.lax.dynamic_index_in_dim(x, step, axis=1, keepdims=False).reshape(b, n_in)
            kappa_t = kappa_at(step)
            drive = x_t @ w.T
            if w_rec is not None:
                drive = drive + s.z @ w_rec.T
            new, jac = per_batch(theta, s, drive)
            # One row per updated component (v, i, w, z): (d/dtheta dict, d/dstate NeuronState, d/ddrive).
            j_ss = jnp.stack([jnp.stack(list(row[1]), -1) for row in jac], -2)  # (B, N, 4, 4)
            j_sp = jnp.stack([jnp.stack([row[0][k] for k in names], -1) for row in jac], -2)  # (B, N, 4, P)
            j_sd = jnp.stack([row[2] for row in jac], -1)  # (B, N, 4)
            e_w = jnp.einsum("bnij,bncj->bnci", j_ss, e_w) + j_sd[:, :, None, :] * gain * x_t[:, None, :, None]
            if w_rec is not None:
                e_rec = (jnp.einsum("bnij,bncj->bnci", j_ss, e_rec)
                         + j_sd[:, :, None, :] * gain * s.z[:, None, :, None])  # fmt: skip
            e_th = jnp.einsum("bnij,bnpj->bnpi", j_ss, e_th) + jnp.swapaxes(j_sp, -1, -2)
            # Logit Jacobians: sum_t kappa_t[c] * dz_t / d(parameter), per class.
            zw = e_w[..., 3]  # (B, N, C): the spike's row of the trace
            acc_w, acc_rec, acc_th = acc
            acc_w = acc_w + kappa_t[None, :, None, None] * zw[:, None]
            if w_rec is not None:
                acc_rec = acc_rec + kappa_t[None, :, None, None] * e_rec[..., 3][:, None]
            acc_th = acc_th + kappa_t[None, :, None, None] * e_th[..., 3][:, None]
            # The read-out, and d v / d log_tau_out carried forward.
            z = new.z
            drive_r = z @ w_out.T
            dv_r = a_r * dv_r + da_r * v_r + dg_r * drive_r
            v_r = a_r * v_r + g_r * drive_r
            sums = (sums[0] + v_r, sums[1] + dv_r, sums[2] + kappa_t[None, :, None] * z[:, None, :], sums[3] + z,
                    sums[4] + e_w[..., 3], sums[5] + (e_rec[..., 3] if w_rec is not None else 0.0),
                    sums[6] + e_th[..., 3])  # fmt: skip
            return new, e_w, e_rec, e_th, (acc_w, acc_rec, acc_th), v_r, dv_r, sums

        zeros = jnp.zeros
        e_rec0 = zeros((b, n, n, 4)) if w_rec is not None else zeros(())
        acc0 = (zeros((b, k_cls, n, n_in)), zeros((b, k_cls, n, n)) if w_rec is not None else zeros(()),
                zeros((b, k_cls, n, n_par)))  # fmt: skip
        sums0 = (zeros((b, k_cls)), zeros((b, k_cls)), zeros((b, k_cls, n)), zeros((b, n)), zeros((b, n, n_in)),
                 zeros((b, n, n)) if w_rec is not None else zeros(()), zeros((b, n, n_par)))  # fmt: skip
        carry0 = (s0, zeros((b, n, n_in, 4)), e_rec0, zeros((b, n, n_par, 4)), acc0, zeros((b, k_cls)),
                  zeros((b, k_cls)), sums0)  # fmt: skip
        carry = jax.lax.fori_loop(0, t, body, carry0)
        _, _, _, _, (acc_w, acc_rec, acc_th), _, _, sums = carry
        v_sum, dv_sum, zk_sum, z_sum, ezw_sum, ezr_sum, ezt_sum = sums
        lg = v_sum / t
        value = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(lg, y))
        g_lg = (jax.nn.softmax(lg) - jax.nn.one_hot(y, k_cls)) / b  # dL / dlogits
        # dL/dW = sum_{b,c} dL/dlogit * gain W_out[c, j] * acc[b, c, j, i]
        sig = g_lg[:, :, None] * w_out[None]  # (B, K, N)
        grad_w = jnp.einsum("bkn,bkni->ni", sig, acc_w)
        grad_th = jnp.einsum("bkn,bknp->np", sig, acc_th)
        grad_rec = jnp.einsum("bkn,bkni->ni", sig, acc_rec) if w_rec is not None else None
        grads_r = {"w": gain * jnp.einsum("bk,bkn->kn", g_lg, zk_sum),
                   "neuron": {"log_tau_mem": jnp.sum(g_lg * dv_sum / t, axis=0)}}  # fmt: skip
        if loss.max_rate_hz is not None and loss.rate_weight > 0:
            # The rate penalty of tools.train.loss, differentiated through the summed spike traces.
            rate = z_sum / (t * net.dt_s)
            excess = jax.nn.relu(rate / loss.max_rate_hz - 1.0)
            value = value + loss.rate_weight * jnp.mean(jnp.square(excess))
            g_rate = loss.rate_weight * 2.0 * excess / loss.max_rate_hz / (t * net.dt_s) / (b * n)  # (B, N)
            grad_w = grad_w + jnp.einsum("bn,bni->ni", g_rate, ezw_sum)
            grad_th = grad_th + jnp.einsum("bn,bnp->np", g_rate, ezt_sum)
            if w_rec is not None:
                grad_rec = grad_rec + jnp.einsum("bn,bni->ni", g_rate, ezr_sum)
        grads_l: dict[str, Any] = {"w": grad_w, "neuron": {k: grad_th[:, i] for i, k in enumerate(names)}}
        if w_rec is not None:
            grads_l["w_rec"] = grad_rec
        grads = {"layers": [grads_l], "readout": grads_r}
        hits = jnp.sum((jnp.argmax(lg, -1) == y).astype(jnp.float32))
        return grads, value, hits, {}

    return gradients
