"""Local partial Jacobians of jaxpr equations, as sparse blocks (tools.jacobians.structure).

Each rule sees one equation (:class:`Eqn`) and returns a :class:`Local` per (output, active input)
pair with a nonzero partial: the block's structure, known before any value is, and a function of
the equation's input and output values that gives the stored values. Elementwise maths is
diagonal, structural primitives (broadcast, reshape, transpose, slice, concatenate, pad, sums)
are index maps that cost no multiplications, and ``dot_general`` keeps its batch dimensions
diagonal. Functions with a custom derivative (``jax.custom_jvp``, ``jax.custom_vjp``, such as the
trainer's surrogate spike) are differentiated with their own rule: elementwise ones by one
directional derivative per input, others densely.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tools.jacobians.structure import Struct, dense_struct, identity_struct

Values = Sequence[Any]


@dataclasses.dataclass(frozen=True)
class Eqn:
    """One equation as the rules see it: primitive, parameters, avals and which inputs are active."""

    primitive: Any
    params: dict[str, Any]
    in_avals: tuple[jax.ShapeDtypeStruct, ...]
    out_avals: tuple[jax.ShapeDtypeStruct, ...]
    literals: tuple[Any, ...]  # the value of each literal input, None for variables
    active: tuple[bool, ...]

    @property
    def name(self) -> str:
        """The primitive's name."""
        return self.primitive.name


@dataclasses.dataclass(frozen=True)
class Local:
    """The partial of output ``out_index`` with respect to input ``in_index`` of one equation."""

    out_index: int
    in_index: int
    struct: Struct
    value: Callable[[Values, Values], Any]  # (input values, output values) -> stored values


def bind(eqn: Eqn, invals: Values) -> list[Any]:
    """Evaluate the equation on ``invals``; always a list of outputs."""
    out = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
    return list(out) if eqn.primitive.multiple_results else [out]


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(int(n) for n in np.shape(a))


# ---- elementwise maths: d out / d input k as a function of (inputs, output) -----------------------

_D = Callable[..., Any]
_SQRT_PI_2 = 2.0 / math.sqrt(math.pi)

UNARY: dict[str, _D] = {
    "neg": lambda x, y, p: -1.0,
    "sin": lambda x, y, p: jnp.cos(x),
    "cos": lambda x, y, p: -jnp.sin(x),
    "tan": lambda x, y, p: 1.0 + y * y,
    "asin": lambda x, y, p: jax.lax.rsqrt(1.0 - x * x),
    "acos": lambda x, y, p: -jax.lax.rsqrt(1.0 - x * x),
    "atan": lambda x, y, p: 1.0 / (1.0 + x * x),
    "sinh": lambda x, y, p: jnp.cosh(x),
    "cosh": lambda x, y, p: jnp.sinh(x),
    "tanh": lambda x, y, p: 1.0 - y * y,
    "asinh": lambda x, y, p: jax.lax.rsqrt(x * x + 1.0),
    "acosh": lambda x, y, p: jax.lax.rsqrt(x * x - 1.0),
    "atanh": lambda x, y, p: 1.0 / (1.0 - x * x),
    "exp": lambda x, y, p: y,
    "exp2": lambda x, y, p: y * math.log(2.0),
    "log": lambda x, y, p: 1.0 / x,
    "log1p": lambda x, y, p: 1.0 / (1.0 + x),
    "expm1": lambda x, y, p: y + 1.0,
    "sqrt": lambda x, y, p: 0.5 / y,
    "rsqrt": lambda x, y, p: -0.5 * y / x,
    "cbrt": lambda x, y, p: y / (3.0 * x),
    "logistic": lambda x, y, p: y * (1.0 - y),
    "abs": lambda x, y, p: jnp.sign(x),
    "square": lambda x, y, p: 2.0 * x,
    "integer_pow": lambda x, y, p: {0: 0.0, 1: 1.0}.get(p["y"], p["y"] * x ** (p["y"] - 1)),
    "erf": lambda x, y, p: _SQRT_PI_2 * jnp.exp(-x * x),
    "erfc": lambda x, y, p: -_SQRT_PI_2 * jnp.exp(-x * x),
    "erf_inv": lambda x, y, p: 0.5 * math.sqrt(math.pi) * jnp.exp(y * y),
    "lgamma": lambda x, y, p: jax.lax.digamma(x),
}


