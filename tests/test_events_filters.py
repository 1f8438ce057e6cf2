"""Crop, downsample, polarity, refractory and background-activity filters: tonic parity, chunked == whole."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgesnn.errors import InputError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE, empty_events, make_events
from edgesnn.events.functional.filters import (
    ChunkedDenoise,
    ChunkedRefractory,
    crop_roi,
    denoise,
    downsample,
    polarity_filter,
    refractory_filter,
)

W, H = 40, 30


def random_stream(
    rng: np.random.Generator, n: int, t0: int = 0, span: int = 200_000, w: int = W, h: int = H
) -> np.ndarray:
    t = np.sort(rng.integers(t0, t0 + span, n))
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n), t)


def to_tonic(events: np.ndarray) -> np.ndarray:
    tonic_io = pytest.importorskip("tonic.io", reason="tonic is not installed (dev dependency)")
    out = np.zeros(len(events), dtype=tonic_io.events_struct)
    for name in ("x", "y", "t", "p"):
        out[name] = events[name]
    return out


def assert_same_events(ours: np.ndarray, theirs: np.ndarray) -> None:
    assert len(ours) == len(theirs)
    for name in ("x", "y", "t"):
        np.testing.assert_array_equal(ours[name].astype(np.int64), theirs[name].astype(np.int64))
    np.testing.assert_array_equal(ours["p"].astype(bool), theirs["p"].astype(bool))


def run_chunked(filt, events: np.ndarray, rng: np.random.Generator, n_cuts: int) -> np.ndarray:
    cuts = np.sort(rng.integers(0, len(events) + 1, n_cuts))
    parts = [filt(chunk) for chunk in np.split(events, cuts)]
    return np.concatenate(parts) if parts else empty_events()


def test_crop_roi_keeps_the_box_and_moves_it_to_the_origin():
    ev = make_events([5, 10, 19, 20, 12], [5, 10, 10, 10, 4], [1, 0, 1, 1, 0], [1, 2, 3, 4, 5])
    out = crop_roi(ev, roi=(10, 5, 10, 10))
    assert list(out["x"]) == [0, 9] and list(out["y"]) == [5, 5] and list(out["t"]) == [2, 3]
    assert list(crop_roi(ev, roi=(10, 5, 10, 10), shift=False)["x"]) == [10, 19]
    assert list(ev["x"]) == [5, 10, 19, 20, 12]  # input untouched


@pytest.mark.parametrize("size", [(20, 10), (39, 29), (1, 1), (40, 30)])
def test_crop_roi_matches_tonic_center_crop(size):
    transforms = pytest.importorskip("tonic.transforms", reason="tonic is not installed (dev dependency)")
    ev = random_stream(np.random.default_rng(sum(size)), 5_000)
    ox, oy = (W - size[0]) // 2, (H - size[1]) // 2
    theirs = transforms.CenterCrop(sensor_size=(W, H, 2), size=size)(to_tonic(ev))
    assert_same_events(crop_roi(ev, roi=(ox, oy, *size)), theirs)


@pytest.mark.parametrize(
    ("spatial", "time"), [(0.5, 1), (0.25, 0.001), ((0.3, 0.7), 1), (1 / 3, 2.5), (1.0, 1), (2.0, 1)]
)
def test_downsample_matches_tonic(spatial, time):
    transforms = pytest.importorskip("tonic.transforms", reason="tonic is not installed (dev dependency)")
    ev = random_stream(np.random.default_rng(7), 5_000, t0=1_000_003)
    theirs = transforms.Downsample(time_factor=time, spatial_factor=spatial)(to_tonic(ev))
    ours = downsample(ev, spatial_factor=spatial, time_factor=time)
    assert ours.dtype == EVENT_DTYPE
    assert_same_events(ours, theirs)


def test_downsample_refuses_coordinates_past_uint16():
    with pytest.raises(OptionError, match="uint16"):
        downsample(make_events([40_000], [0], [1], [0]), spatial_factor=2.0)
    with pytest.raises(OptionError, match="spatial_factor"):
        downsample(empty_events(), spatial_factor=0)


def test_polarity_filter():
    ev = random_stream(np.random.default_rng(1), 1_000)
    on = polarity_filter(ev, polarity=1)
    assert len(on) == int(ev["p"].sum()) and set(on["p"]) == {1}
    assert len(polarity_filter(ev, polarity=0)) == len(ev) - len(on)
    with pytest.raises(OptionError, match="polarity"):
        polarity_filter(ev, polarity=-1)


def test_refractory_hand_example():
    # Pixel (0,0): 100 kept, 150 dropped (50 <= 60), 205 dropped (55 after the dropped 150), 300 kept.
    ev = make_events([0, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1] * 5, [100, 150, 160, 205, 300])
    assert list(refractory_filter(ev, refractory_us=60)["t"]) == [100, 160, 300]
    ev0 = make_events([0, 1], [0, 0], [1, 1], [0, 0])
    assert len(refractory_filter(ev0, refractory_us=10)) == 2
    assert len(refractory_filter(ev0, refractory_us=10, tonic_compat=True)) == 0  # tonic drops a first event at t=0


@pytest.mark.parametrize(
    ("refractory", "t0", "n"), list(itertools.product([0, 1, 500, 20_000], [0, 20_000], [1, 300, 4_000]))
)
def test_refractory_matches_tonic(refractory, t0, n):
    transforms = pytest.importorskip("tonic.transforms", reason="tonic is not installed (dev dependency)")
    ev = random_stream(np.random.default_rng(refractory + n), n, t0=t0, w=8, h=6)
    theirs = transforms.RefractoryPeriod(delta=refractory)(to_tonic(ev))
    assert_same_events(refractory_filter(ev, refractory_us=refractory, tonic_compat=True), theirs)
    if t0 >= refractory:
        assert_same_events(refractory_filter(ev, refractory_us=refractory), theirs)


def test_denoise_hand_example():
    # (5,5) at 100 has no earlier neighbour; (6,5) at 150 sees it (50 < 100); (20,20) is isolated;
    # (5,6) at 400 is 300 after (5,5)'s event: too old.
    ev = make_events([5, 6, 20, 5], [5, 5, 20, 6], [1, 0, 1, 1], [100, 150, 160, 400])
    assert list(denoise(ev, filter_us=100)["t"]) == [150]
    assert list(denoise(ev, filter_us=301)["t"]) == [150, 400]


@pytest.mark.parametrize(
    ("filter_us", "t0", "n"), list(itertools.product([0, 1, 300, 10_000], [0, 10_000], [1, 500, 5_000]))
)
def test_denoise_matches_tonic(filter_us, t0, n):
    transforms = pytest.importorskip("tonic.transforms", reason="tonic is not installed (dev dependency)")
    ev = random_stream(np.random.default_rng(filter_us + n + t0), n, t0=t0, w=12, h=9)
    ev["t"][n // 2 : n // 2 + 20] = ev["t"][n // 2]  # simultaneous events: stream order decides
    theirs = transforms.Denoise(filter_time=filter_us)(to_tonic(ev))
    assert_same_events(denoise(ev, filter_us=filter_us, tonic_compat=True), theirs)
    if t0 >= filter_us:
        assert_same_events(denoise(ev, filter_us=filter_us), theirs)


def test_denoise_counts_on_a_denser_stream():
    ev = random_stream(np.random.default_rng(11), 20_000, t0=5_000, span=1_000_000)
    kept = denoise(ev, filter_us=5_000)
    assert 0 < len(kept) < len(ev)
    transforms = pytest.importorskip("tonic.transforms", reason="tonic is not installed (dev dependency)")
    assert len(kept) == len(transforms.Denoise(filter_time=5_000)(to_tonic(ev)))


@pytest.mark.parametrize("n_cuts", [0, 1, 10, 500])
def test_chunked_filters_equal_the_whole_array_functions(n_cuts):
    rng = np.random.default_rng(n_cuts)
    ev = random_stream(rng, 8_000, w=16, h=12)
    ev["t"][100:130] = ev["t"][100]
    refr = ChunkedRefractory((16, 12), refractory_us=3_000)
    assert_same_events(run_chunked(refr, ev, rng, n_cuts), refractory_filter(ev, refractory_us=3_000))
    den = ChunkedDenoise((16, 12), filter_us=2_000)
    assert_same_events(run_chunked(den, ev, rng, n_cuts), denoise(ev, filter_us=2_000))
    den.reset()
    assert_same_events(den(ev), denoise(ev, filter_us=2_000))


def test_chunked_filters_check_geometry_and_coordinates():
    with pytest.raises(OptionError, match="geometry"):
        ChunkedDenoise((0, 5), filter_us=1)
    with pytest.raises(InputError, match=r"\(x=16, y=0\) lies outside the 16x12 geometry"):
        ChunkedRefractory((16, 12), refractory_us=1)(make_events([16], [0], [1], [0]))


def test_filters_leave_their_input_alone_and_accept_empty_arrays():
    ev = random_stream(np.random.default_rng(2), 100)
    before = ev.copy()
    for out in (
        crop_roi(ev, roi=(1, 1, 5, 5)),
        downsample(ev, spatial_factor=0.5),
        refractory_filter(ev, refractory_us=10),
        denoise(ev, filter_us=10),
    ):
        assert out.dtype == EVENT_DTYPE and not np.shares_memory(out, ev)
    np.testing.assert_array_equal(ev, before)
    for f in (lambda e: refractory_filter(e, refractory_us=1), lambda e: denoise(e, filter_us=1)):
        assert len(f(empty_events())) == 0


def test_transforms_forward_to_the_functions_and_check_parameters_up_front():
    import dataclasses

    from edgesnn.events import transforms as T
    from edgesnn.events.functional.slicing import slice_by_count, slice_by_time

    ev = random_stream(np.random.default_rng(4), 3_000, t0=50_000)
    pairs = [
        (T.Crop(roi=(2, 3, 10, 8)), crop_roi(ev, roi=(2, 3, 10, 8))),
        (T.Downsample(spatial_factor=0.5, time_factor=0.001), downsample(ev, spatial_factor=0.5, time_factor=0.001)),
        (T.PolarityFilter(polarity=0), polarity_filter(ev, polarity=0)),
        (T.Refractory(refractory_us=2_000), refractory_filter(ev, refractory_us=2_000)),
        (T.Denoise(filter_us=3_000), denoise(ev, filter_us=3_000)),
    ]
    for transform, expected in pairs:
        np.testing.assert_array_equal(transform(ev), expected)
        with pytest.raises(dataclasses.FrozenInstanceError):
            transform.tonic_compat = True
    windows = T.SliceByTime(window_us=20_000, stride_us=5_000)(ev)
    assert [len(w) for w in windows] == [len(w) for w in slice_by_time(ev, window_us=20_000, stride_us=5_000)]
    assert len(T.SliceByCount(count=100, stride=50)(ev)) == len(slice_by_count(ev, count=100, stride=50))
    slicer = T.SliceByCount(count=100).slicer()
    assert sum(len(w) for w in slicer.push(ev)) == 3_000
    for bad in (
        lambda: T.Crop(roi=(0, 0, 0, 5)),
        lambda: T.Downsample(spatial_factor=-1),
        lambda: T.PolarityFilter(polarity=2),
        lambda: T.Refractory(refractory_us=-5),
        lambda: T.Denoise(filter_us=1.5),
        lambda: T.SliceByTime(window_us=0),
        lambda: T.SliceByTime(window_us=10, start_us=1.5),
        lambda: T.SliceByCount(count=10, stride=0),
    ):
        with pytest.raises(OptionError):
            bad()
