"""Finite-state machine specs: states, input symbols, transitions and outputs, validated.

A spec is plain data (JSON, YAML when PyYAML is installed, or the dataclasses here)::

    {"states": ["idle", "armed", "open"], "initial": "idle",
     "symbols": ["arm", "key", "reset"],
     "transitions": [{"from": "idle", "symbol": "arm", "to": "armed"},
                     ["armed", "key", "open"], "open --reset--> idle"],
     "outputs": {"open": ["unlock"]}}

Every error names the state, symbol or transition at fault (``transitions/2: ...``).
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from edgesnn.errors import MissingDependencyError, ModelError

_NAME = re.compile(r"^[A-Za-z0-9_.:+\-]{1,64}$")
_ARROW = re.compile(r"^\s*(\S+)\s+--(\S+?)-->\s+(\S+)\s*$")
_KEYS = ("states", "initial", "symbols", "transitions", "outputs")


@dataclasses.dataclass(frozen=True)
class Transition:
    """One edge ``source --symbol--> target`` of the machine."""

    source: str
    symbol: str
    target: str

    def __str__(self) -> str:
        """The edge as ``source --symbol--> target``."""
        return f"{self.source} --{self.symbol}--> {self.target}"


@dataclasses.dataclass(frozen=True)
class FSMSpec:
    """A deterministic finite-state machine; validated when built.

    ``outputs`` maps a state to the names of the outputs active in it. A symbol with no
    transition from the current state leaves the machine where it is.
    """

    states: tuple[str, ...]
    symbols: tuple[str, ...]
    transitions: tuple[Transition, ...]
    initial: str = ""
    outputs: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "states", tuple(self.states))
        object.__setattr__(self, "symbols", tuple(self.symbols))
        object.__setattr__(self, "transitions", tuple(self.transitions))
        if not self.states:
            raise ModelError("expected at least one state", path="states")
        _check_names(self.states, "states", "state")
        _check_names(self.symbols, "symbols", "symbol")
        if not self.initial:
            object.__setattr__(self, "initial", self.states[0])
        if self.initial not in self.states:
            raise ModelError(f"initial state {self.initial!r} is not one of the states", path="initial")
        self._check_transitions()
        outputs = {}
        for state, names in dict(self.outputs).items():
            if state not in self.states:
                raise ModelError(f"outputs given for unknown state {state!r}", path=f"outputs/{state}")
            names = (names,) if isinstance(names, str) else tuple(names)
            _check_names(names, f"outputs/{state}", "output")
            outputs[state] = names
        object.__setattr__(self, "outputs", outputs)
        self._check_reachable()

    def _check_transitions(self) -> None:
        seen: dict[tuple[str, str], int] = {}
        states, symbols = set(self.states), set(self.symbols)
        for i, t in enumerate(self.transitions):
            where = f"transitions/{i}"
            if not isinstance(t, Transition):
                raise ModelError(f"expected a Transition, got {type(t).__name__}", path=where)
            for role, state in (("source", t.source), ("target", t.target)):
                if state not in states:
                    raise ModelError(f"edge {t}: unknown {role} state {state!r}", path=where)
            if t.symbol not in symbols:
                raise ModelError(f"edge {t}: unknown symbol {t.symbol!r}; the symbols are"
                                 f" {', '.join(self.symbols) or 'none'}", path=where)  # fmt: skip
            first = seen.setdefault((t.source, t.symbol), i)
            if first != i:
                other = self.transitions[first]
                what = "the same edge twice" if other == t else f"two targets for one input (also {other})"
                raise ModelError(f"duplicate transition {t}: {what}, first as transitions/{first}", path=where)

    def _check_reachable(self) -> None:
        succ = collections.defaultdict(list)
        for t in self.transitions:
            succ[t.source].append(t.target)
        seen, todo = {self.initial}, [self.initial]
        while todo:
            for nxt in succ[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        for i, state in enumerate(self.states):
            if state not in seen:
                raise ModelError(f"state {state!r} is unreachable from the initial state {self.initial!r}",
                                 path=f"states/{i}")  # fmt: skip

    # -- behaviour -----------------------------------------------------------------
    def next_state(self, state: str, symbol: str) -> str:
        """The state after ``symbol`` in ``state`` (itself when no edge leaves it with that symbol)."""
        for t in self.transitions:
            if t.source == state and t.symbol == symbol:
                return t.target
        return state

    def walk(self, symbols: Sequence[str]) -> list[str]:
        """States visited from the initial state: the initial one, then one per symbol."""
        out = [self.initial]
        for s in symbols:
            out.append(self.next_state(out[-1], s))
        return out

    def output_names(self) -> tuple[str, ...]:
        """Every output name, in order of first appearance."""
        return tuple(dict.fromkeys(n for names in self.outputs.values() for n in names))

    # -- serialisation -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain data that :meth:`from_dict` reads back."""
        return {
            "states": list(self.states),
            "initial": self.initial,
            "symbols": list(self.symbols),
            "transitions": [{"from": t.source, "symbol": t.symbol, "to": t.target} for t in self.transitions],
            "outputs": {k: list(v) for k, v in self.outputs.items()},
        }

    @classmethod
    def from_dict(cls, data: Any) -> FSMSpec:
        """Build a spec from plain data (see the module docstring); unknown keys are refused."""
        if not isinstance(data, Mapping):
            raise ModelError(f"expected an object with {', '.join(_KEYS)}, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise ModelError(f"unknown key; expected {', '.join(_KEYS)}", path=str(unknown[0]))
        if "states" not in data or "transitions" not in data:
            raise ModelError("missing key", path="states" if "states" not in data else "transitions")
        states = _str_list(data["states"], "states")
        transitions = _transitions(data["transitions"])
        if "symbols" in data:
            symbols = _str_list(data["symbols"], "symbols")
        else:
            symbols = list(dict.fromkeys(t.symbol for t in transitions))
        outputs = data.get("outputs", {})
        if not isinstance(outputs, Mapping):
            raise ModelError(f"expected an object of state: [output names], got {type(outputs).__name__}",
                             path="outputs")  # fmt: skip
        initial = data.get("initial", "")
        if not isinstance(initial, str):
            raise ModelError(f"expected a state name, got {initial!r}", path="initial")
        return cls(tuple(states), tuple(symbols), tuple(transitions), initial, dict(outputs))


def _check_names(names: Sequence[str], path: str, what: str) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not _NAME.match(name):
            raise ModelError(f"expected a {what} name of 1-64 letters, digits or _.:+-, got {name!r}",
                             path=f"{path}/{i}")  # fmt: skip
        if name in seen:
            raise ModelError(f"{what} {name!r} is listed twice (also {path}/{seen[name]})", path=f"{path}/{i}")
        seen[name] = i


def _str_list(value: Any, path: str) -> list[str]:
    if not isinstance(value, list):
        raise ModelError(f"expected a list of names, got {type(value).__name__}", path=path)
    return value


def _transitions(value: Any) -> list[Transition]:
    if not isinstance(value, list):
        raise ModelError(f"expected a list of transitions, got {type(value).__name__}", path="transitions")
    out = []
    for i, item in enumerate(value):
        where = f"transitions/{i}"
        if isinstance(item, Mapping):
            extra = sorted(set(item) - {"from", "symbol", "to"})
            if extra or len(item) != 3:
                raise ModelError(f'expected {{"from", "symbol", "to"}}, got keys {sorted(item)}', path=where)
            parts = [item["from"], item["symbol"], item["to"]]
        elif isinstance(item, str):
            m = _ARROW.match(item)
            if m is None:
                raise ModelError(f"expected 'source --symbol--> target', got {item!r}", path=where)
            parts = list(m.groups())
        elif isinstance(item, list) and len(item) == 3:
            parts = item
        else:
            raise ModelError(f"expected [source, symbol, target], got {item!r}", path=where)
        if not all(isinstance(p, str) for p in parts):
            raise ModelError(f"expected names, got {parts!r}", path=where)
        out.append(Transition(*parts))
    return out


def load_spec(path: str | os.PathLike[str]) -> FSMSpec:
    """Read a spec from a .json file, or .yaml/.yml when PyYAML is installed; errors name the file."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:  # a file error like every command's (exit status 3), not a model error
        raise FileNotFoundError(errno.ENOENT, "no such file", path) from None
    except UnicodeDecodeError as exc:
        raise ModelError(f"cannot read the spec: {exc}", path=path) from None
    if path.lower().endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise MissingDependencyError("reading a YAML spec needs PyYAML (pip install pyyaml); or write it as JSON",
                                         path=path) from None  # fmt: skip
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ModelError(f"not valid YAML: {str(exc).splitlines()[0]}", path=path) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ModelError(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                             path=path) from None  # fmt: skip
    try:
        return FSMSpec.from_dict(data)
    except ModelError as exc:
        raise exc.with_prefix(path) from None


__all__ = ["FSMSpec", "Transition", "load_spec"]
