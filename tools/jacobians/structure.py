"""Sparse Jacobian blocks: which dimensions are diagonal, which are constant, and what products cost.

A block ``J = d out / d in`` has the logical shape ``out_shape + in_shape``. Its values are kept as
an array ``val`` whose dimensions are the out dimensions followed by the in dimensions that are not
*paired*: out dimension ``k`` paired with in dimension ``pairs[k]`` means ``J`` is zero off the
diagonal of those two indices, so the diagonal is stored once (an elementwise map is all pairs, a
matrix product pairs its batch dimensions). A ``val`` dimension of size 1 where the logical size is
larger is *replicated*: the block is constant along it (``c * I``, broadcasting, summing), so the
constant is stored once. ``structural`` blocks are index maps (broadcast, transpose, reshape,
slice, sum): composing with one moves or sums entries and multiplies nothing.

Costs follow Graphax: a product of two blocks costs one multiplication per point of the product's
index space (sizes of replicated labels count 1), structural factors cost none; additions are the
summed terms of contractions plus one per entry when two blocks are accumulated.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import string
from collections.abc import Callable

import jax.numpy as jnp

Array = object  # a jax or numpy array; kept loose so the counting path never needs JAX values


@dataclasses.dataclass(frozen=True)
class Struct:
    """The static description of one Jacobian block (see the module docstring)."""

    out_shape: tuple[int, ...]
    in_shape: tuple[int, ...]
    pairs: tuple[int | None, ...]
    val_shape: tuple[int, ...]
    structural: bool = False

    @property
    def free_in(self) -> tuple[int, ...]:
        """In dimensions stored in ``val`` (not paired with an out dimension), ascending."""
        paired = set(p for p in self.pairs if p is not None)
        return tuple(j for j in range(len(self.in_shape)) if j not in paired)

    @property
    def size(self) -> int:
        """Number of stored values."""
        return math.prod(self.val_shape)


def dense_struct(out_shape: tuple[int, ...], in_shape: tuple[int, ...], structural: bool = False) -> Struct:
    """A block with every value stored."""
    return Struct(tuple(out_shape), tuple(in_shape), (None,) * len(out_shape), tuple(out_shape) + tuple(in_shape),
                  structural)  # fmt: skip


def identity_struct(shape: tuple[int, ...]) -> Struct:
    """The identity map on ``shape``: every dimension paired, the value 1 stored once."""
    return Struct(tuple(shape), tuple(shape), tuple(range(len(shape))), (1,) * len(shape), True)


#: Products whose index space (per example: the multiplications) is at most this many points run as
#: a fused multiply-and-sum instead of einsum. Measured on the cell steps (16 neurons, 8 inputs) at
#: batch 512: einsum took 2-4x longer there; the MLP's larger products stay faster as einsum.
SMALL_PRODUCT = 4096


@dataclasses.dataclass(frozen=True)
class Plan:
    """How to form a product or a sum of blocks: the result's structure, its cost, and the arithmetic."""

    result: Struct
    mults: int
    adds: int
    apply: Callable[..., Array]


class _Labels:
    """Union-find over (side, dimension) nodes; each class becomes one einsum letter."""

    def __init__(self) -> None:
        self.parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(self, x: tuple[str, int]) -> tuple[str, int]:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            x = self.parent[x]
        return x

    def union(self, a: tuple[str, int], b: tuple[str, int]) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[ra] = rb


