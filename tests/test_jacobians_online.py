"""Online (forward-mode) training: BPTT's gradient where the traces are exact, constant memory in T, bundles."""

import pytest

jax = pytest.importorskip("jax")
jnp = jax.numpy

from edgesnn.errors import OptionError  # noqa: E402
from tools.train import loss as L  # noqa: E402
from tools.train.config import config_from_dict  # noqa: E402
from tools.train.models import build_network, forward, init_params  # noqa: E402
from tools.train.online import make_online_gradients  # noqa: E402
from tools.train.surrogate import make_spike_fn  # noqa: E402


def small(kind="feedforward", neuron="adlif", **model):
    raw = {"model": {"kind": kind, "neuron": neuron, "hidden": [4], "weight_scale": 4.0, "native_kernels": False,
                     "train_threshold": True, **model},
           "loss": {"readout": "mean", "max_rate_hz": 50.0}, "method": "cascade",
           "train": {"online": True}}  # fmt: skip
    cfg = config_from_dict(raw)
    return cfg, build_network(cfg, (3,), 3)


def gradient_pair(cfg, net):
    """(online, BPTT) gradient functions of one small batch, each compiled once."""
    spike = make_spike_fn("fast_sigmoid", 10.0)
    x = (jax.random.uniform(jax.random.key(1), (2, 20, 3)) < 0.4).astype(jnp.float32)
    y = jnp.array([0, 2])

    def bptt(p):
        trace, spikes = forward(net, spike, p, jnp.swapaxes(x, 0, 1), record=True)
        return L.cross_entropy(L.logits(trace, "mean"), y) + L.rate_penalty(spikes, net.dt_s, 50.0)

    online = jax.jit(make_online_gradients(net, spike, cfg.loss, "markowitz"))
    return lambda p: (online(p, x, y, None)[0], jax.jit(jax.grad(bptt))(p))


def assert_close(ours, reference, rtol):
    for a, b in zip(jax.tree_util.tree_leaves(ours), jax.tree_util.tree_leaves(reference), strict=True):
        assert float(jnp.max(jnp.abs(a - b))) <= rtol * float(jnp.max(jnp.abs(b))) + 1e-9


def test_a_feedforward_layer_gets_bptts_gradient():
    cfg, net = small()
    ours, reference = gradient_pair(cfg, net)(init_params(net, cfg, jax.random.key(0)))
    assert jax.tree_util.tree_structure(ours) == jax.tree_util.tree_structure(reference)
    assert_close(ours, reference, 1e-4)


def test_recurrent_weights_are_e_prop_exact_only_without_recurrence():
    cfg, net = small("recurrent", "lif")
    params = init_params(net, cfg, jax.random.key(0))
    silent = jax.tree_util.tree_map(lambda a: a, params)
    silent["layers"][0]["w_rec"] = jnp.zeros_like(silent["layers"][0]["w_rec"])
    pair = gradient_pair(cfg, net)
    assert_close(*pair(silent), 1e-4)
    ours, reference = pair(params)
    gap = float(jnp.max(jnp.abs(ours["layers"][0]["w"] - reference["layers"][0]["w"])))
    assert gap > 1e-3 * float(jnp.max(jnp.abs(reference["layers"][0]["w"])))  # the dropped recurrent paths


def test_the_online_gradient_needs_the_same_memory_at_any_t():
    # XLA's buffers of the compiled gradient (tools/bench/jacobians.py --online sets BPTT's, linear in T, beside them).
    cfg, net = small("recurrent", "lif")
    params = init_params(net, cfg, jax.random.key(0))
    grads = jax.jit(make_online_gradients(net, make_spike_fn(), cfg.loss, "markowitz"))

    def temp_bytes(steps):
        x = jax.ShapeDtypeStruct((2, steps, 3), jnp.float32)
        y = jax.ShapeDtypeStruct((2,), jnp.int32)
        return grads.lower(params, x, y, None).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(50) == temp_bytes(500_000)


def test_online_runs_train_and_export_like_every_run(tmp_path):
    from tools.train import train

    raw = {"name": "online", "epochs": 1, "batch_size": 8, "method": "cascade",
           "data": {"kind": "synthetic", "n_classes": 3, "channels": 6, "n_train": 16, "n_val": 8, "n_test": 8,
                    "duration_s": 0.012},
           "model": {"kind": "recurrent", "neuron": "adlif", "hidden": [5]}, "loss": {"readout": "mean"},
           "train": {"online": {"enabled": True, "order": "search"}}}  # fmt: skip
    summary = train(config_from_dict(raw), tmp_path, quiet=True)
    assert (tmp_path / "model.esnn").exists() and summary["finished"]


def test_online_refuses_what_it_cannot_train():
    with pytest.raises(OptionError, match="one dense hidden layer"):
        small(hidden=[4, 4])
    with pytest.raises(OptionError, match='readout "mean"'):
        build_network(config_from_dict({"model": {"hidden": [4]}, "train": {"online": True}}), (3,), 3)
    with pytest.raises(OptionError, match="train/online/order"):
        config_from_dict({"train": {"online": {"enabled": True, "order": "sideways"}}})


def test_the_comparison_measures_checkpointed_step_memory_and_plots_it(tmp_path):
    from tools.bench import jacobians as bench

    def mib(mode, steps):
        return bench._step_memory_mib(bench._online_config("recurrent", mode, "", 8, 1, 4, 2), steps, 3, 2)

    rows = {"bptt": [[60, mib("bptt", 60)], [240, mib("bptt", 240)]], "checkpointed": [[240, mib("checkpointed", 240)]],
            "online": [[60, 1.0], [240, 1.0]]}  # fmt: skip
    assert rows["bptt"][1][1] > 3 * rows["bptt"][0][1]  # BPTT keeps every step
    assert rows["checkpointed"][0][1] < rows["bptt"][1][1]  # checkpointing keeps chunk states only
    result = {"memory": {"recurrent": {"step_memory_mib": rows, "bptt_mib_per_step": 0.01, "budget_mib": 64.0,
                                       "bptt_limit_steps": 5000}}}  # fmt: skip
    bench.plot_memory(result, tmp_path / "memory.png")
    assert (tmp_path / "memory.png").read_bytes().startswith(b"\x89PNG")
