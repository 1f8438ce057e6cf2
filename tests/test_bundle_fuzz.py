"""Fuzzing the .esnn reader as an attacker would, structure-aware (mutators in tests/fuzz_bundles.py).

The invariant, for every mutated bundle: :func:`edgesnn.bundle.read_bundle` either returns
a model, which then opens a batch-1 session that steps (or is refused with a
:class:`LimitError`) and writes back to a bundle that reads again, or it raises an
:class:`EdgeSNNError`. Never another exception, never a hang (each input is timed),
never an allocation beyond the limits (the run is under tight limits, and tracemalloc
watches the peak of one in five of the inputs that aim at memory).

About 10,850 inputs by default: 9,700 mutated bundles, 1,000 manifest values from
hypothesis and 150 bundles through ``edgesnn info``; about 50 s on one core. They are
seeded, so a failure names the mutator and the case that reproduces it. For a longer
run, scale every count and pick other seeds::

    EDGESNN_FUZZ_EXAMPLES=20 EDGESNN_FUZZ_SEED=7 .venv/bin/python -m pytest -q tests/test_bundle_fuzz.py

``EDGESNN_FUZZ_EXAMPLES`` multiplies the counts (default 1), ``EDGESNN_FUZZ_SEED``
(default 0) changes every input.
"""

from __future__ import annotations

import io
import json
import os
import random
import time
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from edgesnn import limits
from edgesnn.bundle import read_bundle, write_bundle
from edgesnn.cli import main
from edgesnn.errors import EdgeSNNError, LimitError
from edgesnn.graph import LIF, Delay, Graph, Input, Linear, Output
from edgesnn.graph.memory import check_session
from edgesnn.model import Model
from tests.fuzz_bundles import MUTATORS, edit_manifest, json_paths, members_of
from tests.helpers import mock_conv_model, mock_rnn_model

SCALE = float(os.environ.get("EDGESNN_FUZZ_EXAMPLES", "1"))
SEED = os.environ.get("EDGESNN_FUZZ_SEED", "0")
#: Inputs per mutator at scale 1.
COUNTS = {"flip_bytes": 2000, "cut": 700, "zip_header": 1300, "zip_flags": 800, "rebuild": 800,
          "manifest_field": 2000, "manifest_text": 900, "tensor": 1200}  # fmt: skip
#: Tight limits, so that what the reader lets through is small, and what it allocates measurable.
TIGHT = {"member_bytes": 1 << 20, "bundle_bytes": 4 << 20, "manifest_bytes": 1 << 20, "bundle_members": 512,
         "node_elements": 1 << 16, "session_bytes": 16 << 20, "delay_steps": 4096, "json_depth": 64}  # fmt: skip
#: What reading plus a session may allocate under TIGHT, Python objects included.
PEAK_BYTES = 48 << 20
#: One input in this many is run under tracemalloc.
WATCH = 5
#: No input may take longer than this (a hang shows as a failure, not as a stuck run).
SLOW_S = 5.0


def _count(name: str) -> int:
    return max(1, round(COUNTS[name] * SCALE))


def _bundle(model: Model) -> bytes:
    buf = io.BytesIO()
    write_bundle(model, buf)
    return buf.getvalue()


def tiny_model() -> Model:
    """in (4) -> Linear -> LIF (with a minimum interval) -> Delay -> out (3), labelled, learning on lif."""
    rng = np.random.default_rng(0)
    nodes = {
        "in": Input((4,), unit="spikes"),
        "fc": Linear(rng.standard_normal((3, 4))),
        "lif": LIF.uniform(3, tau_mem_s=0.01, v_threshold=0.5, min_spike_interval_s=0.002),
        "delay": Delay(0.002),
        "out": Output((3,)),
    }
    graph = Graph(nodes, [("in", "fc"), ("fc", "lif"), ("lif", "delay"), ("delay", "out")])
    learning = {"rule": "three-factor", "version": 1, "feature_node": "lif", "learning_rate": 0.01}
    return Model(graph, 1e-3, labels=("a", "b", "c"), learning=learning)


@pytest.fixture(scope="module")
def corpus() -> list[bytes]:
    """Seed bundles, the cheap one most often: every mutated input starts from one of these."""
    tiny = _bundle(tiny_model())
    return [tiny, tiny, tiny, _bundle(mock_rnn_model()), _bundle(mock_conv_model(size=4))]


@pytest.fixture(autouse=True)
def _tight_limits() -> Iterator[None]:
    with limits.override(**TIGHT):
        yield