@functools.lru_cache(maxsize=65536)
def compose_plan(b: Struct, a: Struct) -> Plan:
    """Plan the product ``b @ a`` of blocks ``a = d mid / d in`` and ``b = d out / d mid``."""
    if b.in_shape != a.out_shape:
        raise ValueError(f"cannot compose blocks over {b.in_shape} and {a.out_shape}")
    uf = _Labels()
    for k, p in enumerate(b.pairs):
        if p is not None:
            uf.union(("o", k), ("m", p))
    for k, p in enumerate(a.pairs):
        if p is not None:
            uf.union(("m", k), ("i", p))
    a_dims = [uf.find(("m", k)) for k in range(len(a.out_shape))] + [uf.find(("i", j)) for j in a.free_in]
    b_dims = [uf.find(("o", k)) for k in range(len(b.out_shape))] + [uf.find(("m", j)) for j in b.free_in]
    out_labels = [uf.find(("o", k)) for k in range(len(b.out_shape))]
    in_labels = [uf.find(("i", j)) for j in range(len(a.in_shape))]
    pairs = tuple(in_labels.index(lab) if lab in in_labels else None for lab in out_labels)
    res_in = [lab for lab in in_labels if lab not in out_labels]
    res_labels = out_labels + res_in
    true_size: dict[tuple[str, int], int] = {}
    for k, n in enumerate(b.out_shape):
        true_size[uf.find(("o", k))] = n
    for k, n in enumerate(a.out_shape):
        true_size[uf.find(("m", k))] = n
    for j, n in enumerate(a.in_shape):
        true_size[uf.find(("i", j))] = n
    a_size = dict(zip(a_dims, a.val_shape, strict=True))
    b_size = dict(zip(b_dims, b.val_shape, strict=True))
    # A label is stored at full size in the product if either factor stores it at full size.
    full = {lab for lab, n in (*a_size.items(), *b_size.items()) if n > 1}
    size = {lab: (true_size[lab] if lab in full else 1) for lab in set(a_dims) | set(b_dims)}
    contracted = [lab for lab in size if lab not in res_labels]
    # Contracted labels that one factor stores once: sum the other factor over them first (adds only).
    pre_a = [lab for lab in contracted if lab in a_size and a_size[lab] > 1 and b_size.get(lab, 1) == 1]
    pre_b = [lab for lab in contracted if lab in b_size and b_size[lab] > 1 and a_size.get(lab, 1) == 1]
    # Contracted labels both store once: the sum is a count, a scale factor.
    scale = math.prod(true_size[lab] for lab in contracted if lab not in full)
    space = [lab for lab in size if lab not in pre_a and lab not in pre_b]
    mults = 0 if (a.structural or b.structural) else math.prod(size[lab] for lab in space)
    val_shape = tuple(size.get(lab, 1) for lab in res_labels)
    result = Struct(b.out_shape, a.in_shape, pairs, val_shape, a.structural and b.structural)
    a_total, b_total = math.prod(a.val_shape), math.prod(b.val_shape)
    pre_adds = (a_total - a_total // math.prod(a_size[lab] for lab in pre_a)) + (
        b_total - b_total // math.prod(b_size[lab] for lab in pre_b)
    )
    adds = pre_adds + max(math.prod(size[lab] for lab in space) - math.prod(val_shape), 0)
    letters = {lab: string.ascii_letters[i] for i, lab in enumerate(size)}
    pre = set(pre_a) | set(pre_b)  # summed away before the product (a size-1 axis on the other side)
    a_keep = [d for d in a_dims if d not in pre]
    b_keep = [d for d in b_dims if d not in pre]
    spec = (
        "".join(letters[d] for d in a_keep) + "," + "".join(letters[d] for d in b_keep) + "->"
        + "".join(letters[d] for d in res_labels)
    )  # fmt: skip
    a_sum = tuple(i for i, d in enumerate(a_dims) if d in pre)
    b_sum = tuple(i for i, d in enumerate(b_dims) if d in pre)
    a_target = tuple(size[d] for d in a_keep)
    b_target = tuple(size[d] for d in b_keep)

    # Without contraction, and with both factors' labels in the result's order, the product is a
    # broadcasting multiply (the common case: chains of elementwise maps), far cheaper than einsum.
    elementwise = not [lab for lab in size if lab not in res_labels and lab not in pre] and all(
        [lab for lab in res_labels if lab in keep] == keep for keep in (a_keep, b_keep)
    )
    a_expand = tuple(size[lab] if lab in a_keep else 1 for lab in res_labels)
    b_expand = tuple(size[lab] if lab in b_keep else 1 for lab in res_labels)
    # A small product as a broadcast multiply summed over the contracted labels: XLA fuses the
    # multiply into the reduction, where a dot_general of tiny matrices (batched by vmap) costs a
    # call per matrix. The same multiplications, another order of the sum.
    summed = [lab for lab in size if lab not in res_labels and lab not in pre]
    every = res_labels + summed
    short = not elementwise and math.prod(size[lab] for lab in summed) <= SMALL_PRODUCT
    a_perm = [a_keep.index(lab) for lab in every if lab in a_keep]
    b_perm = [b_keep.index(lab) for lab in every if lab in b_keep]
    a_full = tuple(size[lab] if lab in a_keep else 1 for lab in every)
    b_full = tuple(size[lab] if lab in b_keep else 1 for lab in every)
    sum_axes = tuple(range(len(res_labels), len(every)))

    def apply(bval: Array, aval: Array) -> Array:
        if a_sum:
            aval = jnp.sum(aval, axis=a_sum)
        if b_sum:
            bval = jnp.sum(bval, axis=b_sum)
        if elementwise:
            a_in = jnp.reshape(jnp.broadcast_to(aval, a_target), a_expand)
            b_in = jnp.reshape(jnp.broadcast_to(bval, b_target), b_expand)
            out = a_in * b_in
        elif short:
            a_in = jnp.reshape(jnp.transpose(jnp.broadcast_to(aval, a_target), a_perm), a_full)
            b_in = jnp.reshape(jnp.transpose(jnp.broadcast_to(bval, b_target), b_perm), b_full)
            out = jnp.sum(a_in * b_in, axis=sum_axes)
        else:
            out = jnp.einsum(spec, jnp.broadcast_to(aval, a_target), jnp.broadcast_to(bval, b_target))
        out = jnp.broadcast_to(out, val_shape) if out.shape != val_shape else out
        return out * scale if scale != 1 else out

    return Plan(result, mults, adds, apply)