def _chooser(first: bool) -> Callable[..., Any]:
    # max/min: JAX splits the derivative evenly at ties.
    def d(a: Any, b: Any, y: Any, p: Any) -> Any:
        mine, other = (a, b) if first else (b, a)
        return jnp.where(mine == other, 0.5, jnp.where(mine == y, 1.0, 0.0))

    return d


BINARY: dict[str, tuple[_D, _D]] = {
    "add": (lambda a, b, y, p: 1.0, lambda a, b, y, p: 1.0),
    "sub": (lambda a, b, y, p: 1.0, lambda a, b, y, p: -1.0),
    "mul": (lambda a, b, y, p: b, lambda a, b, y, p: a),
    "div": (lambda a, b, y, p: 1.0 / b, lambda a, b, y, p: -y / b),
    "pow": (lambda a, b, y, p: b * a ** (b - 1.0), lambda a, b, y, p: jnp.where(a == 0, 0.0, jnp.log(a)) * y),
    "atan2": (lambda a, b, y, p: b / (a * a + b * b), lambda a, b, y, p: -a / (a * a + b * b)),
    "max": (_chooser(True), _chooser(False)),
    "min": (_chooser(True), _chooser(False)),
    "rem": (lambda a, b, y, p: 1.0, lambda a, b, y, p: -jnp.trunc(a / b)),
}

#: Primitives whose output never carries a derivative (piecewise constant, boolean or integer).
ZERO = frozenset({
    "sign", "floor", "ceil", "round", "is_finite", "stop_gradient", "eq", "ne", "lt", "le", "gt", "ge", "and", "or",
    "not", "xor", "argmax", "argmin", "iota", "nextafter", "random_bits", "random_seed", "random_wrap",
    "random_unwrap", "shift_left", "shift_right_logical", "shift_right_arithmetic", "population_count", "clz",
})  # fmt: skip

#: Primitives that copy their input unchanged.
IDENTITY = frozenset({"copy", "copy_p", "reduce_precision", "optimization_barrier"})

ELEMENTWISE = frozenset(UNARY) | frozenset(BINARY) | ZERO | IDENTITY | {"select_n", "clamp", "convert_element_type"}


def _elementwise_struct(in_shape: tuple[int, ...], out_shape: tuple[int, ...], d_shape: tuple[int, ...]) -> Struct:
    """Block of an elementwise map with broadcasting: equal dimensions diagonal, size-1 ones summed."""
    off = len(out_shape) - len(in_shape)
    pairs = tuple((k - off) if k >= off and in_shape[k - off] == out_shape[k] else None for k in range(len(out_shape)))
    paired = {p for p in pairs if p is not None}
    n_free = sum(1 for j in range(len(in_shape)) if j not in paired)
    d_full = (1,) * (len(out_shape) - len(d_shape)) + d_shape
    return Struct(out_shape, in_shape, pairs, d_full + (1,) * n_free)


def _elementwise_local(eqn: Eqn, k: int, d: Callable[[Values, Values], Any]) -> Local:
    out = eqn.out_avals[0]
    # The derivative's shape (constants are stored once): evaluated on zeros, cheaper than tracing.
    args = [lit if lit is not None else np.zeros(a.shape, a.dtype) for lit, a in zip(eqn.literals, eqn.in_avals,
                                                                                    strict=True)]  # fmt: skip
    with jax.ensure_compile_time_eval(), np.errstate(all="ignore"):
        d_shape = _shape(d(args, [None]))
    struct = _elementwise_struct(_shape(eqn.in_avals[k]), _shape(out), d_shape)

    def value(ins: Values, outs: Values) -> Any:
        return jnp.asarray(d(ins, outs), out.dtype).reshape(struct.val_shape)

    return Local(0, k, struct, value)


