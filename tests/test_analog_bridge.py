"""The analog bridge process: the emulated board steps as the runtime's gain-cell numerics, through faults too."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pytest

pytest.importorskip("serial")

import edgesnn  # noqa: E402
from edgesnn.errors import DeviceError, InputError  # noqa: E402
from tests.analog_helpers import analog_bridge, bundle  # noqa: E402
from tests.transformer_helpers import tiny_model, token_feed  # noqa: E402

TOKENS = np.random.default_rng(3).integers(0, 11, (2, 16))
MODEL = tiny_model(window=6, attention=[{"decay_per_step": 0.01, "k_scale": np.full(2, 0.6)}] * 2)


@pytest.fixture(scope="module")
def bridge() -> Iterator[str]:
    with analog_bridge() as running:
        yield running.address


def test_capabilities_say_a_simulated_gaincell_board(bridge: str) -> None:
    with edgesnn.connect(bridge) as dev:
        caps = dev.capabilities()
    assert caps.device_kind == "analog-gaincell" and caps.simulated and caps.numerics == "gaincell"
    assert "LIF" in caps.neuron_models and caps.max_synapses > 0


def test_the_emulated_board_steps_as_the_runtimes_gaincell_numerics(bridge: str) -> None:
    ref = MODEL.session(batch=2, numerics="gaincell")
    xs = token_feed(TOKENS)
    with edgesnn.connect(bridge) as dev, dev.open_session(dev.load_model(bundle(MODEL)), batch=2) as s:
        assert s.backend.endswith("+gaincell-board")
        for t in range(8):
            np.testing.assert_allclose(s.step(xs[t])["logits"], ref.step(xs[t])["logits"], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(s.run(xs[8:])["logits"], ref.run(xs[8:])["logits"], rtol=1e-5, atol=1e-5)
    float_run = MODEL.session(batch=2).run(xs)["logits"]
    assert np.abs(float_run[8:] - ref.run(xs[:8])["logits"]).max() > 0.01  # gain cells are not float


def test_the_window_moves_between_the_board_and_the_runtime(bridge: str) -> None:
    xs = token_feed(TOKENS)
    with edgesnn.connect(bridge) as dev, dev.open_session(dev.load_model(bundle(MODEL)), batch=2) as s:
        s.run(xs[:10])
        saved = s.state()
        ref = MODEL.session(batch=2, numerics="gaincell")
        ref.load_state(saved)
        want = ref.run(xs[10:])["logits"]
        np.testing.assert_allclose(s.run(xs[10:])["logits"], want, rtol=1e-5, atol=1e-5)
        s.load_state(saved)  # the host's window goes back onto the board
        np.testing.assert_allclose(s.run(xs[10:])["logits"], want, rtol=1e-5, atol=1e-5)
        s.reset()
        np.testing.assert_allclose(s.run(xs[:4])["logits"], MODEL.session(batch=2, numerics="gaincell").run(
            xs[:4])["logits"], rtol=1e-5, atol=1e-5)  # fmt: skip
        with pytest.raises(InputError, match="wte takes token ids"):
            s.step(np.full((2, 1), 99, np.float32))


def test_lost_damaged_replies_and_a_board_restart_mid_sequence_are_recovered() -> None:
    # Requests 1-2 open the link (caps), 3-6 load the two layers; then each token writes and queries per layer.
    with analog_bridge("--emulator-args", "--drop-at 9 --flip-at 12 --restart-at 20,41", "--timeout-s", "0.2") as b:
        ref = MODEL.session(batch=2, numerics="gaincell")
        xs = token_feed(TOKENS)
        with edgesnn.connect(b.address) as dev, dev.open_session(dev.load_model(bundle(MODEL)), batch=2) as s:
            got = np.stack([s.step(xs[t])["logits"] for t in range(12)])
        np.testing.assert_allclose(got, ref.run(xs[:12])["logits"], rtol=1e-5, atol=1e-5)
        log = b.log()
    assert re.search(r"query \(seq \d+\): no reply within 0.2 s; asking again", log)  # the 9th request's reply
    assert "failed its CRC32 check; asking again" in log
    assert log.count("rebuilding 2 layers from the host's mirror") == 2


def test_a_stalled_board_fails_the_step_cleanly_and_the_session_recovers() -> None:
    args = ("--emulator-args", "--stall-at 14 --stall-s 1.0", "--timeout-s", "0.1", "--tries", "3")
    with analog_bridge(*args) as running:
        address = running.address
        ref = MODEL.session(batch=2, numerics="gaincell")
        xs = token_feed(TOKENS)
        with edgesnn.connect(address) as dev, dev.open_session(dev.load_model(bundle(MODEL)), batch=2) as s:
            want = ref.run(xs[:6])["logits"]
            np.testing.assert_allclose(s.run(xs[:2])["logits"], want[:2], rtol=1e-5, atol=1e-5)
            with pytest.raises(DeviceError, match="did not answer write .* after 3 tries") as err:
                s.step(xs[2])
            assert err.value.path == "board" and err.value.__cause__.code().name == "UNAVAILABLE"  # the gRPC status
            import time

            time.sleep(1.0)  # the board answers again; the failed step left the session as before it
            np.testing.assert_allclose(s.run(xs[2:6])["logits"], want[2:], rtol=1e-5, atol=1e-5)
