"""The Device contract: every Device gives the engine's own results, errors and state.

Parametrised over every implementation; a bridge is done when it passes here.
The reference is a plain engine Session of the same model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pytest

from edgesnn.devices import Device, LocalDevice
from edgesnn.errors import InputError, NotFoundError, OptionError, StateError, UnsupportedError
from tests.conformance._models import N_IN, bundle_bytes, learning_model, remote, served, small_model, spikes

DEVICES = ("local", "remote", "ipu")


@pytest.fixture(scope="module")
def server_address() -> Iterator[str]:
    with served(LocalDevice(), max_sessions=64) as (_, address):
        yield address


@pytest.fixture(scope="module")
def ipu_address() -> Iterator[str]:
    from firmware_bridges.ipu.launch import bridge  # the simulated IPU bridge, its own process

    with bridge("--max-sessions", "64") as address:
        yield address


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest, server_address: str) -> Iterator[Device]:
    if request.param == "local":
        dev = LocalDevice()
        yield dev
        dev.close()
    else:
        address = request.getfixturevalue("ipu_address") if request.param == "ipu" else server_address
        with remote(address) as dev:
            yield dev


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return bundle_bytes(small_model())


def test_capabilities_describe_the_device(device: Device) -> None:
    caps = device.capabilities()
    assert caps.device_kind and caps.version and caps.numerics
    assert "LIF" in caps.neuron_models
    assert "zoh-rate" in caps.adaptation_methods
    assert isinstance(caps.simulated, bool) and isinstance(caps.learning, bool)


def test_load_is_idempotent_by_content_hash(device: Device, model_bytes: bytes) -> None:
    model_id = device.load_model(model_bytes)
    assert model_id == hashlib.sha256(model_bytes).hexdigest()
    assert device.load_model(model_bytes) == model_id
    info = device.model_info(model_id)
    model = small_model()
    assert list(info.inputs) == model.inputs and list(info.outputs) == model.outputs
    assert info.dt_s == model.dt_s and not info.learning
    assert [m.model_id for m in device.models()].count(model_id) == 1


def test_step_matches_the_engine_bit_for_bit(device: Device, model_bytes: bytes) -> None:
    xs = spikes(40)
    ref = small_model().session()
    with device.open_session(device.load_model(model_bytes)) as s:
        for t in range(40):
            got, want = s.step(xs[t]), ref.step(xs[t])
            assert got.keys() == want.keys()
            np.testing.assert_array_equal(got["out"], want["out"])
        assert got["out"].dtype == np.float32 and got["out"].flags.writeable


def test_step_records_named_nodes_and_takes_a_dict(device: Device, model_bytes: bytes) -> None:
    xs = spikes(5)
    ref = small_model().session()
    with device.open_session(device.load_model(model_bytes)) as s:
        for t in range(5):
            got = s.step({"in": xs[t]}, outputs=["lif", "out"])
            want = ref.step({"in": xs[t]}, outputs=["lif", "out"])
            for k in ("lif", "out"):
                np.testing.assert_array_equal(got[k], want[k])
        assert got["lif"].shape == (1, 24)


def test_run_and_batches_match_the_engine(device: Device, model_bytes: bytes) -> None:
    xs = spikes(30, batch=3)
    want = small_model().session(batch=3).run(xs)
    with device.open_session(device.load_model(model_bytes), batch=3) as s:
        assert s.batch == 3
        got = s.run(xs)
    np.testing.assert_array_equal(got["out"], want["out"])
    assert got["out"].shape == (30, 3, 4)


def test_state_round_trips_and_moves_between_devices(device: Device, model_bytes: bytes) -> None:
    xs = spikes(20)
    with device.open_session(device.load_model(model_bytes)) as s:
        s.run(xs[:10])
        saved = s.state()
        first = s.run(xs[10:])
        s.load_state(saved)
        np.testing.assert_array_equal(s.run(xs[10:])["out"], first["out"])
        ref = small_model().session()  # the same bytes restore an engine session
        ref.load_state(saved)
        np.testing.assert_array_equal(ref.run(xs[10:])["out"], first["out"])
        s.reset()
        np.testing.assert_array_equal(s.run(xs[:10])["out"], small_model().session().run(xs[:10])["out"])


def test_retime_matches_engine_adaptation(device: Device, model_bytes: bytes) -> None:
    xs = spikes(20)
    ref = small_model().session()
    with device.open_session(device.load_model(model_bytes)) as s:
        np.testing.assert_array_equal(s.run(xs[:10])["out"], ref.run(xs[:10])["out"])
        s.retime(0.5e-3, "integral")
        ref.retime(0.5e-3, "integral")
        assert s.dt_s == pytest.approx(0.5e-3)
        np.testing.assert_array_equal(s.run(xs[10:])["out"], ref.run(xs[10:])["out"])


def test_open_at_another_step_with_a_method(device: Device, model_bytes: bytes) -> None:
    import dataclasses

    xs = spikes(15)
    want = dataclasses.replace(small_model(), adapt_method="bilinear-rate").session(dt=2e-3).run(xs)
    with device.open_session(device.load_model(model_bytes), dt=2e-3, adapt_method="bilinear-rate") as s:
        assert s.dt_s == pytest.approx(2e-3) and s.adapt_method == "bilinear-rate"
        np.testing.assert_array_equal(s.run(xs)["out"], want["out"])


def test_bad_input_raises_the_engines_errors(device: Device, model_bytes: bytes) -> None:
    ref = small_model().session()
    with device.open_session(device.load_model(model_bytes)) as s:
        for bad in (np.ones((1, N_IN + 1), np.float32), np.array([["a"] * N_IN])):
            with pytest.raises(InputError) as got:
                s.step(bad)
            with pytest.raises(InputError) as want:
                ref.step(bad)
            assert str(got.value) == str(want.value)
        with pytest.raises(InputError, match="nope"):
            s.step(spikes(1)[0], outputs=["nope"])
        with pytest.raises(StateError):
            s.load_state(b"not a state")
        with pytest.raises(OptionError):
            s.retime(-1.0)
        s.step(spikes(1)[0])  # the session still works after every failure


def test_unknown_ids_and_closed_sessions_are_not_found(device: Device, model_bytes: bytes) -> None:
    with pytest.raises(NotFoundError):
        device.open_session("0" * 64)
    with pytest.raises(NotFoundError):
        device.model_info("0" * 64)
    s = device.open_session(device.load_model(model_bytes))
    s.close()
    with pytest.raises(NotFoundError):
        s.step(spikes(1)[0])
    with pytest.raises(OptionError):
        device.open_session(device.load_model(model_bytes), batch=0)


def test_unload_keeps_open_sessions_running(device: Device) -> None:
    model_id = device.load_model(bundle_bytes(small_model(seed=5)))
    with device.open_session(model_id) as s:
        device.unload_model(model_id)
        with pytest.raises(NotFoundError):
            device.unload_model(model_id)
        s.step(spikes(1)[0])
        with pytest.raises(NotFoundError):
            device.open_session(model_id)


def test_learning_matches_the_engine(device: Device) -> None:
    xs = spikes(40, seed=3)
    ref = learning_model().session()
    with device.open_session(device.load_model(bundle_bytes(learning_model()))) as s:
        for label, seed in (("wave", 3), ("stop", 4), ("wave", 5)):
            example = spikes(40, seed=seed)[:, 0]
            got, want = s.learn(label, example), ref.learn(label, example)
            for key in ("label", "new", "action", "classes"):
                assert got[key] == want[key]
        assert s.classes() == ref.classes() == ["wave", "stop"]
        np.testing.assert_array_equal(s.run(xs)["classes"], ref.run(xs)["classes"])
        s.forget("wave")
        assert s.classes() == ["stop"]


def test_learning_needs_a_learning_model(device: Device, model_bytes: bytes) -> None:
    with device.open_session(device.load_model(model_bytes)) as s:
        with pytest.raises(UnsupportedError):
            s.learn("wave", spikes(10)[:, 0])
        with pytest.raises(UnsupportedError):
            s.classes()


def test_neuron_states_are_recorded_and_sessions_start_where_asked(device: Device, model_bytes: bytes) -> None:
    xs = spikes(20, batch=2)
    start = {"lif/v": np.linspace(-0.5, 0.9, 2 * 24, dtype=np.float32).reshape(2, 24)}
    ref = small_model().session(batch=2, initial_state=("zero", start))
    model_id = device.load_model(model_bytes)
    with device.open_session(model_id, batch=2, initial_state=("zero", start)) as s:
        assert s.recordable == ref.recordable == ["lif/v", "li/v"]
        assert s.initial_state == "zero"
        got, want = s.run(xs, outputs=["lif/v", "li/v", "out"]), ref.run(xs, outputs=["lif/v", "li/v", "out"])
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
        s.reset()
        ref.reset()
        np.testing.assert_array_equal(s.step(xs[0], outputs=["lif/v"])["lif/v"],
                                      ref.step(xs[0], outputs=["lif/v"])["lif/v"])  # fmt: skip
    with pytest.raises(InputError, match="no state named 'lif/q'"):
        device.open_session(model_id, initial_state={"lif/q": np.zeros(24)})


# -- one API: a device's model handle and sessions have the names of a local Model and Session ---------
#: Every public member of edgesnn.Model: those a device model handle gives the same (by ModelInfo), and
#: those it refuses with UnsupportedError because the model's insides stay on the device.
MODEL_SAME = {"dt_s", "method", "labels", "adapt_method", "inputs", "outputs", "session"}
MODEL_REFUSED = {
    "graph": "the graph stays on the device",
    "fingerprint": "needs the graph; model_id (the bundle's sha256) identifies the model instead",
    "producer": "the producer record is not on the wire; name and info.producer_name are",
    "learning": "the configuration is not on the wire; info.learning says whether it learns",
    "loihi": "the Loihi network stays on the device",
    "initial_state": "ModelInfo does not carry it; each session's initial_state does",
    "with_input_units": "a loaded model is immutable on its device",
    "session_bytes": "the estimate needs the graph",
}
#: Every public member of an engine Session: a device session gives all of them but these two, which
#: need what only a session in this process holds (RemoteSession; LocalSession gives them).
SESSION_REFUSED_REMOTELY = {
    "decide": "no RPC reads the scores without stepping",
    "initial_values": "SessionInfo carries initial_state only, not the arrays set over it",
}


def _public(cls: type) -> set[str]:
    import dataclasses

    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return fields | {n for n in dir(cls) if not n.startswith("_")}


def test_every_local_model_and_session_name_is_classified() -> None:
    from edgesnn.engine.session import Session
    from edgesnn.model import Model

    assert _public(Model) == MODEL_SAME | set(MODEL_REFUSED)  # a new Model member needs a decision here
    assert set(SESSION_REFUSED_REMOTELY) <= _public(Session)


def test_the_model_handle_has_every_local_name_and_refuses_only_what_stays_on_the_device(
    device: Device, model_bytes: bytes
) -> None:
    import inspect

    from edgesnn.model import Model

    m = device.load(model_bytes)
    local = small_model()
    for name in _public(Model):
        inspect.getattr_static(m, name)  # present: AttributeError would fail here
        if name in MODEL_REFUSED:
            with pytest.raises(UnsupportedError) as err:
                getattr(m, name)
            assert err.value.path == name
        elif name != "session":
            assert getattr(m, name) == getattr(local, name), name
    assert m.model_id == hashlib.sha256(model_bytes).hexdigest() and m.name == ""
    for option in ({"store": "classes/"}, {"numerics": "loihi"}):
        with pytest.raises(UnsupportedError) as err:
            m.session(**option)
        assert err.value.path == next(iter(option))


def test_device_sessions_have_every_session_name(device: Device, model_bytes: bytes) -> None:
    import inspect

    from edgesnn.engine.session import Session

    m = device.load(model_bytes)
    ref = small_model().session(batch=2)
    with m.session(batch=2) as s:
        for name in _public(Session):
            inspect.getattr_static(s, name)
            attr = inspect.getattr_static(Session, name)
            if not isinstance(attr, property):
                continue
            if isinstance(device, LocalDevice) or name not in SESSION_REFUSED_REMOTELY:
                got, want = getattr(s, name), getattr(ref, name)
                if name == "model":  # the handle of the loaded model, as the engine's is the Model
                    assert got.model_id == m.model_id and got.inputs == want.inputs
                elif name == "backend" and device.capabilities().device_kind != "cpu":  # a chip names its own
                    assert got in device.capabilities().backends, name
                else:
                    assert got == want, name
            else:
                with pytest.raises(UnsupportedError) as err:
                    getattr(s, name)
                assert err.value.path == name
        if not isinstance(device, LocalDevice):
            with pytest.raises(UnsupportedError, match="decide"):
                s.decide()


def test_the_local_lines_run_unchanged_on_the_handle(device: Device, model_bytes: bytes) -> None:
    xs = spikes(30, batch=2)
    start = {"lif/v": np.full((2, 24), 0.25, np.float32)}
    ref = small_model().session(dt=0.5e-3, batch=2, initial_state=start)
    s = device.load(model_bytes).session(dt=0.5e-3, batch=2, initial_state=start)
    for t in range(10):
        np.testing.assert_array_equal(s.step(xs[t])["out"], ref.step(xs[t])["out"])
    got, want = s.run(xs[10:], outputs=["lif/v", "out"]), ref.run(xs[10:], outputs=["lif/v", "out"])
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    saved = s.state()
    s.reset()
    ref.reset()
    s.load_state(saved)
    ref.load_state(saved)
    np.testing.assert_array_equal(s.step(xs[0])["out"], ref.step(xs[0])["out"])
    s.close()


def _failure(call) -> tuple[type, str | None, str]:
    with pytest.raises(Exception) as err:  # noqa: PT011 - the class itself is what is compared
        call()
    return type(err.value), getattr(err.value, "path", None), str(err.value)


def test_bad_calls_fail_with_the_engines_class_path_and_message(device: Device) -> None:
    ref = learning_model().session()
    s = device.load(bundle_bytes(learning_model())).session()
    x = spikes(1)[0]
    calls = {
        "shape": lambda t: t.step(np.ones((1, N_IN + 1), np.float32)),
        "batch shape": lambda t: t.step(np.ones((3, N_IN), np.float32)),
        "dtype": lambda t: t.step(np.array([["a"] * N_IN])),
        "input name": lambda t: t.step({"nope": x}),
        "run shape": lambda t: t.run(np.zeros((3, 2, N_IN), np.float32)),
        "unknown output": lambda t: t.step(x, outputs=["nope"]),
        "unknown state": lambda t: t.run(spikes(2), outputs=["lif/q"]),
        "unknown label": lambda t: t.forget("nope"),
        "empty label": lambda t: t.learn("", spikes(5)[:, 0]),
        "label type": lambda t: t.learn(3, spikes(5)[:, 0]),
        "example shape": lambda t: t.learn("a", np.zeros((5, N_IN + 1), np.float32)),
        "retime step": lambda t: t.retime(0),
        "retime method": lambda t: t.retime(2e-3, "nope"),
    }
    for what, call in calls.items():
        assert _failure(lambda c=call: c(s)) == _failure(lambda c=call: c(ref)), what
    states = {"state bytes": lambda t: t.load_state(b"junk"), "state type": lambda t: t.load_state("x")}
    for what, call in states.items():
        # the class and path match; the engine's message quotes msgpack's own words
        assert _failure(lambda c=call: c(s))[:2] == _failure(lambda c=call: c(ref))[:2], what
    assert _failure(lambda: device.load(bundle_bytes(small_model())).session(batch=0)) == _failure(
        lambda: small_model().session(batch=0)
    )
    s.step(x)  # the session still works after every failure
    s.close()