def _elementwise(eqn: Eqn) -> list[Local] | None:
    name, p = eqn.name, eqn.params
    if name in UNARY:
        f = UNARY[name]
        return [_elementwise_local(eqn, 0, lambda ins, outs: f(ins[0], _out(eqn, ins, outs), p))]
    if name in BINARY:
        fs = BINARY[name]
        return [
            _elementwise_local(eqn, k, lambda ins, outs, f=fs[k]: f(ins[0], ins[1], _out(eqn, ins, outs), p))
            for k in (0, 1)
            if eqn.active[k]
        ]
    if name in IDENTITY or (name == "convert_element_type" and jnp.issubdtype(eqn.out_avals[0].dtype, jnp.floating)):
        s = _shape(eqn.out_avals[0])
        return [Local(0, 0, identity_struct(s), lambda ins, outs: jnp.ones((1,) * len(s), eqn.out_avals[0].dtype))]
    if name == "select_n":
        # select_n(which, *cases): case k where which == k (which is boolean or an integer index).
        return [
            _elementwise_local(eqn, k, lambda ins, outs, c=k - 1: jnp.asarray(ins[0]).astype(jnp.int32) == c)
            for k in range(1, len(eqn.in_avals))
            if eqn.active[k]
        ]
    if name == "clamp":
        # clamp(lo, x, hi), with JAX's strict comparisons.
        ds = {
            0: lambda ins, outs: ins[0] > ins[1],
            1: lambda ins, outs: (ins[1] > ins[0]) & (ins[1] < ins[2]),
            2: lambda ins, outs: ins[2] < ins[1],
        }
        return [_elementwise_local(eqn, k, ds[k]) for k in range(3) if eqn.active[k]]
    return None


def _out(eqn: Eqn, ins: Values, outs: Values) -> Any:
    # During shape inference the output is not known yet: compute it (the shape is all that is used).
    return outs[0] if outs[0] is not None else bind(eqn, ins)[0]


# ---- structural maps ------------------------------------------------------------------------------


def _ones(shape: tuple[int, ...], dtype: Any) -> Callable[[Values, Values], Any]:
    return lambda ins, outs: jnp.ones(shape, dtype)


def _axis_maps(eqn: Eqn, maps: dict[int, np.ndarray]) -> Local:
    """A map acting dimension by dimension: out dim k = in dim k, except ``maps[k]`` (out_k x in_k 0/1)."""
    in_shape, out_shape = _shape(eqn.in_avals[0]), _shape(eqn.out_avals[0])
    pairs = tuple(None if k in maps else k for k in range(len(out_shape)))
    free = sorted(maps)
    val_shape = tuple(out_shape[k] if k in maps else 1 for k in range(len(out_shape))) + tuple(
        in_shape[j] for j in free
    )
    dtype = eqn.out_avals[0].dtype
    val = np.ones(val_shape, np.float32)
    n = len(out_shape)
    for pos, k in enumerate(free):
        shape = [1] * len(val_shape)
        shape[k], shape[n + pos] = maps[k].shape
        val = val * maps[k].reshape(shape)
    struct = Struct(out_shape, in_shape, pairs, val_shape, True)
    return Local(0, 0, struct, lambda ins, outs: jnp.asarray(val, dtype))


def _select_matrix(n_out: int, n_in: int, src: Sequence[int]) -> np.ndarray:
    m = np.zeros((n_out, n_in), np.float32)
    for o, i in enumerate(src):
        if i is not None:
            m[o, i] = 1.0
    return m


def _slice(eqn: Eqn) -> list[Local]:
    p = eqn.params
    in_shape, out_shape = _shape(eqn.in_avals[0]), _shape(eqn.out_avals[0])
    strides = p["strides"] or (1,) * len(in_shape)
    maps = {}
    for k, (lo, n_in, st, n_out) in enumerate(zip(p["start_indices"], in_shape, strides, out_shape, strict=True)):
        if (lo, st, n_out) != (0, 1, n_in):
            maps[k] = _select_matrix(n_out, n_in, [lo + st * o for o in range(n_out)])
    return [_axis_maps(eqn, maps)]


def _split(eqn: Eqn) -> list[Local]:
    axis, in_shape = eqn.params["axis"], _shape(eqn.in_avals[0])
    out, start = [], 0
    for k, aval in enumerate(eqn.out_avals):
        n = _shape(aval)[axis]
        sub = dataclasses.replace(eqn, out_avals=(aval,))
        local = _axis_maps(sub, {axis: _select_matrix(n, in_shape[axis], range(start, start + n))})
        out.append(dataclasses.replace(local, out_index=k))
        start += n
    return out


def _rev(eqn: Eqn) -> list[Local]:
    shape = _shape(eqn.in_avals[0])
    return [_axis_maps(eqn, {k: np.eye(shape[k], dtype=np.float32)[::-1].copy() for k in eqn.params["dimensions"]})]


