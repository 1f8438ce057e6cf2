"""Learning through the Loihi 2 bridge's RPC: features from Lava, the rule on Lava's engine, the store on the host."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import edgesnn
from edgesnn.errors import InputError, NotFoundError, OptionError
from edgesnn.learn import enable_learning
from tests.conformance._models import N_IN, bundle_bytes, small_model
from tests.loihi_helpers import ROOT, require_bridge

T_EPOCH = 20


def learning_model(**rule):  # noqa: ANN201
    """The conformance network learning on its recurrent LIF layer, with a step the features can take."""
    # Lava's learning engine runs the rule without a class bias and with constant steps.
    rule = {"bias": "none", "step": "constant", **rule}
    return enable_learning(small_model(), "lif", t_epoch=T_EPOCH, learning_rate=0.05, **rule)


def pattern(label: int, steps: int = 2 * T_EPOCH) -> np.ndarray:
    """A class's example: Bernoulli spikes into its own half of the inputs (T, N_IN)."""
    rng = np.random.default_rng(label)
    rates = np.where(np.arange(N_IN) // (N_IN // 2) == label, 0.5, 0.05)
    return (rng.random((steps, N_IN)) < rates).astype(np.float32)


@contextmanager
def bridge(store: Path) -> Iterator[str]:
    cmd = [str(require_bridge()), "-m", "firmware_bridges.loihi2", "--port", "0", "--store", str(store)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening "), f"bridge did not start: {line!r}"
        yield f"127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.terminate()
        proc.wait(30)
        proc.stdout.close()


def test_classes_learned_over_rpc_score_their_examples_and_survive_a_restart(tmp_path: Path) -> None:
    model = bundle_bytes(learning_model())
    with bridge(tmp_path) as address, edgesnn.connect(address, timeout_s=120) as dev:
        assert dev.capabilities().learning
        with dev.open_session(dev.load_model(model)) as s:
            info = s.learn("left", pattern(0))
            assert info["engine"] == "lava-fixed_pt" and info["new"] and info["epochs"] == 2
            assert abs(info["score_after"] - info["target"]) < abs(info["score_before"] - info["target"])
            s.learn("right", pattern(1))
            assert s.classes() == ["left", "right"]
            assert [o.name for o in s.outputs][-1] == "classes"
            for label, name in enumerate(("left", "right")):
                s.reset()
                scores = s.run(pattern(label, 60)[:, None])["classes"]
                assert scores.shape == (60, 1, 2)
                assert s.classes()[int(scores.mean(axis=0)[0].argmax())] == name
    with bridge(tmp_path) as address, edgesnn.connect(address, timeout_s=120) as dev:
        with dev.open_session(dev.load_model(model)) as s:
            assert s.classes() == ["left", "right"]  # restored from the host's store
            s.forget("left")
            assert s.classes() == ["right"]
            with pytest.raises(NotFoundError, match="left"):
                s.forget("left")


def test_teaching_leaves_the_stream_where_it_was(tmp_path: Path) -> None:
    model = learning_model()
    xs = pattern(1, 30)[:, None]
    with bridge(tmp_path) as address, edgesnn.connect(address, timeout_s=120) as dev:
        with dev.open_session(dev.load_model(bundle_bytes(model))) as s:
            s.run(xs[:10])
            s.learn("left", pattern(0))
            after = s.run(xs[10:])["out"]
        ref = small_model().session(numerics="loihi")  # the same network without learning, never interrupted
        ref.run(xs[:10])
        np.testing.assert_array_equal(after, ref.run(xs[10:])["out"])


def test_what_lavas_engine_cannot_run_is_refused_by_name(tmp_path: Path) -> None:
    with bridge(tmp_path) as address, edgesnn.connect(address, timeout_s=120) as dev:
        for field, value in (("passes", 2), ("bias", "prototype"), ("step", "normalised")):
            with pytest.raises(OptionError, match=f"learning/{field}"):
                dev.load_model(bundle_bytes(learning_model(**{field: value})))
        with dev.open_session(dev.load_model(bundle_bytes(learning_model()))) as s:
            with pytest.raises(InputError, match=f"whole epochs of {T_EPOCH} steps"):
                s.learn("left", pattern(0, 30))
            assert s.classes() == []
