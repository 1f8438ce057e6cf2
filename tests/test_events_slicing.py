"""Time and count slicing: identical windows to tonic, and identical windows when the stream comes in chunks."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgesnn.errors import InputError, OptionError
from edgesnn.events._dtype import empty_events, make_events
from edgesnn.events.functional.slicing import (
    CountSlicer,
    TimeSlicer,
    slice_by_count,
    slice_by_time,
    time_window_bounds,
)


def random_stream(rng: np.random.Generator, n: int, t0: int = 0, span: int = 100_000) -> np.ndarray:
    t = np.sort(rng.integers(t0, t0 + span, n))
    return make_events(rng.integers(0, 64, n), rng.integers(0, 48, n), rng.integers(0, 2, n), t)


def to_tonic(events: np.ndarray) -> np.ndarray:
    tonic_io = pytest.importorskip("tonic.io", reason="tonic is not installed (dev dependency)")
    out = np.zeros(len(events), dtype=tonic_io.events_struct)
    for name in ("x", "y", "t", "p"):
        out[name] = events[name]
    return out


def split_randomly(rng: np.random.Generator, events: np.ndarray, n_cuts: int) -> list[np.ndarray]:
    cuts = np.sort(rng.integers(0, len(events) + 1, n_cuts))
    return np.split(events, cuts)


def same_windows(ours: list[np.ndarray], theirs: list[np.ndarray]) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        assert len(a) == len(b)
        for name in ("x", "y", "t"):
            np.testing.assert_array_equal(a[name], b[name])


def test_half_open_windows_exclude_an_event_exactly_at_the_end():
    ev = make_events([0, 1, 2, 3], [0] * 4, [1] * 4, [0, 150, 299, 300])
    windows = slice_by_time(ev, window_us=100)
    # duration 300 -> floor((300-100)/100)+1 = 3 windows; t=300 lies on the last window's end.
    assert [list(w["t"]) for w in windows] == [[0], [150], [299]]
    # tonic's count rule loses that event even with include_incomplete: ceil(200/100)+1 is still 3.
    assert len(slice_by_time(ev, window_us=100, include_incomplete=True)) == 3
    ev["t"][3] = 301
    with_tail = slice_by_time(ev, window_us=100, include_incomplete=True)
    assert [list(w["t"]) for w in with_tail] == [[0], [150], [299], [301]]


@pytest.mark.parametrize(
    ("window", "stride", "incomplete", "explicit_range"),
    list(itertools.product([1_000, 7_777, 150_000], [None, 500, 3_000, 9_000], [False, True], [False, True])),
)
def test_slice_by_time_matches_tonic(window, stride, incomplete, explicit_range):
    slicers = pytest.importorskip("tonic.slicers", reason="tonic is not installed (dev dependency)")
    rng = np.random.default_rng(window + (stride or 0))
    ev = random_stream(rng, 3_000, t0=12_345)
    start, end = (20_000, 90_000) if explicit_range else (None, None)
    eff_stride = window if stride is None else stride
    ours = slice_by_time(
        ev, window_us=window, stride_us=stride, start_us=start, end_us=end, include_incomplete=incomplete
    )
    ref = slicers.SliceByTime(
        time_window=window,
        overlap=window - eff_stride,
        include_incomplete=incomplete,
        start_time=start,
        end_time=end,
    )
    theirs, _ = ref.slice(to_tonic(ev), None)
    same_windows(ours, theirs)


@pytest.mark.parametrize(
    ("count", "stride", "incomplete", "n"),
    list(itertools.product([1, 100, 333, 5_000], [None, 50, 100], [False, True], [0, 1, 999, 1_000])),
)
def test_slice_by_count_matches_tonic(count, stride, incomplete, n):
    slicers = pytest.importorskip("tonic.slicers", reason="tonic is not installed (dev dependency)")
    eff_stride = count if stride is None else stride
    ev = random_stream(np.random.default_rng(n + count), n)
    ours = slice_by_count(ev, count=count, stride=stride, include_incomplete=incomplete)
    if n == 0:
        assert ours == []  # edgesnn: no windows from no events (tonic gives one empty window)
        return
    theirs, _ = slicers.SliceByEventCount(
        event_count=count, overlap=count - eff_stride, include_incomplete=incomplete
    ).slice(to_tonic(ev), None)
    same_windows(ours, theirs)


def test_strides_longer_than_the_window_leave_gaps():
    ev = make_events([0] * 6, [0] * 6, [1] * 6, [0, 5, 10, 15, 20, 25])
    assert [list(w["t"]) for w in slice_by_time(ev, window_us=5, stride_us=10)] == [[0], [10], [20]]
    assert [list(w["t"]) for w in slice_by_count(ev, count=2, stride=3)] == [[0, 5], [15, 20]]


@pytest.mark.parametrize(
    ("window", "stride", "incomplete"), list(itertools.product([1_000, 4_321], [None, 250, 6_000], [False, True]))
)
def test_time_slicer_on_chunks_equals_slice_by_time(window, stride, incomplete):
    rng = np.random.default_rng(window * 7 + (stride or 1))
    ev = random_stream(rng, 5_000, t0=777)
    # Repeated timestamps across chunk boundaries are the hard case: force some.
    ev["t"][1000:1010] = ev["t"][1000]
    whole = slice_by_time(ev, window_us=window, stride_us=stride, include_incomplete=incomplete)
    for n_cuts in (0, 1, 17, 400):
        slicer = TimeSlicer(window_us=window, stride_us=stride)
        got = []
        for chunk in split_randomly(rng, ev, n_cuts):
            got += slicer.push(chunk)
        got += slicer.finish(include_incomplete=incomplete)
        same_windows(got, whole)


def test_time_slicer_with_a_start_time_and_memory_bounded_by_the_window():
    rng = np.random.default_rng(3)
    ev = random_stream(rng, 20_000, span=2_000_000)
    slicer = TimeSlicer(window_us=10_000, stride_us=5_000, start_us=1_000)
    got, biggest = [], 0
    for chunk in np.array_split(ev, 200):
        got += slicer.push(chunk)
        biggest = max(biggest, len(slicer._buffer))
    got += slicer.finish()
    same_windows(got, slice_by_time(ev, window_us=10_000, stride_us=5_000, start_us=1_000))
    assert biggest < 400  # ~100 events per 10 ms window plus one chunk, never the whole stream


@pytest.mark.parametrize(
    ("count", "stride", "incomplete"), list(itertools.product([1, 64, 1_000], [None, 16, 64], [False, True]))
)
def test_count_slicer_on_chunks_equals_slice_by_count(count, stride, incomplete):
    rng = np.random.default_rng(count)
    for n in (10, 999, 4_000):
        ev = random_stream(rng, n)
        whole = slice_by_count(ev, count=count, stride=stride, include_incomplete=incomplete)
        for n_cuts in (0, 3, 50):
            slicer = CountSlicer(count=count, stride=stride)
            got = []
            for chunk in split_randomly(rng, ev, n_cuts):
                got += slicer.push(chunk)
            got += slicer.finish(include_incomplete=incomplete)
            same_windows(got, whole)


def test_empty_input_gives_no_windows_and_explicit_range_gives_empty_windows():
    assert slice_by_time(empty_events(), window_us=10) == []
    assert [len(w) for w in slice_by_time(empty_events(), window_us=10, start_us=0, end_us=30)] == [0, 0, 0]
    assert time_window_bounds(empty_events(), window_us=5).shape == (0, 2)
    assert TimeSlicer(window_us=10).finish() == []


def test_bad_parameters_and_unsorted_input_are_refused():
    ev = make_events([0, 0], [0, 0], [1, 1], [10, 5])
    with pytest.raises(InputError, match=r"t\[1\]=5 < t\[0\]=10"):
        slice_by_time(ev, window_us=10)
    with pytest.raises(OptionError, match="window_us"):
        slice_by_time(ev, window_us=0)
    with pytest.raises(OptionError, match="stride"):
        slice_by_count(ev, count=3, stride=-1)
    slicer = TimeSlicer(window_us=10)
    slicer.push(make_events([0], [0], [1], [100]))
    with pytest.raises(InputError, match="before the previous chunk"):
        slicer.push(make_events([0], [0], [1], [99]))