def load_and_run(data: bytes) -> str:
    """Apply the invariant to one input; returns what happened (the name of the error, or 'ran')."""
    try:
        model = read_bundle(io.BytesIO(data))
    except EdgeSNNError as exc:
        return type(exc).__name__
    try:
        # What the engine is to do before allocating (edgesnn.graph.memory.check_session).
        check_session(model.graph, model.dt_s, 1)
        session = model.session()
    except LimitError:
        return "session refused"
    session.step({s.name: np.ones((1, *s.shape), np.float32) for s in model.inputs})
    read_bundle(io.BytesIO(_bundle(model)))  # what was accepted can be written, and read back
    return "ran"


def _run_one(data: bytes, where: str, watch_memory: bool) -> str:
    if watch_memory:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        outcome = load_and_run(data)
    except Exception as exc:  # the invariant: nothing but EdgeSNNError may leave the reader
        raise AssertionError(f"{where}: {type(exc).__name__}: {exc}") from exc
    finally:
        peak = tracemalloc.get_traced_memory()[1] if watch_memory else 0
        tracemalloc.stop()
    elapsed = time.perf_counter() - start
    assert elapsed < SLOW_S * (4 if watch_memory else 1), f"{where}: took {elapsed:.1f} s"
    assert peak < PEAK_BYTES, f"{where}: allocated {peak / 2**20:.1f} MiB ({outcome})"
    return outcome


def _fuzz(name: str, corpus: list[bytes], *, watch_memory: bool = False) -> dict[str, int]:
    """Every input of one mutator through the invariant; one in WATCH also under tracemalloc (it slows six-fold)."""
    outcomes: dict[str, int] = {}
    for i in range(_count(name)):
        rng = random.Random(f"{SEED}/{name}/{i}")
        data = MUTATORS[name](rng.choice(corpus), rng)
        outcome = _run_one(data, f"{name} case {i} (EDGESNN_FUZZ_SEED={SEED})", watch_memory and i % WATCH == 0)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


@pytest.mark.parametrize("name", ["flip_bytes", "cut", "zip_header", "zip_flags", "manifest_text"])
def test_damaged_containers_and_manifests_are_refused_or_run(name: str, corpus: list[bytes]) -> None:
    outcomes = _fuzz(name, corpus)
    # The mutations reach past the first check: refusals of more than one kind.
    assert len(outcomes) >= 2, outcomes


@pytest.mark.parametrize("name", ["rebuild", "manifest_field", "tensor"])
def test_hostile_members_and_fields_stay_within_the_limits(name: str, corpus: list[bytes]) -> None:
    outcomes = _fuzz(name, corpus, watch_memory=True)
    assert len(outcomes) >= 2, outcomes
    assert "ran" in outcomes, outcomes  # some near-valid inputs make it all the way to a session


# -- manifest values from hypothesis ------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def tiny_paths(corpus: list[bytes]) -> tuple[bytes, list[tuple]]:
    """The tiny bundle and every path into its manifest."""
    return corpus[0], json_paths(json.loads(members_of(corpus[0])["manifest.json"]))


@seed(int(SEED))
@settings(max_examples=max(1, round(1000 * SCALE)), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])  # fmt: skip
@given(where=st.integers(min_value=0), value=JSON)
def test_any_json_value_in_any_manifest_field_is_refused_or_runs(where: int, value: object, tiny_paths) -> None:
    data, paths = tiny_paths
    path = paths[where % len(paths)]

    def edit(doc: dict) -> None:
        for key in path[:-1]:
            doc = doc[key]
        doc[path[-1]] = value

    with limits.override(**TIGHT):
        try:
            load_and_run(edit_manifest(data, edit))
        except Exception as exc:
            raise AssertionError(f"{'/'.join(map(str, path))} = {value!r:.200}: {type(exc).__name__}: {exc}") from exc


# -- the CLI --------------------------------------------------------------------------------------------


def test_edgesnn_info_on_damaged_bundles_prints_one_line_and_never_an_internal_error(
    corpus: list[bytes], tmp_path, capsys
) -> None:
    codes: dict[int, int] = {}
    for i in range(max(1, round(150 * SCALE))):
        rng = random.Random(f"{SEED}/cli/{i}")
        name = rng.choice(sorted(MUTATORS))
        path = tmp_path / f"case{i}.esnn"
        path.write_bytes(MUTATORS[name](rng.choice(corpus), rng))
        code = main(["info", str(path)])
        err = capsys.readouterr().err
        assert code != 70, f"{name} case {i}: {err}"
        if code:
            assert err.count("\n") == 1 and err.startswith("edgesnn info: error: "), err
        codes[code] = codes.get(code, 0) + 1
    assert {0, 3} <= set(codes), codes
