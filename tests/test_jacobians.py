"""Cross-country elimination gives jax.jacfwd's Jacobian for every order, and counts what it costs."""

import random

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from edgesnn.errors import OptionError, UnsupportedError  # noqa: E402
from tools.jacobians import clear_cache, counts, graph_of, jacobian, search_order, vertices  # noqa: E402
from tools.jacobians.tasks import PUBLISHED, benchmark_tasks, cell_tasks  # noqa: E402
from tools.train.surrogate import make_spike_fn  # noqa: E402

TASKS = {t.name: t for t in benchmark_tasks()}
SCALAR = ["RoeFlux_1d", "RobotArm_6DOF", "HumanHeartDipole", "PropaneCombustion", "BlackScholes_Jacobian"]
# The transformer encoder's compile alone would take most of this file's budget; tools/bench/jacobians.py
# checks all its orders against jacfwd.
VECTOR = ["RoeFlux_3d", "MLP"]


def assert_same(ours, reference):
    """Equal leaf by leaf, to float32 tolerance relative to the largest entry of the whole Jacobian."""
    a, b = jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(reference)
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(reference)
    scale = max(float(jnp.max(jnp.abs(x))) for x in b)
    for x, y in zip(a, b, strict=True):
        assert x.shape == y.shape
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=1e-5 * scale)


def random_orders(fn, args, argnums, n, seed=0):
    numbers = list(vertices(fn, *args, argnums=argnums))
    rng = random.Random(seed)
    return [rng.sample(numbers, len(numbers)) for _ in range(n)]


def test_every_named_order_and_random_orders_match_jacfwd():
    task = TASKS["HumanHeartDipole"]
    reference = jax.jacfwd(task.fn, argnums=task.argnums)(*task.args)
    search_order(task.fn, *task.args, argnums=task.argnums, iterations=100)
    orders = ["forward", "reverse", "markowitz", "search", *random_orders(task.fn, task.args, task.argnums, 2)]
    for order in orders:
        assert_same(jacobian(task.fn, order=order, argnums=task.argnums)(*task.args), reference)


# Compiling is what costs here, so each published task gets one random order in this file;
# tools/bench/jacobians.py checks every named order of every task against jacfwd at batch 512.
@pytest.mark.parametrize("name", SCALAR + VECTOR)
def test_published_tasks_match_jacfwd_in_a_random_order(name):
    task = TASKS[name]
    reference = jax.jacfwd(task.fn, argnums=task.argnums)(*task.args)
    (order,) = random_orders(task.fn, task.args, task.argnums, 1)
    fn = jacobian(task.fn, order=order, argnums=task.argnums)
    assert_same(jax.jit(fn)(*task.args) if name in VECTOR else fn(*task.args), reference)


# LIF's update is adaptive LIF's without the adaptation; the benchmark checks the LIF cell in every order.
@pytest.mark.parametrize("task", cell_tasks(n=4, n_in=3)[1:], ids=lambda t: t.name)
def test_neuron_cells_match_jacfwd_with_respect_to_parameters_and_state(task):
    reference = jax.jacfwd(task.fn, argnums=task.argnums)(*task.args)
    # The surrogate spike has a nonzero custom derivative: the Jacobian is not the Heaviside's zero.
    assert float(jnp.max(jnp.abs(reference.z[1].v))) > 0
    (order,) = random_orders(task.fn, task.args, task.argnums, 1)
    assert_same(jacobian(task.fn, order=order, argnums=task.argnums)(*task.args), reference)


def structural_zoo(x, m):
    """Slices, concatenation, padding, reversal, cumulative sums, reshapes, transposes, batched products, max,
    where, clamp, split, stack."""
    a, b = jnp.split(x, 2)
    y = jnp.concatenate([jnp.flip(a) * b, jnp.pad(x[1:3], (1, 2)), jnp.cumsum(x)])
    z = (m.T @ jnp.reshape(y[:6], (2, 3)).T).reshape(-1)
    z = z + jnp.einsum("bij,bj->bi", jnp.stack([m, jnp.sin(m)]), jnp.stack([a, b])).reshape(-1)[:4]
    w = jnp.where(z > 0.1, jnp.exp(z), jnp.clip(z, -0.5, 0.05)) * jnp.max(m, axis=0).sum()
    return jnp.tanh(w).astype(jnp.float32), jnp.sum(x**3) / jnp.linalg.norm(m)


def test_structural_primitives_match_jacfwd_in_random_orders():
    x, m = jnp.array([0.3, -0.2, 0.5, 0.9]), jnp.array([[0.2, -0.4], [0.7, 0.1], [0.3, 0.5]])
    reference = jax.jacfwd(structural_zoo, argnums=(0, 1))(x, m)
    for order in ["reverse", *random_orders(structural_zoo, (x, m), (0, 1), 1)]:
        assert_same(jacobian(structural_zoo, order=order, argnums=(0, 1))(x, m), reference)


