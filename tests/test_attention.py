"""Transformer models step one token per session.step and equal a whole-sequence reference."""

from __future__ import annotations

import io

import numpy as np
import pytest

from edgesnn.bundle import read_bundle, write_bundle
from edgesnn.errors import BundleValidationError, InputError, LimitError, NodeValidationError, StateError
from edgesnn.graph import Graph, Input, Output, SlidingWindowAttention
from edgesnn.graph.decoder import decoder_graph
from edgesnn.model import Model
from tests.transformer_helpers import reference_logits, tiny_model, tiny_params, token_feed

TOKENS = np.random.default_rng(1).integers(0, 11, (3, 20))


@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_stepping_equals_the_whole_sequence_when_the_window_covers_it(activation: str) -> None:
    session = tiny_model(window=24, activation=activation).session(batch=3)
    got = np.stack([session.step(TOKENS[:, t : t + 1].astype(np.float32))["logits"] for t in range(20)], axis=1)
    want = reference_logits(tiny_params(), TOKENS, heads=2, window=24, activation=activation)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)


def test_a_window_shorter_than_the_context_sees_the_last_tokens_only() -> None:
    got = tiny_model(window=5).session(batch=3).run(token_feed(TOKENS))["logits"].transpose(1, 0, 2)
    np.testing.assert_allclose(got, reference_logits(tiny_params(), TOKENS, heads=2, window=5), rtol=1e-4, atol=2e-5)
    full = reference_logits(tiny_params(), TOKENS, heads=2, window=24)
    assert np.allclose(got[:, :5], full[:, :5], atol=2e-5) and not np.allclose(got[:, 5:], full[:, 5:], atol=1e-2)


def test_streams_of_a_batch_are_independent_and_backends_agree() -> None:
    model = tiny_model(window=6)
    batched = model.session(batch=3).run(token_feed(TOKENS))["logits"]
    for b in range(3):
        alone = model.session(options=None).run(token_feed(TOKENS[b : b + 1]))["logits"]
        np.testing.assert_allclose(batched[:, b : b + 1], alone, rtol=1e-5, atol=1e-6)
    from edgesnn.engine import SessionOptions

    numpy_run = model.session(batch=3, options=SessionOptions(backends=("numpy",))).run(token_feed(TOKENS))
    np.testing.assert_allclose(numpy_run["logits"], batched, rtol=1e-5, atol=1e-5)  # the C dense sums in its own order


@pytest.mark.parametrize("numerics", ["float", "gaincell"])
def test_the_window_is_session_state_saved_restored_and_reset(numerics: str) -> None:
    model = tiny_model(window=6)
    s = model.session(batch=3, numerics=numerics)
    xs = token_feed(TOKENS)
    s.run(xs[:8])
    saved = s.state()
    first = s.run(xs[8:])["logits"]
    s.load_state(saved)
    np.testing.assert_array_equal(s.run(xs[8:])["logits"], first)
    other = model.session(batch=3, numerics=numerics)  # a state moves to another session of the model
    other.load_state(saved)
    np.testing.assert_array_equal(other.run(xs[8:])["logits"], first)
    s.reset()
    np.testing.assert_array_equal(
        s.run(xs[:8])["logits"], model.session(batch=3, numerics=numerics).run(xs[:8])["logits"]
    )
    with pytest.raises(StateError, match="batch"):
        model.session(batch=2, numerics=numerics).load_state(saved)


def test_recording_the_window_shows_the_tokens_keys() -> None:
    s = tiny_model(window=4).session()
    s.run(token_feed(TOKENS[:1, :6]))
    state = s.state()
    assert b"b0.attn/keys" in state and b"wpe/position" in state


def test_a_decoder_round_trips_through_a_bundle() -> None:
    cal = [{"q_scale": np.full(2, 0.5), "k_offset": np.full(2, 0.4), "decay_per_step": 1e-3}] * 2
    model = tiny_model(window=6, attention=cal)
    buf = io.BytesIO()
    write_bundle(model, buf)
    back = read_bundle(io.BytesIO(buf.getvalue()))
    assert back.fingerprint == model.fingerprint
    node = back.graph.nodes["b1.attn"]
    assert node.window == 6 and node.decay_per_step == 1e-3 and np.all(node.q_scale == 0.5)
    for numerics in ("float", "gaincell"):
        xs = token_feed(TOKENS)
        np.testing.assert_array_equal(back.session(batch=3, numerics=numerics).run(xs)["logits"],
                                      model.session(batch=3, numerics=numerics).run(xs)["logits"])  # fmt: skip


