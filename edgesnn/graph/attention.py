r"""Multi-head causal attention over a sliding window, with the gain-cell device model as parameters.

The node carries two numerics (a session option, see :mod:`edgesnn.engine`):

- ``"float"``: softmax attention, scores scaled by :math:`1/\sqrt{D}`, over the
  last ``window`` tokens (the current one included).
- ``"gaincell"``: the analog in-memory attention of Leroux et al. (Nature
  Computational Science 5, 2025; arXiv 2409.19315) as the authors' simulation
  has it (``modules/model_gpt.py``: ``DRAMAttention``, ``LinearDRAMAttention``).
  Every constant of that model is a field below; the defaults are the paper's.

Gain-cell model, per head, for the query of token t and the cells of the window
(token s written ``age = t - s`` steps ago, leakage :math:`\delta = e^{-\lambda\,age}`):

.. math::

    \hat q &= Q_{16}(\mathrm{clip}(a_q q + b_q, 0, q_{max})),\quad
    \hat k, \hat v = Q_8(\mathrm{clip}(a_k k + b_k, 0, V_{kv})),\ \text{idem } v \\
    S_s &= \sum_d \hat q_d\, p(\delta_s (\hat k_{s,d} - V_{off})),\qquad
    A_s = \mathrm{clip}(S_s / S_{sat}, 0, 1) \quad\text{(HardSigmoid)} \\
    O_g &= Q_{32}\Big(\mathrm{clip}\big(\tfrac{1}{O_{sat}} \textstyle\sum_{s \in g} A_s\,
           p(\delta_s (\hat v_s - V_{off})), -1, 1\big)\Big),\qquad
    y = a_o \sum_g O_g + b_o

with :math:`Q_n` rounding to multiples of the step (range)/(n - 1) (the authors'
``quantization_custom``), g the arrays of ``array_width`` cells the window is
tiled into (a token goes to cell ``t mod window``; sums across arrays are
digital), and the multiplication of one cell ``mac``:

- ``"polynomial"``: :math:`p(u) = \sum_{i=0}^{3} u^i \sum_{j=0}^{3-i} c_{ij} V_{in}^j`, the paper's
  third-order fit :math:`\sum_{i}\sum_{j} x (w - V_{off})^i V_{in}^j c_{ij}` with the leakage raised to
  the power of each term (:math:`\delta^i`), as the authors' code does. ``mac_coefficients`` lists
  :math:`c_{ij}` with i (the power of :math:`w - V_{off}`) outer and j (the power of :math:`V_{in}`)
  inner: :math:`c_{00}, c_{01}, c_{02}, c_{03}, c_{10}, c_{11}, c_{12}, c_{20}, c_{21}, c_{30}`.
- ``"linear"``: :math:`p(u) = g\,u` with ``linear_gain`` g = 19.3 (the authors'
  intermediate model, and the surrogate of the polynomial's gradient in training); here the
  leakage multiplies the scores of QK and the inputs of AV, exactly.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from edgesnn import limits
from edgesnn.errors import NodeValidationError
from edgesnn.graph._node import Node, Shape, array_field, as_int, as_param, check_choice
from edgesnn.graph.transformer import GELU, LayerNorm, PositionEmbedding, ReLU, TokenEmbedding, as_number, expect_vector

#: The authors' fit of the gain cell's multiplication (``DRAM_MAC_temporal_encoding``), c_ij with i outer.
MAC_COEFFICIENTS = (0.17393044, 0.15653739, 0.14088365, 0.12679529, 5.51975209, 4.96777688, 4.4709992,
                    -1.44776001, -1.30298401, 46.05483778)  # fmt: skip
MACS = ("polynomial", "linear")
#: The calibration scalers' starting values (a, b) as the authors initialise them.
_SCALER_DEFAULTS = {"q": (1.0, 0.0), "k": (1.0, 0.45), "v": (1.0, 0.45), "out": (1.0, 0.0)}


def polynomial_order(count: int, name: str = "mac_coefficients") -> int:
    """The order n of a two-variable polynomial with ``count`` = (n + 1)(n + 2)/2 coefficients."""
    n = round((math.sqrt(8 * count + 1) - 3) / 2)
    if count < 1 or (n + 1) * (n + 2) // 2 != count:
        raise NodeValidationError(f"expected (n + 1)(n + 2)/2 coefficients of an order-n fit, got {count}", path=name)
    return n


def set_projections(node: Node, vectors: tuple[tuple[str, object], ...] = ()) -> tuple[int, int]:
    """Check and set an attention node's w_qkv (3d, d), b_qkv, w_out, b_out and num_heads; returns (d, heads).

    ``vectors`` are further (field, value) parameters of shape (d,), checked the same way.
    """
    w = as_param(node.w_qkv, "w_qkv")
    if w.ndim != 2 or w.shape[0] != 3 * w.shape[1] or w.shape[1] == 0:
        raise NodeValidationError(f"expected shape (3d, d), got {w.shape}", path="w_qkv")
    d = w.shape[1]
    node._set("w_qkv", w)
    shapes = {"b_qkv": (3 * d,), "w_out": (d, d), "b_out": (d,)}
    for name, value in [*((n, getattr(node, n)) for n in shapes), *vectors]:
        arr = as_param(value, name)
        shape = shapes.get(name, (d,))
        if arr.shape != shape:
            raise NodeValidationError(f"expected shape {shape}, got {arr.shape}", path=name)
        node._set(name, arr)
    heads = as_int(node.num_heads, "num_heads", minimum=1)
    if d % heads:
        raise NodeValidationError(f"d = {d} is not divisible by {heads} heads", path="num_heads")
    node._set("num_heads", heads)
    return d, heads


@dataclasses.dataclass(frozen=True, eq=False)
class SlidingWindowAttention(Node):
    """Multi-head causal self-attention over the last ``window`` tokens; its K/V window is session state.

    ``w_qkv`` (3d, d) and ``b_qkv`` (3d,) give q, k, v (in that order, heads side by side, as
    GPT-2's ``c_attn``); ``w_out`` (d, d), ``b_out`` (d,) project the heads' outputs.
    ``q_scale``/``q_offset`` ... ``out_scale``/``out_offset`` (num_heads,) are the per-head
    affine scalers of the gain-cell numerics (calibrated by ``tools.train_lm``); float
    numerics ignore them and every field after them. See the module for the equations.
    """

    w_qkv: np.ndarray = array_field()
    b_qkv: np.ndarray = array_field()
    w_out: np.ndarray = array_field()
    b_out: np.ndarray = array_field()
    num_heads: int = 1
    window: int = 64
    q_scale: np.ndarray | None = array_field(default=None)
    q_offset: np.ndarray | None = array_field(default=None)
    k_scale: np.ndarray | None = array_field(default=None)
    k_offset: np.ndarray | None = array_field(default=None)
    v_scale: np.ndarray | None = array_field(default=None)
    v_offset: np.ndarray | None = array_field(default=None)
    out_scale: np.ndarray | None = array_field(default=None)
    out_offset: np.ndarray | None = array_field(default=None)
    q_levels: int = 16
    q_max: float = 1.0
    kv_levels: int = 8
    kv_max_v: float = 0.9
    out_levels: int = 32
    out_max: float = 1.0
    score_saturation: float = 80.0
    out_saturation: float = 40.0
    decay_per_step: float = 1.6e-4
    mac: str = "polynomial"
    mac_coefficients: np.ndarray | None = array_field(default=None)
    offset_v: float = 0.45
    input_v: float = 0.9
    linear_gain: float = 19.3
    array_width: int = 64

    def __post_init__(self) -> None:
        _, heads = set_projections(self)
        self._set("window", as_int(self.window, "window", minimum=1))
        limits.current().check("delay_steps", self.window, "a window of tokens", path="window")
        for kind, (a, b) in _SCALER_DEFAULTS.items():
            for field, default in ((f"{kind}_scale", a), (f"{kind}_offset", b)):
                value = getattr(self, field)
                arr = np.full(heads, default, np.float32) if value is None else as_param(value, field)
                if arr.shape != (heads,):
                    raise NodeValidationError(f"expected one value per head ({heads},), got {arr.shape}", path=field)
                self._set(field, arr)
        for field in ("q_levels", "kv_levels", "out_levels"):
            self._set(field, as_int(getattr(self, field), field, minimum=2))
        self._set("array_width", as_int(self.array_width, "array_width", minimum=1))
        for field in ("q_max", "kv_max_v", "out_max", "score_saturation", "out_saturation", "linear_gain",
                      "input_v"):  # fmt: skip
            self._set(field, as_number(getattr(self, field), field, low=0.0, open_low=True))
        self._set("decay_per_step", as_number(self.decay_per_step, "decay_per_step", low=0.0))
        self._set("offset_v", as_number(self.offset_v, "offset_v"))
        check_choice(self.mac, MACS, "mac")
        c = as_param(MAC_COEFFICIENTS if self.mac_coefficients is None else self.mac_coefficients, "mac_coefficients")
        if c.ndim != 1:
            raise NodeValidationError(f"expected a 1-d list, got shape {c.shape}", path="mac_coefficients")
        polynomial_order(c.size)
        self._set("mac_coefficients", c)

    @property
    def d_model(self) -> int:
        """Width d of the token vectors."""
        return self.w_qkv.shape[1]

    @property
    def head_dim(self) -> int:
        """Width D = d / num_heads of one head."""
        return self.d_model // self.num_heads

    def mac_polynomial(self) -> np.ndarray:
        """Coefficients P_i (float64) of p(u) = sum_i P_i u^i, the cell's multiplication at ``input_v``."""
        if self.mac == "linear":
            return np.array([0.0, self.linear_gain])
        c = self.mac_coefficients.astype(np.float64)
        n = polynomial_order(c.size)
        out, idx = np.zeros(n + 1), 0
        for i in range(n + 1):
            for j in range(n - i + 1):
                out[i] += c[idx] * float(self.input_v) ** j
                idx += 1
        return out

    def output_shape(self, input_shape: Shape) -> Shape:
        """(d,) -> (d,)."""
        expect_vector(self.d_model, input_shape)
        return tuple(input_shape)


def transformer_node_bytes(node: Node, in_shape: Shape, batch: int) -> int:
    """Bytes a session of ``batch`` streams allocates for a transformer node beyond its output buffer.

    Attention: the transposed projections, the K/V window and its reset copy (float64
    under gain-cell numerics, counted so for both), and one step's temporaries
    (scores, the cells' products, per-array sums: six (batch, window, d) float64 arrays).
    The others: a few (batch, d) float32 temporaries and a position counter.
    """
    n = math.prod(in_shape)
    if isinstance(node, SlidingWindowAttention):
        d, ring = node.d_model, batch * node.window * node.d_model
        return 4 * d * d * 4 + 4 * ring * 8 + 6 * ring * 8 + 8 * batch * 3 * d * 8 + 64
    return 4 * batch * n * 4 + 64


#: Every node type of the transformer family (none of them has a NIR counterpart).
TRANSFORMER_TYPES = (TokenEmbedding, PositionEmbedding, LayerNorm, GELU, ReLU, SlidingWindowAttention)

__all__ = ["MAC_COEFFICIENTS", "MACS", "TRANSFORMER_TYPES", "SlidingWindowAttention", "polynomial_order",
           "transformer_node_bytes"]  # fmt: skip
