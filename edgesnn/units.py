"""Parsing of physical quantities given as text (CLI flags, configuration files)."""

from __future__ import annotations

import re

from edgesnn import limits
from edgesnn.errors import LimitError, OptionError

_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(s|ms|us|µs|ns)?\s*$")


def parse_duration_s(text: str | float, *, name: str = "dt") -> float:
    """Parse '1ms', '0.5 ms', '250us', '1s' into seconds (> 0); text needs a unit, a Python number is seconds."""
    if isinstance(text, bool):
        raise OptionError(f"expected a duration such as 1ms, 250us or 1s, got {text!r}", path=name)
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise OptionError(f"expected a duration such as 1ms, 250us or 1s, got {text!r}", path=name)
        if m.group(2) is None:
            raise OptionError(
                f"a duration needs a unit (s, ms, us or ns), got {text!r}: write {m.group(1)}s or {m.group(1)}ms",
                path=name,
            )
        value = float(m.group(1)) * _SCALE[m.group(2)]
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


def check_time_s(
    value: float | int, *, name: str, what: str = "a time", zero: bool = False, upper: bool = True
) -> float:
    """Return ``value`` (seconds, finite, >= 0) if it lies in ``limits.min_time_s..max_time_s``, else raise LimitError.

    ``zero=True`` lets 0 through (no delay, no interval); ``upper=False`` checks the lower
    bound only (a time constant may be huge: that is how a leak-free neuron is written). A
    time below a nanosecond or above
    hours is no physical step, delay or interval, and what is derived from it (the steps of
    a delay ring, the count of a hold) would overflow or exhaust memory later.
    """
    if zero and value == 0:
        return 0.0
    bounds = limits.current()
    if value < bounds.min_time_s:
        raise LimitError(
            f"{what} of {value:g} s is below the limit min_time_s = {bounds.min_time_s:g} s",
            limit="min_time_s",
            value=value,
            path=name,
        )
    if upper and value > bounds.max_time_s:
        shown = f"{float(value):g}" if value < 1e308 else "more than 1e308"
        raise LimitError(
            f"{what} of {shown} s exceeds the limit max_time_s = {bounds.max_time_s:g} s",
            limit="max_time_s",
            value=float(min(value, 1e308)),
            path=name,
        )
    # Compared before converting: float() of an integer past 1e308 would raise OverflowError.
    return float(value)
