"""One Lava LIF population and one Lava connection, in Lava's own integers (see :mod:`edgesnn.loihi.network`)."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from edgesnn.errors import NodeValidationError
from edgesnn.loihi import fixed
from edgesnn.loihi._checks import (
    STATE_MAX,
    STATE_MIN,
    check_int,
    check_name,
    check_pair,
    check_shape,
    int_array,
    per_neuron,
    set_fields,
)

#: Conv weights: Lava's fixed-point Conv applies them as given (no clipping); Loihi's
#: synapses hold 8 bits and a sign, so edgesnn accepts that range.
_CONV_WEIGHT_MIN, _CONV_WEIGHT_MAX = -(1 << fixed.WEIGHT_BITS), (1 << fixed.WEIGHT_BITS) - 1


@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class NeuronLayer:
    """One population of Lava's CUBA LIF (``lava.proc.lif.process.LIF``), in Lava's integers.

    Each step (see :mod:`edgesnn.loihi.fixed`): ``u = u (4096 - du - 1) / 4096 + a << 6``,
    ``v = v (4096 - dv) / 4096 + u + bias_mant << bias_exp``; a neuron fires when
    ``v > vth << 6`` and its ``v`` returns to 0.

    Parameters
    ----------
    node : str
        Name (the edgesnn node; Lava's process name).
    shape : tuple of int
        (n,) or (channels, height, width).
    du : int
        Current decay, 0..4095 (4095: the current lasts one step, no synapse).
    dv : int
        Voltage decay, 0..4095 (0: no leak).
    vth : int
        Threshold mantissa, 0..2**17 - 1 (Lava compares ``v > vth << 6``).
    bias_mant : int or int array (n,)
        Bias mantissa per neuron, -4096..4095.
    bias_exp : int or int array (n,)
        Bias exponent per neuron, 0..7; the bias added to ``v`` each step is ``bias_mant << bias_exp``.
    u_init, v_init : int or int array (n,)
        Current and voltage at the start (and after a reset), in the 24-bit range
        ±(2**23 - 1).
    spiking : bool
        Whether the layer's output is its spikes (True) or its voltage (a readout; Lava
        still resets it above ``vth << 6``: give a readout ``vth = 2**17 - 1``).
    scale_exp : int
        Voltage scale: the model's voltage is ``v * 2**-scale_exp``, its current
        contribution per step ``u * 2**-scale_exp`` (default 6: one unit is one weight
        step of a connection at ``weight_exp`` 0, since Lava adds ``a << 6``).
    float_du, float_dv, float_vth, float_bias, float_v_init : float, array or None
        The same layer for Lava's floating_pt models (``u = u (1 - du) + a``,
        ``v = v (1 - dv) + u + bias``), in model units; None derives them from the integers.
    """

    node: str
    shape: tuple[int, ...]
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray | int = 0  # int32 (n,) once made
    bias_exp: np.ndarray | int = 0  # int32 (n,) once made
    u_init: np.ndarray | int = 0  # int32 (n,) once made
    v_init: np.ndarray | int = 0  # int32 (n,) once made
    spiking: bool = True
    scale_exp: int = 6
    float_du: float | None = None  # fraction of the current lost per step
    float_dv: float | None = None  # fraction of the voltage lost per step
    float_vth: float | None = None  # model units
    float_bias: np.ndarray | None = None  # float64 (n,), model units per step
    float_v_init: np.ndarray | None = None  # float64 (n,), model units

    def __post_init__(self) -> None:
        node = check_name(self.node, "node")
        shape = check_shape(self.shape, f"{node}/shape")
        p = lambda field: f"{node}/{field}"  # noqa: E731
        set_fields(self, shape=shape)
        set_fields(
            self,
            du=check_int(self.du, 0, fixed.MAX_DECAY, p("du"), "Lava's 12-bit current decay"),
            dv=check_int(self.dv, 0, fixed.MAX_DECAY, p("dv"), "Lava's 12-bit voltage decay"),
            vth=check_int(self.vth, 0, fixed.MAX_VTH, p("vth"), "Lava's 17-bit threshold mantissa"),
            scale_exp=check_int(self.scale_exp, -64, 64, p("scale_exp"), "voltage scale, a power of two"),
        )
        bias_range = (fixed.BIAS_MANT_MIN, fixed.BIAS_MANT_MAX)
        set_fields(
            self,
            bias_mant=per_neuron(self.bias_mant, shape, p("bias_mant"), "13-bit bias mantissa", *bias_range),
            bias_exp=per_neuron(self.bias_exp, shape, p("bias_exp"), "3-bit bias exponent", 0, fixed.BIAS_EXP_MAX),
            u_init=per_neuron(self.u_init, shape, p("u_init"), "24-bit current", STATE_MIN, STATE_MAX),
            v_init=per_neuron(self.v_init, shape, p("v_init"), "24-bit voltage", STATE_MIN, STATE_MAX),
        )
        if not isinstance(self.spiking, (bool, np.bool_)):
            raise NodeValidationError(f"expected true or false, got {self.spiking!r}", path=p("spiking"))
        set_fields(self, spiking=bool(self.spiking))
        unit = 2.0**-self.scale_exp
        n = self.size
        derived = {
            "float_du": (self.du + fixed.DS_OFFSET) / fixed.DECAY_UNITY,
            "float_dv": (self.dv + fixed.DM_OFFSET) / fixed.DECAY_UNITY,
            "float_vth": math.ldexp(self.vth, fixed.VTH_SHIFT - self.scale_exp),
            "float_bias": self.bias.astype(np.float64) * unit,
            "float_v_init": self.v_init.astype(np.float64) * unit,
        }
        for key, value in derived.items():
            given = getattr(self, key)
            if given is None:
                set_fields(self, **{key: value})
            elif key in ("float_bias", "float_v_init"):
                arr = np.asarray(given, np.float64).reshape(-1)
                if arr.size != n:
                    raise NodeValidationError(f"expected {n} values, got {arr.size}", path=p(key))
                set_fields(self, **{key: arr})
            else:
                set_fields(self, **{key: float(given)})

    @property
    def size(self) -> int:
        """Number of neurons."""
        return int(np.prod(self.shape))

    @property
    def bias(self) -> np.ndarray:
        """``bias_mant << bias_exp`` per neuron (int64 (n,)): what Lava adds to ``v`` each step."""
        return fixed.effective_bias(self.bias_mant, self.bias_exp)

    @property
    def has_synapse(self) -> bool:
        """Whether the current outlasts a step (``du < 4095``)."""
        return self.du < fixed.MAX_DECAY


# -- connections ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True, eq=False, kw_only=True)
class Connection:
    """A weighted connection: Lava ``Dense``/``Sparse`` (``kind="dense"``) or ``Conv`` (``kind="conv"``).

    A dense connection's message to its target is
    ``shift(sum of lava_weight[:, active inputs], weight_exp)``, one step after the
    spikes that caused it; :attr:`lava_weight` is ``weight`` as Lava's fixed-point model
    stores it (clipped to 8 bits and truncated to ``num_weight_bits`` per ``sign_mode``,
    :func:`edgesnn.loihi.fixed.lava_weights`). A convolution sums the weights as given,
    wraps the sum to 24 bits and applies no exponent (Lava's fixed-point Conv has none).

    Parameters
    ----------
    node : str
        Name (the edgesnn node; Lava's process name).
    source : str
        The input or spiking layer whose spikes it reads.
    target : str
        The layer it drives.
    weight : int array
        Dense: (n_out, n_in), any int32 (Lava clips); conv: edgesnn's
        (C_out, C_in/groups, KH, KW) cross-correlation kernel in [-256, 255].
    kind : {"dense", "conv"}
    weight_exp : int
        Dense only: shared exponent of base 2, -31..31 (the message is the weight sum
        shifted by it; negative sums round toward minus infinity).
    num_weight_bits : int
        Dense only: weight precision Lava keeps, 1..8 (1..9 with mixed signs, where 9
        keeps every integer in [-256, 255]: Lava's simulator accepts it and lava-dl's netx
        asks for it; Loihi's synapse memory holds 8).
    sign_mode : {"null", "mixed", "excitatory", "inhibitory"} or None
        Dense only: Lava's ``SignMode``; None lets Lava choose from the weights
        (excitatory unless some weight is negative).
    in_shape, out_shape : tuple of int or None
        Shapes of the source's spikes and the message; None: from the source and target.
    carried : bool or None
        Whether the float graph (:func:`edgesnn.loihi.to_model`) closes a cycle through it
        (a back edge, which already delays it one step there); None: found from the network.
    stride, padding, dilation, groups
        Conv only, PyTorch's meaning, (height, width).
    float_weight : float array or None
        The weight in model units with the target's input gain folded in (what Lava's
        floating_pt model uses); None: ``lava_weight * 2**(weight_exp + 6 - target.scale_exp)``.
    """

    node: str
    source: str
    target: str
    weight: np.ndarray  # int32 once made
    kind: str = "dense"
    weight_exp: int = 0
    num_weight_bits: int = fixed.WEIGHT_BITS
    sign_mode: str | None = None
    in_shape: tuple[int, ...] | None = None
    out_shape: tuple[int, ...] | None = None
    carried: bool | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    float_weight: np.ndarray | None = None  # float64, weight's shape

    def __post_init__(self) -> None:
        node = check_name(self.node, "node")
        p = lambda field: f"{node}/{field}"  # noqa: E731
        set_fields(self, source=check_name(self.source, p("source")), target=check_name(self.target, p("target")))
        if self.kind not in ("dense", "conv"):
            raise NodeValidationError(f"expected 'dense' or 'conv', got {self.kind!r}", path=p("kind"))
        conv = self.kind == "conv"
        lo, hi = (_CONV_WEIGHT_MIN, _CONV_WEIGHT_MAX) if conv else (-(1 << 31), (1 << 31) - 1)
        what = "Loihi's 9-bit signed synapse" if conv else "int32, clipped by Lava to 8 bits"
        w = int_array(self.weight, p("weight"), what, lo, hi)
        if w.ndim != (4 if conv else 2):
            want = "(C_out, C_in/groups, KH, KW)" if conv else "(n_out, n_in)"
            raise NodeValidationError(f"expected a {want} array, got shape {w.shape}", path=p("weight"))
        w = np.ascontiguousarray(w, np.int32)
        w.setflags(write=False)
        set_fields(self, weight=w)
        if conv:
            for field, default in (("weight_exp", 0), ("num_weight_bits", fixed.WEIGHT_BITS), ("sign_mode", None)):
                if getattr(self, field) != default:
                    raise NodeValidationError(
                        f"Lava's fixed-point Conv applies no {field} (it uses the weights as given); got"
                        f" {getattr(self, field)!r}, expected {default!r}",
                        path=p(field),
                    )
            set_fields(
                self,
                stride=check_pair(self.stride, p("stride"), 1),
                padding=check_pair(self.padding, p("padding"), 0),
                dilation=check_pair(self.dilation, p("dilation"), 1),
                groups=check_int(self.groups, 1, 1 << 16, p("groups"), "convolution groups"),
            )
        else:
            if self.sign_mode is not None and self.sign_mode not in fixed.SIGN_MODES:
                raise NodeValidationError(
                    f"expected one of {', '.join(fixed.SIGN_MODES)} or None, got {self.sign_mode!r}",
                    path=p("sign_mode"),
                )
            exp_range = (fixed.WEIGHT_EXP_MIN, fixed.WEIGHT_EXP_MAX)
            exp = check_int(self.weight_exp, *exp_range, p("weight_exp"), "Lava's shift of the weight sum")
            mode = self.resolved_sign_mode
            bits_range = (1, fixed.WEIGHT_BITS + (mode == "mixed"))
            what = f"bits Lava keeps of {mode} weights"
            bits = check_int(self.num_weight_bits, *bits_range, p("num_weight_bits"), what)
            set_fields(self, weight_exp=exp, num_weight_bits=bits)
        for field in ("in_shape", "out_shape"):
            if getattr(self, field) is not None:
                set_fields(self, **{field: check_shape(getattr(self, field), p(field))})
        if self.carried is not None:
            set_fields(self, carried=bool(self.carried))
        if self.float_weight is not None:
            fw = np.asarray(self.float_weight, np.float64)
            if fw.shape != w.shape:
                raise NodeValidationError(f"expected shape {w.shape} (the weight's), got {fw.shape}",
                                          path=p("float_weight"))  # fmt: skip
            set_fields(self, float_weight=fw)

    @property
    def resolved_sign_mode(self) -> str | None:
        """The sign mode Lava uses: ``sign_mode``, or the one it picks from the weights (None for conv)."""
        if self.kind == "conv":
            return None
        return self.sign_mode if self.sign_mode is not None else fixed.sign_mode_of(self.weight)

    @functools.cached_property
    def lava_weight(self) -> np.ndarray:
        """The weights Lava computes with (int32): clipped and truncated for dense, as given for conv."""
        if self.kind == "conv":
            return self.weight
        w = fixed.lava_weights(self.weight, self.sign_mode, self.num_weight_bits).astype(np.int32)
        w.setflags(write=False)
        return w