def _pad(eqn: Eqn) -> list[Local]:
    in_shape, out_shape = _shape(eqn.in_avals[0]), _shape(eqn.out_avals[0])
    maps, src_of = {}, []
    for k, (lo, _hi, interior) in enumerate(eqn.params["padding_config"]):
        src = [None] * out_shape[k]
        for i in range(in_shape[k]):
            o = lo + i * (interior + 1)
            if 0 <= o < out_shape[k]:
                src[o] = i
        src_of.append(src)
        if (lo, _hi, interior) != (0, 0, 0):
            maps[k] = _select_matrix(out_shape[k], in_shape[k], src)
    out = []
    if eqn.active[0]:
        out.append(_axis_maps(eqn, maps))
    if eqn.active[1]:
        # Entries taken from the operand are exactly those whose every index has a source.
        taken = np.ones(out_shape, bool)
        for k, src in enumerate(src_of):
            hit = np.array([s is not None for s in src]).reshape([-1 if j == k else 1 for j in range(len(out_shape))])
            taken = taken & hit
        val = (~taken).astype(np.float32)
        out.append(Local(0, 1, Struct(out_shape, (), (None,) * len(out_shape), out_shape, True),
                         lambda ins, outs: jnp.asarray(val, eqn.out_avals[0].dtype)))  # fmt: skip
    return out


def _concatenate(eqn: Eqn) -> list[Local]:
    dim, out_shape = eqn.params["dimension"], _shape(eqn.out_avals[0])
    out, start = [], 0
    for k, aval in enumerate(eqn.in_avals):
        n = _shape(aval)[dim]
        if eqn.active[k]:
            sub = dataclasses.replace(eqn, in_avals=(aval,))
            m = _select_matrix(out_shape[dim], n, [o - start if start <= o < start + n else None
                                                   for o in range(out_shape[dim])])  # fmt: skip
            out.append(dataclasses.replace(_axis_maps(sub, {dim: m}), in_index=k))
        start += n
    return out


def _stack(eqn: Eqn) -> list[Local]:
    axis, out_shape = eqn.params["axis"], _shape(eqn.out_avals[0])
    n, dtype = out_shape[axis], eqn.out_avals[0].dtype
    out = []
    for k, aval in enumerate(eqn.in_avals):
        if not eqn.active[k]:
            continue
        # Out dimensions other than ``axis`` are the operand's, diagonal; along ``axis`` only entry k.
        pairs = tuple(None if d == axis else d - (d > axis) for d in range(len(out_shape)))
        val_shape = tuple(n if d == axis else 1 for d in range(len(out_shape)))
        hot = np.zeros(val_shape, np.float32)
        hot.reshape(-1)[k] = 1.0
        struct = Struct(out_shape, _shape(aval), pairs, val_shape, True)
        out.append(Local(0, k, struct, lambda ins, outs, hot=hot: jnp.asarray(hot, dtype)))
    return out


def _broadcast_in_dim(eqn: Eqn) -> list[Local]:
    in_shape, out_shape = _shape(eqn.in_avals[0]), _shape(eqn.out_avals[0])
    dims = eqn.params["broadcast_dimensions"]
    pairs = [None] * len(out_shape)
    for j, k in enumerate(dims):
        if in_shape[j] == out_shape[k]:
            pairs[k] = j
    n_free = len(in_shape) - sum(p is not None for p in pairs)
    val_shape = (1,) * (len(out_shape) + n_free)
    struct = Struct(out_shape, in_shape, tuple(pairs), val_shape, True)
    return [Local(0, 0, struct, _ones(val_shape, eqn.out_avals[0].dtype))]


def _reshape(eqn: Eqn) -> list[Local]:
    in_shape, out_shape = _shape(eqn.in_avals[0]), _shape(eqn.out_avals[0])
    dtype = eqn.out_avals[0].dtype
    if [n for n in in_shape if n != 1] == [n for n in out_shape if n != 1]:
        # Only size-1 dimensions come or go: the other dimensions stay diagonal, in order.
        ins = [j for j, n in enumerate(in_shape) if n != 1]
        outs = [k for k, n in enumerate(out_shape) if n != 1]
        pairs = [None] * len(out_shape)
        for j, k in zip(ins, outs, strict=True):
            pairs[k] = j
        n_free = len(in_shape) - len(ins)
        val_shape = (1,) * (len(out_shape) + n_free)
        return [Local(0, 0, Struct(out_shape, in_shape, tuple(pairs), val_shape, True), _ones(val_shape, dtype))]
    n = math.prod(in_shape)
    eye = np.eye(n, dtype=np.float32).reshape(out_shape + in_shape)
    return [Local(0, 0, dense_struct(out_shape, in_shape, True), lambda ins, outs: jnp.asarray(eye, dtype))]


