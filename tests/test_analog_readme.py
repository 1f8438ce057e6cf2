"""Every behaviour the README's "Analog gain-cell attention" section states, shown here."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

pytest.importorskip("serial")

import edgesnn  # noqa: E402
from edgesnn.engine._gaincell import quantise  # noqa: E402
from edgesnn.errors import DeviceError  # noqa: E402
from edgesnn.graph import GELU, LayerNorm, PositionEmbedding, ReLU, SlidingWindowAttention, TokenEmbedding  # noqa: E402
from edgesnn.graph.attention import MAC_COEFFICIENTS  # noqa: E402
from edgesnn.graph.decoder import decoder_graph  # noqa: E402
from edgesnn.model import Model  # noqa: E402
from firmware_bridges.analog.device import AnalogDevice  # noqa: E402
from firmware_bridges.analog.link import BoardLink, open_port  # noqa: E402
from tests.analog_helpers import analog_bridge, board_on_pty, bundle, emulator_faults  # noqa: E402
from tests.conformance._models import small_model, spikes  # noqa: E402
from tests.transformer_helpers import tiny_model, tiny_params, token_feed  # noqa: E402

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def section() -> str:
    """The README's "Analog gain-cell attention" section."""
    return README.read_text(encoding="utf-8").split("## Analog gain-cell attention", 1)[1].split("\n## ")[0]


def test_the_snippet_runs_on_a_character_model(tmp_path, monkeypatch) -> None:
    (snippet,) = re.findall(r"```python\n(.*?)```", section(), flags=re.S)
    model = Model(decoder_graph(tiny_params(vocab=97, d=16, max_len=32), num_heads=2, window=8), dt_s=1e-3)
    (tmp_path / "lm.esnn").write_bytes(bundle(model))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(snippet, str(README), "exec"), scope)  # noqa: S102 - the README's own code
    assert scope["logits"].shape == (1, 97)
    # the saved state holds every layer's cells: a fresh session from it steps on identically
    again = model.session(numerics="gaincell")
    again.load_state(scope["saved"])
    x = np.array([[5]], np.float32)
    np.testing.assert_array_equal(again.step(x)["logits"], scope["s"].step(x)["logits"])


def test_the_decoder_is_built_from_the_named_nodes_and_its_window_is_state() -> None:
    graph = tiny_model(window=4).graph
    kinds = {type(n) for n in graph.nodes.values()}
    assert {TokenEmbedding, PositionEmbedding, LayerNorm, GELU, SlidingWindowAttention} <= kinds
    assert ReLU in {type(n) for n in tiny_model(activation="relu").graph.nodes.values()}
    s = tiny_model(window=4).session()
    xs = token_feed(np.arange(10).reshape(1, 10) % 11)
    first = s.run(xs)["logits"]
    s.reset()
    np.testing.assert_array_equal(s.run(xs)["logits"], first)  # reset forgets the window
    assert s.state().count(b"attn/keys") == 2  # two layers' windows in the saved state
    both = tiny_model(window=4).session(batch=2).run(np.concatenate([xs, xs[:, :, :] * 0 + 3], axis=1))["logits"]
    np.testing.assert_allclose(both[:, :1], first, rtol=1e-5, atol=1e-5)  # batched: streams apart


def test_gaincell_numerics_change_attention_only() -> None:
    xs = spikes(10)
    np.testing.assert_array_equal(small_model().session(numerics="gaincell").run(xs)["out"],
                                  small_model().session().run(xs)["out"])  # fmt: skip
    lm, tokens = tiny_model(window=6), token_feed(np.arange(12).reshape(1, 12) % 11)
    assert not np.allclose(lm.session(numerics="gaincell").run(tokens)["logits"], lm.session().run(tokens)["logits"])


def test_the_device_constants_are_the_nodes_fields_with_the_papers_defaults() -> None:
    node = tiny_model().graph.nodes["b0.attn"]
    assert (node.q_levels, node.q_max, node.kv_levels, node.kv_max_v) == (16, 1.0, 8, 0.9)
    assert (node.decay_per_step, node.offset_v, node.input_v) == (1.6e-4, 0.45, 0.9)
    assert (node.score_saturation, node.out_saturation, node.out_levels, node.array_width) == (80.0, 40.0, 32, 64)
    assert node.mac == "polynomial" and node.linear_gain == 19.3
    np.testing.assert_array_equal(node.mac_coefficients, np.float32(MAC_COEFFICIENTS))
    with pytest.raises(edgesnn.errors.NodeValidationError):
        node.replace(kv_levels=1)
    # the read-out grid: multiples of 2/31, where a saturated 1 rounds to 32/31
    assert quantise(np.array([1.0, 0.5, -1.0]), 32, 2.0) == pytest.approx([32 / 31, 16 / 31, -32 / 31])


