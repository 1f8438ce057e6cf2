r"""Lava's fixed-point CUBA LIF, dense synapse and weight storage, step by step, in integers.

This is the specification the runtime's ``numerics="loihi"`` kernels and the Loihi 2
bridge are tested against (bit-exact with lava-nc 0.10.0's ``PyLifModelBitAcc``,
``PyDenseModelBitAcc`` and ``PySparseModelBitAcc`` on ``Loihi2SimCfg(select_tag="fixed_pt")``).
Per neuron, with states ``u`` (current) and ``v`` (voltage) held in int32:

.. math::

    a &= \mathrm{wrap}_{32}\big(\textstyle\sum_k \mathrm{wrap}_{32}(a_k)\big)
        &&\text{(synaptic input: every connection's int32 message)}\\
    u &\leftarrow \mathrm{fold}_{24}\big(\mathrm{wrap}_{32}(\mathrm{tz}(u\,(4096 - d_u - 1) / 2^{12})
        + \mathrm{wrap}_{32}(a \ll 6))\big) &&\text{(12-bit decay, 6-bit input shift)}\\
    v &\leftarrow \mathrm{clip}\big(\mathrm{wrap}_{32}(\mathrm{wrap}_{32}(\mathrm{tz}(v\,(4096 - d_v) / 2^{12})
        + u) + b),\; \pm(2^{23}-1)\big) &&\text{(voltage saturates)}\\
    z &= [v > v_{th} \ll 6], \qquad v \leftarrow 0 \text{ where } z &&\text{(reset to zero)}

``tz`` rounds toward zero (sign times the shifted magnitude); ``fold_24`` moves a value
above :math:`2^{23}` down by :math:`2^{24}` and one at or below :math:`-2^{23}` up by
:math:`2^{24}`, once, as Lava does, so a current driven far past 24 bits stays outside
them; ``wrap_32`` is int32 overflow (Lava adds ``u`` and the bias in int32 before it
clips). The bias is ``b = bias_mant << bias_exp`` per neuron.

A dense connection first stores its weights as Lava's fixed-point model does
(:func:`lava_weights`: clipped to 8 bits and the lowest ``8 - num_weight_bits``
(+1 for mixed signs) bits dropped, per sign mode), then sums the stored weights of the
active inputs, shifts the sum by its weight exponent (an arithmetic shift: negative sums
round toward minus infinity) and delivers the int32 result one step later. A
convolution's sum wraps to 24 bits and is not shifted.
"""

from __future__ import annotations

import numpy as np

DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT
ACT_SHIFT = 6
VTH_SHIFT = 6
UV_LIMIT = 1 << 23  # u and v are 24-bit signed
DS_OFFSET = 1  # Loihi adds 1 to du (so a 12-bit du can decay the current completely), 0 to dv
DM_OFFSET = 0
MAX_DECAY = 4095
MAX_VTH = (1 << 17) - 1
BIAS_MANT_MIN, BIAS_MANT_MAX = -(1 << 12), (1 << 12) - 1
BIAS_EXP_MIN, BIAS_EXP_MAX = 0, 7
#: Lava's fixed-point Dense/Sparse shift an int64 sum and send it as int32: past 31 places
#: every message is 0 or -1, so no wider exponent means anything.
WEIGHT_EXP_MIN, WEIGHT_EXP_MAX = -31, 31
#: Stored weights: 8 bits and a sign (``clip_weights(num_bits=8)``).
WEIGHT_BITS = 8
#: Lava's ``SignMode`` names, lower case. "null" stores weights as "excitatory" does.
SIGN_MODES = ("null", "mixed", "excitatory", "inhibitory")


def wrap32(x: np.ndarray) -> np.ndarray:
    """int32 two's-complement overflow of an integer array."""
    return np.asarray(x).astype(np.int64).astype(np.int32)


