"""Parsing of physical quantities given as text (CLI flags, configuration files)."""

from __future__ import annotations

import re

from edgesnn.errors import OptionError

_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|ms|us|µs|ns)?\s*$")


def parse_duration_s(text: str | float, *, name: str = "dt") -> float:
    """Parse '1ms', '0.5 ms', '250us', '1e-3' (seconds) into seconds; must be > 0."""
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise OptionError(f"expected a duration such as 1ms, 250us or 0.001 (seconds), got {text!r}", path=name)
        value = float(m.group(1)) * _SCALE[m.group(2) or "s"]
    if not value > 0 or value == float("inf"):
        raise OptionError(f"expected a duration > 0, got {text!r}", path=name)
    return value


def check_step_s(value: object, *, name: str = "dt") -> float:
    """Return ``value`` as a float number of seconds, refusing non-numbers, <= 0, NaN and Inf."""
    try:
        step = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise OptionError(f"expected a step in seconds, got {value!r}", path=name) from exc
    if not (0.0 < step < float("inf")):
        raise OptionError(f"expected a step > 0 s, got {value!r}", path=name)
    return step
