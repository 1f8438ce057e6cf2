"""FSM specs: the three transition forms, the machine's own walk, and errors that name the state or edge."""

from __future__ import annotations

import json

import pytest

from edgesnn.errors import MissingDependencyError, ModelError
from edgesnn.fsm import FSMSpec, Transition, load_spec

DOOR = {
    "states": ["idle", "armed", "open"],
    "symbols": ["arm", "key", "reset"],
    "transitions": [{"from": "idle", "symbol": "arm", "to": "armed"}, ["armed", "key", "open"],
                    "open --reset--> idle", ["armed", "reset", "idle"]],
    "outputs": {"open": ["unlock"]},
}  # fmt: skip


def spec_with(**changes) -> dict:
    return {**DOOR, **changes}


def test_a_spec_reads_every_transition_form_and_walks_like_the_machine() -> None:
    spec = FSMSpec.from_dict(DOOR)

    assert spec.initial == "idle"
    assert spec.transitions[2] == Transition("open", "reset", "idle")
    assert str(spec.transitions[1]) == "armed --key--> open"
    # A symbol without an edge from the current state leaves the machine where it is.
    assert spec.walk(["key", "arm", "arm", "key", "reset"]) == ["idle", "idle", "armed", "armed", "open", "idle"]
    assert spec.outputs == {"open": ("unlock",)}
    assert FSMSpec.from_dict(spec.to_dict()) == spec


def test_symbols_default_to_those_the_transitions_use() -> None:
    data = {k: v for k, v in DOOR.items() if k != "symbols"}
    assert FSMSpec.from_dict(data).symbols == ("arm", "key", "reset")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"states": ["idle", "armed", "open", "lost"]}, r"^states/3: state 'lost' is unreachable from the initial"),
        ({"transitions": [*DOOR["transitions"], ["idle", "arm", "armed"]]},
         r"^transitions/4: duplicate transition idle --arm--> armed: the same edge twice, first as transitions/0"),
        ({"transitions": [*DOOR["transitions"], ["idle", "arm", "open"]]},
         r"^transitions/4: duplicate transition idle --arm--> open: two targets for one input \(also idle --arm-->"),
        ({"transitions": [*DOOR["transitions"], ["open", "kick", "idle"]]},
         r"^transitions/4: edge open --kick--> idle: unknown symbol 'kick'; the symbols are arm, key, reset"),
        ({"transitions": [*DOOR["transitions"], ["open", "arm", "gone"]]},
         r"^transitions/4: edge open --arm--> gone: unknown target state 'gone'"),
        ({"initial": "nowhere"}, r"^initial: initial state 'nowhere' is not one of the states"),
        ({"outputs": {"ghost": ["x"]}}, r"^outputs/ghost: outputs given for unknown state 'ghost'"),
        ({"states": ["idle", "idle"]}, r"^states/1: state 'idle' is listed twice"),
        ({"states": ["idle", "a b"]}, r"^states/1: expected a state name of 1-64"),
        ({"transitions": ["idle -> armed"]}, r"^transitions/0: expected 'source --symbol--> target'"),
        ({"colour": "red"}, r"^colour: unknown key"),
    ],
)  # fmt: skip
def test_bad_specs_name_the_state_or_edge(changes: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        FSMSpec.from_dict(spec_with(**changes))


def test_spec_files_give_errors_naming_the_file(tmp_path) -> None:
    good = tmp_path / "door.json"
    good.write_text(json.dumps(DOOR))
    assert load_spec(good) == FSMSpec.from_dict(DOOR)

    bad = tmp_path / "bad.json"
    bad.write_text('{"states": [}')
    with pytest.raises(ModelError, match=r"bad.json: not valid JSON: .* at line 1 column 13"):
        load_spec(bad)
    lost = tmp_path / "lost.json"
    lost.write_text(json.dumps(spec_with(states=["idle", "armed", "open", "lost"])))
    with pytest.raises(ModelError, match=r"lost.json/states/3: state 'lost' is unreachable"):
        load_spec(lost)
    with pytest.raises(FileNotFoundError, match=r"no such file: '.*missing.json'"):
        load_spec(tmp_path / "missing.json")


def test_yaml_specs_need_pyyaml(tmp_path) -> None:
    path = tmp_path / "door.yaml"
    path.write_text("states: [idle, armed]\ntransitions:\n  - [idle, arm, armed]\n")
    try:
        import yaml  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r"door.yaml: reading a YAML spec needs PyYAML"):
            load_spec(path)
    else:
        assert load_spec(path).walk(["arm"]) == ["idle", "armed"]