def _squeeze(eqn: Eqn) -> list[Local]:
    return _reshape(eqn)


def _transpose(eqn: Eqn) -> list[Local]:
    perm, out_shape = eqn.params["permutation"], _shape(eqn.out_avals[0])
    struct = Struct(out_shape, _shape(eqn.in_avals[0]), tuple(perm), (1,) * len(out_shape), True)
    return [Local(0, 0, struct, _ones(struct.val_shape, eqn.out_avals[0].dtype))]


def _reduce_sum(eqn: Eqn) -> list[Local]:
    in_shape, axes = _shape(eqn.in_avals[0]), set(eqn.params["axes"])
    kept = [j for j in range(len(in_shape)) if j not in axes]
    val_shape = (1,) * (len(kept) + len(axes))
    struct = Struct(_shape(eqn.out_avals[0]), in_shape, tuple(kept), val_shape, True)
    return [Local(0, 0, struct, _ones(val_shape, eqn.out_avals[0].dtype))]


def _reduce_chooser(eqn: Eqn) -> list[Local]:
    # reduce_max / reduce_min: the derivative is shared evenly among the positions that attain it.
    in_shape, axes = _shape(eqn.in_avals[0]), tuple(sorted(eqn.params["axes"]))
    kept = [j for j in range(len(in_shape)) if j not in axes]
    out_shape = _shape(eqn.out_avals[0])
    struct = Struct(out_shape, in_shape, tuple(kept), out_shape + tuple(in_shape[j] for j in axes))

    def value(ins: Values, outs: Values) -> Any:
        x = ins[0]
        y = jnp.expand_dims(outs[0], axes)
        hit = (x == y).astype(x.dtype)
        hit = hit / jnp.sum(hit, axis=axes, keepdims=True)
        # val: kept dims (out order), then the reduced dims.
        return jnp.transpose(hit, kept + list(axes)).reshape(struct.val_shape)

    return [Local(0, 0, struct, value)]


def _cumsum(eqn: Eqn) -> list[Local]:
    shape, axis = _shape(eqn.in_avals[0]), eqn.params["axis"]
    n = shape[axis]
    tri = np.tril(np.ones((n, n), np.float32))
    return [_axis_maps(eqn, {axis: tri[::-1, ::-1].copy() if eqn.params.get("reverse") else tri})]


def _dot_general(eqn: Eqn) -> list[Local]:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    shapes = [_shape(a) for a in eqn.in_avals]
    out_shape, dtype = _shape(eqn.out_avals[0]), eqn.out_avals[0].dtype
    free = [[j for j in range(len(s)) if j not in (lc, rc)[i] and j not in (lb, rb)[i]] for i, s in enumerate(shapes)]
    nb = len(lb)
    out = []
    for k in (0, 1):
        if not eqn.active[k]:
            continue
        mine_c, other_c = ((lc, rc), (rc, lc))[k]
        mine_b, other_b = ((lb, rb), (rb, lb))[k]
        my_free, other_free = free[k], free[1 - k]
        # out = batch + lhs free + rhs free; my batch and free dims are diagonal with the output's.
        my_out = list(range(nb, nb + len(free[0]))) if k == 0 else list(range(nb + len(free[0]), len(out_shape)))
        other_out = list(range(nb + len(free[0]), len(out_shape))) if k == 0 else list(range(nb, nb + len(free[0])))
        pairs = [None] * len(out_shape)
        for i, j in enumerate(mine_b):
            pairs[i] = j
        for o, j in zip(my_out, my_free, strict=True):
            pairs[o] = j
        order = sorted(range(len(mine_c)), key=lambda i: mine_c[i])  # free in dims ascending
        other_perm = list(other_b) + list(other_free) + [other_c[i] for i in order]
        val_shape = [1] * len(out_shape)
        for i in range(nb):
            val_shape[i] = out_shape[i]
        for o in other_out:
            val_shape[o] = out_shape[o]
        val_shape += [shapes[k][mine_c[i]] for i in order]
        struct = Struct(out_shape, shapes[k], tuple(pairs), tuple(val_shape))

        def value(ins: Values, outs: Values, k: int = k, perm: list[int] = other_perm, vs: Any = struct.val_shape):
            other = jnp.asarray(ins[1 - k], dtype)
            return jnp.transpose(other, perm).reshape(vs)

        out.append(Local(0, k, struct, value))
    return out