def _unpair(s: Struct, keep: set[int]) -> tuple[Struct, Callable[[Array], Array]]:
    """The same block with only the out dimensions in ``keep`` left paired (diagonals spread out)."""
    drop = [k for k, p in enumerate(s.pairs) if p is not None and k not in keep]
    if not drop:
        return s, lambda v: v
    pairs = tuple(p if k not in drop else None for k, p in enumerate(s.pairs))
    new = Struct(s.out_shape, s.in_shape, pairs, (), s.structural)
    old_free, new_free = s.free_in, new.free_in
    n_out = len(s.out_shape)
    val_shape = list(s.val_shape[:n_out])
    for k in drop:
        val_shape[k] = s.out_shape[k]
    val_shape += [s.val_shape[n_out + old_free.index(j)] if j in old_free else s.in_shape[j] for j in new_free]
    new = dataclasses.replace(new, val_shape=tuple(val_shape))

    def apply(v: Array) -> Array:
        # Insert the freed in dimensions (size 1), then multiply by an eye on each (out k, in pairs[k]).
        shape = list(v.shape[:n_out]) + [v.shape[n_out + old_free.index(j)] if j in old_free else 1 for j in new_free]
        v = jnp.reshape(v, shape)
        for k in drop:
            n = s.out_shape[k]
            eye_shape = [1] * len(shape)
            eye_shape[k] = n
            eye_shape[n_out + new_free.index(s.pairs[k])] = n
            v = v * jnp.eye(n, dtype=v.dtype).reshape(eye_shape)
        return jnp.broadcast_to(v, new.val_shape)

    return new, apply


@functools.lru_cache(maxsize=65536)
def add_plan(x: Struct, y: Struct) -> Plan:
    """Plan the sum of two blocks of the same logical shape (the common structure is kept)."""
    if (x.out_shape, x.in_shape) != (y.out_shape, y.in_shape):
        raise ValueError("cannot add blocks of different shapes")
    keep = {k for k, (p, q) in enumerate(zip(x.pairs, y.pairs, strict=True)) if p is not None and p == q}
    xs, fx = _unpair(x, keep)
    ys, fy = _unpair(y, keep)
    val_shape = tuple(max(m, n) for m, n in zip(xs.val_shape, ys.val_shape, strict=True))
    result = dataclasses.replace(xs, val_shape=val_shape, structural=x.structural and y.structural)

    def apply(xv: Array, yv: Array) -> Array:
        return fx(xv) + fy(yv)

    return Plan(result, 0, math.prod(val_shape), apply)


def materialise(s: Struct, val: Array) -> Array:
    """The block as a dense array of shape ``out_shape + in_shape``."""
    dense, f = _unpair(s, set())
    return jnp.broadcast_to(f(val), dense.out_shape + dense.in_shape)
