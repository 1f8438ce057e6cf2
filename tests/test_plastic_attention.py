"""Plasticity attention: the float layer against a whole-sequence closed form, 8-bit and Loihi integers exactly."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest

from edgesnn.bundle import read_bundle, write_bundle
from edgesnn.engine import SessionOptions
from edgesnn.engine._plastic import clamp_gain
from edgesnn.errors import BundleValidationError, NodeValidationError, StateError, UnsupportedError
from edgesnn.graph import LIF, Graph, Input, Linear, Output, PlasticAttention
from edgesnn.learn.rule import quantise as rule_quantise
from edgesnn.model import Model

D, HEADS, SLOTS, T, BATCH = 8, 2, 3, 12, 2


def _fields(seed: int = 0, **changes) -> dict:
    rng = np.random.default_rng(seed)
    fields = dict(w_qkv=0.6 * rng.standard_normal((3 * D, D)), b_qkv=0.1 * rng.standard_normal(3 * D),
                  w_out=0.4 * rng.standard_normal((D, D)), b_out=0.1 * rng.standard_normal(D),
                  w_gate=0.5 * rng.standard_normal(D), b_gate=0.4, num_heads=HEADS, slots=SLOTS,
                  score_saturation=2.0)  # fmt: skip
    return {**fields, **changes}


def _model(**changes) -> Model:
    node = PlasticAttention(**_fields(**changes))
    graph = Graph({"x": Input((D,)), "attn": node, "y": Output((D,))}, [("x", "attn"), ("attn", "y")])
    return Model(graph, dt_s=1e-3)


def _tokens(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((T, BATCH, D)).astype(np.float32)


def _split(f: dict, xs: np.ndarray) -> tuple[np.ndarray, ...]:
    """q, k, v (T, B, H, Dh) and the gates (T, B) of a token sequence, in float64."""
    x = xs.astype(np.float64)
    qkv = x @ np.asarray(f["w_qkv"], np.float64).T + f["b_qkv"]
    q, k, v = (a.reshape(T, BATCH, HEADS, D // HEADS) for a in np.split(qkv, 3, axis=-1))
    return q, k, v, np.clip(x @ f["w_gate"] + f["b_gate"], 0.0, 1.0)


def _closed_form(f: dict, xs: np.ndarray) -> np.ndarray:
    """Outputs (T, B, d) from the memory in closed form: each slot the gate-weighted blend of what was written to it."""
    q, k, v, g = _split(f, xs)
    written = g > 0
    slot = (np.cumsum(written, axis=0) - 1) % SLOTS  # slot of token t, for the written ones
    out = np.zeros((T, BATCH, D))
    for t in range(T):
        for b in range(BATCH):
            wk = np.zeros((HEADS, SLOTS, D // HEADS))
            wv = np.zeros_like(wk)
            for u in range(t + 1):
                if not written[u, b]:
                    continue
                s = slot[u, b]
                later = [r for r in range(u + 1, t + 1) if written[r, b] and slot[r, b] == s]
                keep = g[u, b] * math.prod(1 - g[r, b] for r in later)
                wk[:, s] += keep * k[u, b]
                wv[:, s] += keep * v[u, b]
            a = np.clip(np.einsum("hsd,hd->hs", wk, q[t, b]) / f["score_saturation"], 0, 1)
            out[t, b] = np.einsum("hs,hsd->hd", a, wv).reshape(D) @ np.asarray(f["w_out"], np.float64).T + f["b_out"]
    return out


def test_the_float_layer_equals_the_closed_form_of_the_whole_sequence() -> None:
    f, xs = _fields(), _tokens()
    g = _split(f, xs)[3]
    assert (g == 0).any() and (g == 1).any() and ((g > 0) & (g < 1)).any()  # all three kinds of write occur
    got = _model().session(batch=BATCH).run(xs)["y"]
    np.testing.assert_allclose(got, _closed_form(f, xs), rtol=1e-4, atol=1e-5)
    numpy_run = _model().session(batch=BATCH, options=SessionOptions(backends=("numpy",))).run(xs)["y"]
    np.testing.assert_allclose(numpy_run, got, rtol=1e-5, atol=1e-6)


def test_with_the_gate_open_the_memory_is_a_ring_of_the_last_keys_and_values() -> None:
    f, xs = _fields(w_gate=np.zeros(D), b_gate=1.0), _tokens()
    s = _model(w_gate=np.zeros(D), b_gate=1.0).session(batch=BATCH)
    s.run(xs)
    _, k, v, _ = _split(f, xs)
    plan = s._plan
    for t in range(T - SLOTS, T):  # token t sits in slot t mod SLOTS
        np.testing.assert_allclose(plan.state["attn/keys"][:, :, t % SLOTS], k[t], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(plan.state["attn/values"][:, :, t % SLOTS], v[t], rtol=1e-5, atol=1e-6)
    assert list(plan.state["attn/cursor"]) == [T, T]


def test_streams_are_independent() -> None:
    xs = _tokens()
    both = _model().session(batch=BATCH).run(xs)["y"]
    for b in range(BATCH):
        alone = _model().session(batch=1).run(xs[:, b : b + 1])["y"]
        np.testing.assert_allclose(both[:, b : b + 1], alone, rtol=1e-6, atol=1e-6)


def _qkv32(f: dict, x: np.ndarray) -> tuple[np.ndarray, ...]:
    # The layer's float32 projections, as the session computes them (the quantised parts follow them).
    node = PlasticAttention(**f)
    qkv = x @ np.ascontiguousarray(node.w_qkv.T) + node.b_qkv
    g = np.clip(x @ node.w_gate + np.float32(node.b_gate), 0.0, 1.0)
    return (*(a.reshape(x.shape[0], HEADS, D // HEADS) for a in np.split(qkv, 3, axis=-1)), g)


def test_8_bit_weights_are_the_rule_quantised_after_every_write() -> None:
    f, xs = _fields(weight_bits=8), _tokens()
    s = _model(weight_bits=8).session(batch=BATCH)
    wk = np.zeros((BATCH, HEADS, SLOTS, D // HEADS), np.float32)
    wv = np.zeros_like(wk)
    count = np.zeros(BATCH, np.int64)
    for t in range(T):
        got = s.step(xs[t])["y"]
        q, k, v, g = _qkv32(f, xs[t])
        for b in np.flatnonzero(g > 0):
            slot = count[b] % SLOTS
            count[b] += 1
            for mem, new in ((wk, k), (wv, v)):
                mem[b, :, slot] += g[b] * (new[b] - mem[b, :, slot])
                for h in range(HEADS):  # one shared exponent per stream, head and matrix
                    mantissa, exponent = rule_quantise(mem[b, h], 8)
                    assert np.abs(mantissa).max() <= 127
                    mem[b, h] = np.ldexp(mantissa, exponent)
        np.testing.assert_array_equal(s._plan.state["attn/keys"], wk)
        np.testing.assert_array_equal(s._plan.state["attn/values"], wv)
        a = np.clip(np.einsum("bhsd,bhd->bhs", wk, q) / np.float32(2.0), 0, 1)
        want = np.einsum("bhs,bhsd->bhd", a, wv).reshape(BATCH, D) @ f["w_out"].T + f["b_out"]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert wk.any() and wv.any()


def _fixed(x: float, frac: int) -> int:
    return max(-127, min(127, round(x * 2**frac)))  # round(): ties to even, as np.rint


def _wrap24(x: int) -> int:
    return (x + (1 << 23)) % (1 << 24) - (1 << 23)


def test_loihi_numerics_are_the_integer_rule_exactly() -> None:
    frac = 4
    f = _fields(w_out=np.eye(D), b_out=np.zeros(D), frac_bits=frac)  # so the output is the heads' read itself
    xs = _tokens()
    s = _model(w_out=np.eye(D), b_out=np.zeros(D), frac_bits=frac).session(batch=BATCH, numerics="loihi")
    m, r = clamp_gain(2.0, frac)
    dh = D // HEADS
    wk = [[[[0] * dh for _ in range(SLOTS)] for _ in range(HEADS)] for _ in range(BATCH)]
    wv = [[[[0] * dh for _ in range(SLOTS)] for _ in range(HEADS)] for _ in range(BATCH)]
    count = [0] * BATCH
    for t in range(T):
        got = s.step(xs[t])["y"]
        q, k, v, g = _qkv32(f, xs[t])
        for b in range(BATCH):
            gate = max(0, min(128, round(float(g[b]) * 128)))
            if gate:
                slot = count[b] % SLOTS
                count[b] += 1
                for mem, new in ((wk, k), (wv, v)):
                    for h in range(HEADS):
                        for i in range(dh):
                            old = mem[b][h][slot][i]
                            mem[b][h][slot][i] = old + (gate * (_fixed(float(new[b, h, i]), frac) - old) >> 7)
            for h in range(HEADS):
                qi = [_fixed(float(q[b, h, i]), frac) for i in range(dh)]
                score = [_wrap24(sum(wk[b][h][j][i] * qi[i] for i in range(dh))) for j in range(SLOTS)]
                act = [max(0, min(128, (sc * m) >> r)) for sc in score]
                o = [_wrap24(sum(act[j] * wv[b][h][j][i] for j in range(SLOTS))) for i in range(dh)]
                assert got[b, h * dh : (h + 1) * dh].tolist() == [oi / 2 ** (frac + 7) for oi in o]
    assert np.array_equal(s._plan.state["attn/keys"], np.array(wk)) and np.abs(np.array(wk)).max() <= 127
    assert np.array_equal(s._plan.state["attn/values"], np.array(wv)) and np.array(wv).any()
    assert s._plan.state["attn/keys"].dtype == np.int32


def test_loihi_numerics_stay_close_to_float() -> None:
    xs = _tokens()
    fixed = _model().session(batch=BATCH, numerics="loihi").run(xs)["y"]
    exact = _model().session(batch=BATCH).run(xs)["y"]
    assert np.abs(fixed - exact).max() < 0.1 * np.abs(exact).max()


@pytest.mark.parametrize(("saturation", "frac"), [(2.0, 4), (0.3, 2), (100.0, 7), (1e-3, 0)])
def test_the_clamp_gain_is_a_12_bit_mantissa_of_the_scale(saturation: float, frac: int) -> None:
    m, r = clamp_gain(saturation, frac)
    assert 2048 <= m < 4096
    assert abs(m * 2.0**-r / (2.0 ** (7 - 2 * frac) / saturation) - 1) <= 2**-12


@pytest.mark.parametrize("numerics", ["float", "loihi"])
def test_the_plastic_weights_are_session_state_saved_restored_and_reset(numerics: str) -> None:
    model, xs = _model(weight_bits=8), _tokens()
    s = model.session(batch=BATCH, numerics=numerics)
    s.run(xs[:5])
    saved = s.state()
    later = s.run(xs[5:])["y"]
    s.load_state(saved)
    np.testing.assert_array_equal(s.run(xs[5:])["y"], later)
    other = model.session(batch=BATCH, numerics=numerics)
    other.load_state(saved)
    np.testing.assert_array_equal(other.run(xs[5:])["y"], later)
    s.reset()
    np.testing.assert_array_equal(s.run(xs[:5])["y"], model.session(batch=BATCH, numerics=numerics).run(xs[:5])["y"])
    assert b"attn/keys" in saved and b"attn/cursor" in saved
    with pytest.raises(StateError, match="batch"):
        model.session(batch=1, numerics=numerics).load_state(saved)


def test_the_layer_round_trips_through_a_bundle() -> None:
    model = _model(weight_bits=6, slots=5, frac_bits=3)
    buf = io.BytesIO()
    write_bundle(model, buf)
    back = read_bundle(io.BytesIO(buf.getvalue()))
    assert back.fingerprint == model.fingerprint
    node = back.graph.nodes["attn"]
    assert (node.slots, node.weight_bits, node.frac_bits, node.b_gate) == (5, 6, 3, 0.4)
    for numerics in ("float", "loihi"):
        xs = _tokens()
        np.testing.assert_array_equal(back.session(batch=BATCH, numerics=numerics).run(xs)["y"],
                                      model.session(batch=BATCH, numerics=numerics).run(xs)["y"])  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"num_heads": 3}, "num_heads", "not divisible by 3 heads"),
        ({"w_qkv": np.zeros((12, 5))}, "w_qkv", r"expected shape \(3d, d\)"),
        ({"w_gate": np.zeros(3)}, "w_gate", r"expected shape \(8,\)"),
        ({"b_gate": float("inf")}, "b_gate", "finite"),
        ({"slots": 0}, "slots", ">= 1"),
        ({"slots": 2.0}, "slots", "integer"),
        ({"score_saturation": 0.0}, "score_saturation", "> 0"),
        ({"weight_bits": 1}, "weight_bits", "0 \\(float\\) or 2 to 16"),
        ({"weight_bits": 17}, "weight_bits", "0 \\(float\\) or 2 to 16"),
        ({"frac_bits": 8}, "frac_bits", "at most 7"),
        ({"frac_bits": -1}, "frac_bits", ">= 0"),
    ],
)
def test_bad_fields_are_named(changes: dict, field: str, message: str) -> None:
    with pytest.raises(NodeValidationError, match=message) as err:
        PlasticAttention(**_fields(**changes))
    assert err.value.path == field


def test_a_bundle_names_the_node_and_field_it_cannot_build() -> None:
    from tests.helpers import edit_bundle

    buf = io.BytesIO()
    write_bundle(_model(), buf)
    bad = edit_bundle(buf.getvalue(), manifest=lambda m: m["graph"]["nodes"]["attn"].update(slots=-2))
    with pytest.raises(BundleValidationError, match=">= 1") as err:
        read_bundle(io.BytesIO(bad))
    assert err.value.path == "graph/nodes/attn/slots"


def test_loihi_numerics_refuse_a_graph_mixing_neurons_with_plastic_attention() -> None:
    nodes = {"x": Input((D,)), "attn": PlasticAttention(**_fields()), "fc": Linear(np.eye(D)),
             "lif": LIF(tau_mem_s=np.full(D, 0.01), v_threshold=np.ones(D)), "y": Output((D,))}  # fmt: skip
    graph = Graph(nodes, [("x", "attn"), ("attn", "fc"), ("fc", "lif"), ("lif", "y")])
    model = Model(graph, dt_s=1e-3)
    model.session()  # float numerics run it
    with pytest.raises(UnsupportedError, match="no Loihi plan") as err:
        model.session(numerics="loihi")
    assert err.value.path == "nodes/lif"


def test_the_memory_estimate_covers_the_state() -> None:
    model = _model(slots=7)
    s = model.session(batch=4)
    state = sum(a.nbytes for a in s._plan.state.values())
    assert model.session_bytes(batch=4) > 2 * state


def test_under_loihi_numerics_the_transformer_nodes_around_it_stay_float() -> None:
    from edgesnn.graph import LayerNorm

    rng = np.random.default_rng(4)
    norm = LayerNorm(1 + 0.1 * rng.standard_normal(D), 0.1 * rng.standard_normal(D))
    nodes = {"x": Input((D,)), "ln": norm, "attn": PlasticAttention(**_fields()), "y": Output((D,))}
    stack = Model(Graph(nodes, [("x", "ln"), ("ln", "attn"), ("attn", "y")]), dt_s=1e-3)
    xs = _tokens()
    normed = Model(Graph({"x": Input((D,)), "ln": norm, "y": Output((D,))}, [("x", "ln"), ("ln", "y")]), dt_s=1e-3)
    feed = normed.session(batch=BATCH).run(xs)["y"]
    want = _model().session(batch=BATCH, numerics="loihi").run(feed)["y"]
    np.testing.assert_array_equal(stack.session(batch=BATCH, numerics="loihi").run(xs)["y"], want)


def test_the_shared_exponent_is_the_rules_at_the_edges() -> None:
    from edgesnn.engine._plastic import quantise

    m = 127.0
    blocks = [np.zeros((2, 3)), np.full((2, 3), m), np.full((2, 3), -m * 2.0**-9), np.full((2, 3), (m + 1) / 2),
              np.full((2, 3), m * 2.0**20 + 1.0), np.random.default_rng(3).standard_normal((2, 3)) * 1e-6]  # fmt: skip
    for block in blocks:
        block = block.astype(np.float32)
        block[0, 0] *= 0.37  # a mantissa that rounds
        mantissa, exponent = rule_quantise(block, 8)
        np.testing.assert_array_equal(quantise(block[None], 8)[0], np.ldexp(mantissa, exponent).astype(np.float32))


def test_the_shared_exponent_is_the_rules_over_many_magnitudes() -> None:
    from edgesnn.engine._plastic import quantise

    rng = np.random.default_rng(5)
    blocks = (rng.standard_normal((200, 3, 4)) * 2.0 ** rng.integers(-30, 30, (200, 1, 1))).astype(np.float32)
    blocks[::7, 0, 0] = np.float32(127.0 * 2.0**-3)  # maxima on the boundary of an exponent
    got = quantise(blocks, 8)
    for block, mine in zip(blocks, got, strict=True):
        mantissa, exponent = rule_quantise(block, 8)
        np.testing.assert_array_equal(mine, np.ldexp(mantissa, exponent).astype(np.float32))