def wrap24_once(x: np.ndarray) -> np.ndarray:
    """Lava's 24-bit current fold: one correction of 2**24, as ``PyLifModelBitAcc`` applies it."""
    x = np.asarray(x, np.int64)
    out = np.where(x > UV_LIMIT, x - 2 * UV_LIMIT, x)
    return np.where(out <= -UV_LIMIT, x + 2 * UV_LIMIT, out)


def signed_wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap of integers to ``bits`` bits (Lava's conv ``signed_clamp``)."""
    base = 1 << bits
    return (np.asarray(x, np.int64) + base // 2) % base - base // 2


def decay(x: np.ndarray, factor: int) -> np.ndarray:
    """``x * factor / 4096`` rounded toward zero, in int64 (the hardware's 12-bit decay)."""
    prod = np.asarray(x, np.int64) * np.int64(factor)
    return np.sign(prod) * (np.abs(prod) >> DECAY_SHIFT)


def shift(acc: np.ndarray, exponent: int) -> np.ndarray:
    """Dense weight exponent: ``acc << e`` for e > 0, arithmetic ``acc >> -e`` otherwise (int64)."""
    acc = np.asarray(acc, np.int64)
    return acc << exponent if exponent > 0 else acc >> -exponent


def effective_bias(bias_mant: np.ndarray, bias_exp: np.ndarray | int) -> np.ndarray:
    """``bias_mant << bias_exp`` per neuron, as int64 (``bias_exp`` a scalar or one per neuron)."""
    return np.left_shift(np.asarray(bias_mant, np.int64), np.asarray(bias_exp, np.int64))


def sign_mode_of(weight: np.ndarray) -> str:
    """The sign mode Lava picks when none is given (``determine_sign_mode``): excitatory when no weight is negative."""
    w = np.asarray(weight)
    if w.size == 0 or w.min() >= 0:
        return "excitatory"
    return "inhibitory" if w.max() <= 0 else "mixed"


def truncated_bits(sign_mode: str, num_weight_bits: int) -> int:
    """How many low bits Lava drops from each stored weight: ``8 - num_weight_bits`` (+1 for mixed signs)."""
    return WEIGHT_BITS - int(num_weight_bits) + (sign_mode == "mixed")


def lava_weights(weight: np.ndarray, sign_mode: str | None, num_weight_bits: int) -> np.ndarray:
    """The weights Lava's fixed-point Dense/Sparse model computes with, as int64.

    Clipped to [-256, 255] (mixed), [0, 255] (excitatory, null) or [-255, 0] (inhibitory),
    then the low :func:`truncated_bits` bits dropped (``(w >> k) << k``, of the magnitude
    for inhibitory weights). ``sign_mode=None`` lets Lava choose from the weights.
    """
    mode = sign_mode_of(weight) if sign_mode is None else sign_mode
    w = np.asarray(weight, np.int64)
    if mode == "inhibitory":
        w = -w
    w = np.clip(w, -(1 << WEIGHT_BITS) if mode == "mixed" else 0, (1 << WEIGHT_BITS) - 1)
    k = truncated_bits(mode, num_weight_bits)
    w = (w >> k) << k
    return -w if mode == "inhibitory" else w


def cuba_step(
    u: np.ndarray, v: np.ndarray, a_in: np.ndarray, du: int, dv: int, vth: int, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One CUBA LIF step from int32 ``u``, ``v`` and int32 input ``a_in``; returns (u, v, spikes bool)."""
    act = wrap32(np.asarray(a_in, np.int64) << ACT_SHIFT)
    cur = wrap32(decay(u, DECAY_UNITY - (du + DS_OFFSET)).astype(np.int32).astype(np.int64) + act)
    u_new = wrap24_once(cur).astype(np.int32)
    volt = wrap32(wrap32(decay(v, DECAY_UNITY - (dv + DM_OFFSET)) + u_new).astype(np.int64) + bias)
    v_new = np.clip(volt, -UV_LIMIT + 1, UV_LIMIT - 1)
    spikes = v_new > (np.int64(vth) << VTH_SHIFT)
    v_new = np.where(spikes, 0, v_new).astype(np.int32)
    return u_new, v_new, spikes