def _attention(**changes) -> SlidingWindowAttention:
    rng = np.random.default_rng(0)
    fields = dict(w_qkv=rng.standard_normal((12, 4)), b_qkv=np.zeros(12), w_out=np.eye(4), b_out=np.zeros(4),
                  num_heads=2, window=3)  # fmt: skip
    return SlidingWindowAttention(**{**fields, **changes})


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"num_heads": 3}, "num_heads", "not divisible by 3 heads"),
        ({"w_qkv": np.zeros((12, 5))}, "w_qkv", r"expected shape \(3d, d\)"),
        ({"b_out": np.zeros(3)}, "b_out", r"expected shape \(4,\)"),
        ({"window": 0}, "window", ">= 1"),
        ({"q_levels": 1}, "q_levels", ">= 2"),
        ({"mac": "cubic"}, "mac", "polynomial, linear"),
        ({"mac_coefficients": np.ones(7)}, "mac_coefficients", r"\(n \+ 1\)\(n \+ 2\)/2"),
        ({"k_scale": np.ones(3)}, "k_scale", "one value per head"),
        ({"score_saturation": 0.0}, "score_saturation", "> 0"),
        ({"decay_per_step": -1e-4}, "decay_per_step", ">= 0"),
        ({"offset_v": float("nan")}, "offset_v", "finite"),
        ({"window": True}, "window", "integer"),
    ],
)
def test_bad_attention_fields_are_named(changes: dict, field: str, message: str) -> None:
    with pytest.raises(NodeValidationError, match=message) as err:
        _attention(**changes)
    assert err.value.path == field


def test_a_bundle_names_the_node_and_field_it_cannot_build() -> None:
    from tests.helpers import edit_bundle

    buf = io.BytesIO()
    write_bundle(tiny_model(window=6), buf)
    bad = edit_bundle(buf.getvalue(), manifest=lambda m: m["graph"]["nodes"]["b1.attn"].update(num_heads=5))
    with pytest.raises(BundleValidationError, match="not divisible by 5 heads") as err:
        read_bundle(io.BytesIO(bad))
    assert err.value.path == "graph/nodes/b1.attn/num_heads"


def test_shapes_that_do_not_fit_are_graph_errors_naming_the_node() -> None:
    from edgesnn.errors import GraphError

    with pytest.raises(GraphError) as err:
        Graph({"in": Input((5,)), "attn": _attention(), "out": Output((4,))}, [("in", "attn"), ("attn", "out")])
    assert err.value.path == "nodes/attn/input"
    with pytest.raises(NodeValidationError) as err:
        decoder_graph({**tiny_params(), "blocks": [{}]}, num_heads=2, window=4)
    assert err.value.path == "blocks/0/ln_1_w"


def test_bad_tokens_and_a_full_position_table_are_input_errors() -> None:
    s = tiny_model(window=6, max_len=4).session()
    for bad in (11, -1, 2.5):
        with pytest.raises(InputError, match=r"wte takes token ids, whole numbers in \[0, 11\)"):
            s.step(np.array([[bad]], np.float32))
    s.reset()
    s.run(np.zeros((4, 1, 1), np.float32))
    with pytest.raises(InputError, match="wpe has positions for 4 tokens and the session has stepped 4; reset"):
        s.step(np.zeros((1, 1), np.float32))
    s.reset()
    s.step(np.zeros((1, 1), np.float32))


def test_a_window_beyond_the_limits_is_refused_before_allocating() -> None:
    from edgesnn import limits

    with limits.override(delay_steps=100), pytest.raises(LimitError) as err:
        _attention(window=1000)
    assert err.value.path == "window"
    graph = decoder_graph(tiny_params(d=64), num_heads=2, window=100_000)
    with limits.override(session_bytes=1 << 30), pytest.raises(LimitError, match="b0.attn"):
        Model(graph, dt_s=1e-3).session(batch=8)


def test_the_native_backends_c_kernels_equal_the_numpy_kernels() -> None:
    from edgesnn.engine import SessionOptions
    from edgesnn.engine._transformer import NATIVE_KERNELS
    from edgesnn.engine.backends import available_backends

    if "native" not in available_backends() or not NATIVE_KERNELS:
        pytest.skip("the C kernels are not built")
    model = tiny_model(window=5)  # 20 tokens: the window wraps around four times
    runs = {b: model.session(batch=3, options=SessionOptions(backends=(b,))).run(token_feed(TOKENS), outputs=[
        "b0.ln_1", "b0.act", "b1.attn", "logits"]) for b in ("numpy", "native")}  # fmt: skip
    for name, want in runs["numpy"].items():
        np.testing.assert_allclose(runs["native"][name], want, rtol=1e-5, atol=1e-5, err_msg=name)