def test_custom_vjp_functions_use_their_own_rule():
    @jax.custom_vjp
    def straight_through(x):
        return jnp.round(x)

    # A surrogate like the spike's: the derivative of round is replaced by a bump.
    straight_through.defvjp(lambda x: (jnp.round(x), x), lambda x, g: (g / (1.0 + (x - jnp.round(x)) ** 2),))
    f = lambda x: straight_through(x * 2.0) * x  # noqa: E731
    x = jnp.array([0.1, 0.4, 1.3])
    ours = jacobian(f, order="reverse")(x)
    assert_same(ours, jax.jacrev(f)(x))
    assert float(jnp.min(jnp.abs(jnp.diag(ours)))) > 0


def test_the_surrogate_spike_derivative_is_the_trainers():
    spike = make_spike_fn("fast_sigmoid", 10.0)
    v = jnp.array([0.2, 0.95, 1.05, 2.0])
    ours = jacobian(lambda v: spike(v, jnp.float32(1.0)))(v)
    np.testing.assert_allclose(np.diag(np.asarray(ours)), 1.0 / (1.0 + 10.0 * np.abs(np.asarray(v) - 1.0)) ** 2,
                               rtol=1e-6)  # fmt: skip


def test_scalar_graph_costs_are_markowitz_degrees():
    # v = x * y has two predecessors and two successors: eliminating it costs 2 x 2 products.
    def f(x, y):
        v = x * y
        return jnp.sin(v), jnp.cos(v)

    for order in ("forward", "reverse", "markowitz"):
        assert counts(f, 0.3, 0.5, order=order, argnums=(0, 1)).as_dict() == {"mults": 4, "adds": 0}
    # sin(x) * x: eliminating sin costs one product, added to the direct edge x -> mul.
    value, jac, ops = jacobian(lambda x: jnp.sin(x) * x, has_value=True, count_ops=True)(0.7)
    assert ops == {"mults": 1, "adds": 1}
    np.testing.assert_allclose(value, np.sin(0.7) * 0.7, rtol=1e-6)
    np.testing.assert_allclose(jac, np.cos(0.7) * 0.7 + np.sin(0.7), rtol=1e-6)


def test_counts_on_the_exactly_rebuilt_tasks_match_the_published_best_prior():
    for name in ("RoeFlux_1d", "RobotArm_6DOF", "HumanHeartDipole", "PropaneCombustion"):
        task = TASKS[name]
        assert task.exact
        by_order = {o: counts(task.fn, *task.args, order=o, argnums=task.argnums).mults
                    for o in ("forward", "reverse", "markowitz")}  # fmt: skip
        assert by_order["markowitz"] <= PUBLISHED[name][0]
    # Reverse mode is the published best prior on three of them: the same graph gives the same count.
    assert [counts(TASKS[n].fn, *TASKS[n].args, order="reverse", argnums=TASKS[n].argnums).mults
            for n in ("RoeFlux_1d", "HumanHeartDipole", "PropaneCombustion")] == [364, 172, 90]  # fmt: skip


def test_the_search_beats_markowitz_and_is_cached_per_function():
    clear_cache()
    task = TASKS["RoeFlux_1d"]
    found = search_order(task.fn, *task.args, argnums=task.argnums, iterations=400)
    markowitz = counts(task.fn, *task.args, order="markowitz", argnums=task.argnums).mults
    assert found.mults < markowitz
    assert counts(task.fn, *task.args, order="search", argnums=task.argnums).mults == found.mults
    graph = graph_of(task.fn, *task.args, argnums=task.argnums)
    assert sorted(found.order) == sorted(graph.intermediates)


def test_unsupported_primitives_are_named_with_their_equation():
    f = lambda x: jax.lax.cummax(x * 2.0, axis=0)  # noqa: E731
    with pytest.raises(UnsupportedError, match=r"cummax.*equation 2"):
        jacobian(f)(jnp.ones(3))


def test_explicit_orders_must_list_every_intermediate_once():
    f = lambda x: jnp.sin(jnp.cos(x) * x)  # noqa: E731
    numbers = list(vertices(f, 0.3))
    with pytest.raises(OptionError, match="exactly once"):
        jacobian(f, order=numbers[:-1])(0.3)
    with pytest.raises(OptionError, match="not the number of an equation output"):
        jacobian(f, order=[*numbers, 99])(0.3)
    with pytest.raises(OptionError, match="expected one of forward"):
        jacobian(f, order="sideways")(0.3)