def test_the_coefficients_fall_by_the_input_voltage_within_each_group() -> None:
    c = np.array(MAC_COEFFICIENTS)
    for group in (c[0:4], c[4:7], c[7:9]):  # i = 0, 1, 2: j = 0..3-i
        np.testing.assert_allclose(group[1:] / group[:-1], 0.9, rtol=1e-6)


def _device(url: str) -> AnalogDevice:
    return AnalogDevice(BoardLink(open_port(url), timeout_s=0.2, tries=3))


def test_a_lost_or_damaged_reply_is_asked_for_again_and_not_run_twice() -> None:
    lm = tiny_model(window=6)
    tokens = token_feed(np.arange(8).reshape(1, 8) % 11)
    with board_on_pty(emulator_faults(drop_at="7", flip_at="12")) as (board, url):  # two replies of token 1, 2
        dev = _device(url)
        with dev.open_session(dev.load_model(bundle(lm))) as s:
            got = s.run(tokens)["logits"]
            assert dev.client.link.faults == {"timeout": 1, "crc": 1}
            assert board.layers[0].count == 8  # eight tokens written once each
        dev.close()
    np.testing.assert_allclose(got, lm.session(numerics="gaincell").run(tokens)["logits"], rtol=1e-5, atol=1e-5)


def test_a_restarted_board_gets_its_layers_back_from_the_hosts_copy() -> None:
    lm = tiny_model(window=6)
    tokens = token_feed(np.arange(8).reshape(1, 8) % 11)
    with board_on_pty(emulator_faults(restart_at="20")) as (_, url):
        dev = _device(url)
        with dev.open_session(dev.load_model(bundle(lm))) as s:
            got = s.run(tokens)["logits"]
        assert dev.client.restarts == 1
        dev.close()
    np.testing.assert_allclose(got, lm.session(numerics="gaincell").run(tokens)["logits"], rtol=1e-5, atol=1e-5)


def test_a_silent_board_fails_the_step_and_leaves_the_session_as_before() -> None:
    from edgesnn.serve.errors import status_for

    lm = tiny_model(window=6)
    tokens = token_feed(np.arange(8).reshape(1, 8) % 11)
    with board_on_pty(emulator_faults(stall_at=14, stall_s=0.8)) as (_, url):
        dev = _device(url)
        with dev.open_session(dev.load_model(bundle(lm))) as s:
            s.run(tokens[:2])
            before = s.state()
            with pytest.raises(DeviceError, match="did not answer") as err:
                s.step(tokens[2])
            assert s.state() == before
            assert status_for(err.value)[0].name == "UNAVAILABLE"
        dev.close()


def test_the_bridge_serves_an_emulated_board_that_says_so() -> None:
    with analog_bridge() as running, edgesnn.connect(running.address) as dev:
        caps = dev.capabilities()
    assert caps.simulated and caps.device_kind == "analog-gaincell" and caps.numerics == "gaincell"


def test_frames_are_length_prefixed_msgpack_with_a_crc32_and_a_sequence_number() -> None:
    import struct
    import zlib

    import msgpack

    from firmware_bridges.analog.frames import encode

    frame = encode({"seq": 7, "cmd": "caps"})
    (length,) = struct.unpack_from("<I", frame, 2)
    body = frame[6 : 6 + length]
    assert msgpack.unpackb(body) == {"seq": 7, "cmd": "caps"}
    assert struct.unpack_from("<I", frame, 6 + length)[0] == zlib.crc32(frame[2 : 6 + length])


def test_the_serial_port_is_any_pyserial_url_and_pyserial_comes_with_the_events_extra() -> None:
    import tomllib

    port = open_port("loop://")  # pyserial's loopback URL: what is written comes back
    port.write(b"abc")
    assert port.read(3) == b"abc"
    port.close()
    extras = tomllib.loads((README.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "pyserial" in extras["events"]