STRUCTURAL: dict[str, Callable[[Eqn], list[Local]]] = {
    "broadcast_in_dim": _broadcast_in_dim,
    "reshape": _reshape,
    "squeeze": _squeeze,
    "transpose": _transpose,
    "reduce_sum": _reduce_sum,
    "reduce_max": _reduce_chooser,
    "reduce_min": _reduce_chooser,
    "slice": _slice,
    "split": _split,
    "concatenate": _concatenate,
    "stack": _stack,
    "pad": _pad,
    "rev": _rev,
    "cumsum": _cumsum,
    "dot_general": _dot_general,
}


# ---- functions with their own derivative ----------------------------------------------------------


def _is_elementwise(jaxpr: Any, out_shape: tuple[int, ...]) -> bool:
    """True when every equation of ``jaxpr`` is elementwise and every value broadcasts to ``out_shape``."""

    def fits(s: tuple[int, ...]) -> bool:
        return len(s) <= len(out_shape) and all(a in (1, b) for a, b in zip(s[::-1], out_shape[::-1], strict=False))

    for e in jaxpr.eqns:
        if e.primitive.name not in ELEMENTWISE:
            return False
        if not all(fits(_shape(v.aval)) for v in (*e.invars, *e.outvars)):
            return False
    return all(fits(_shape(v.aval)) for v in (*jaxpr.invars, *jaxpr.outvars))


def _custom(eqn: Eqn) -> list[Local]:
    forward = eqn.name == "custom_jvp_call"
    call = eqn.params["call_jaxpr"]
    out = []
    for i, aval in enumerate(eqn.out_avals):
        if not jnp.issubdtype(aval.dtype, jnp.floating):
            continue
        out_shape = _shape(aval)
        elementwise = _is_elementwise(call.jaxpr, out_shape)
        for k in range(len(eqn.in_avals)):
            if not eqn.active[k]:
                continue
            in_shape = _shape(eqn.in_avals[k])
            if elementwise and (forward or in_shape == out_shape):
                # Diagonal (or broadcast) derivative: one directional derivative with a ones tangent.
                s = _elementwise_struct(in_shape, out_shape, out_shape)
                out.append(Local(i, k, s, _directional(eqn, i, k, forward, s.val_shape)))
            else:
                out.append(Local(i, k, dense_struct(out_shape, in_shape), _dense(eqn, i, k, forward)))
    return out


def _partial_fn(eqn: Eqn, i: int, k: int, ins: Values) -> Callable[[Any], Any]:
    def f(x: Any) -> Any:
        args = list(ins)
        args[k] = x
        return bind(eqn, args)[i]

    return f


def _directional(eqn: Eqn, i: int, k: int, forward: bool, val_shape: tuple[int, ...]) -> Callable[..., Any]:
    def value(ins: Values, outs: Values) -> Any:
        f = _partial_fn(eqn, i, k, ins)
        x = jnp.asarray(ins[k])
        if forward:
            _, t = jax.jvp(f, (x,), (jnp.ones_like(x),))
        else:
            y, pull = jax.vjp(f, x)
            (t,) = pull(jnp.ones_like(y))
        return jnp.reshape(t, val_shape)

    return value


def _dense(eqn: Eqn, i: int, k: int, forward: bool) -> Callable[..., Any]:
    def value(ins: Values, outs: Values) -> Any:
        f = _partial_fn(eqn, i, k, ins)
        return (jax.jacfwd if forward else jax.jacrev)(f)(jnp.asarray(ins[k]))

    return value


CUSTOM = frozenset({"custom_jvp_call", "custom_vjp_call"})


def local_partials(eqn: Eqn) -> list[Local] | None:
    """The nonzero local partials of ``eqn``, or None when there is no rule for its primitive."""
    name = eqn.name
    if name in ZERO:
        return []
    if name in CUSTOM:
        return _custom(eqn)
    if name in STRUCTURAL:
        return STRUCTURAL[name](eqn)
    return _elementwise(eqn)
