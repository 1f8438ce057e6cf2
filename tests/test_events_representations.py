"""Event representations: tonic parity (tonic_compat=True), the documented corrections, speed-path agreement."""

import dataclasses
import itertools

import numpy as np
import pytest

from edgesnn.errors import InputError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE, make_events
from edgesnn.events.functional.to_event_frame import to_event_frame
from edgesnn.events.functional.to_frame import to_frame
from edgesnn.events.functional.to_histogram import to_histogram, to_stacked_histogram, to_time_bins
from edgesnn.events.functional.to_timesurface import to_timesurface
from edgesnn.events.functional.to_voxel_grid import to_voxel_grid
from edgesnn.events.representations import (
    ToEventFrame,
    ToFrame,
    ToHistogram,
    ToStackedHistogram,
    ToTimeBins,
    ToTimesurface,
    ToVoxelGrid,
)  # fmt: skip

SIZES = [(17, 11), (64, 48)]


def random_stream(n, width, height, *, seed=0, t_max=10_000, t0=1_000):
    """``n`` sorted events with uniform pixels, polarities and times in [t0, t0 + t_max)."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(t0, t0 + t_max, n))
    return make_events(rng.integers(0, width, n), rng.integers(0, height, n), rng.integers(0, 2, n), t)


def as_tonic(events, *, bool_polarity=False):
    """The same events in tonic's dtype (x, y int16, t int64, p int8 or bool)."""
    p_type = "?" if bool_polarity else "<i1"
    out = np.empty(len(events), dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", p_type)])
    for f in "xyt":
        out[f] = events[f]
    out["p"] = events["p"].astype(bool) if bool_polarity else events["p"]
    return out


@pytest.fixture(scope="module")
def tf():
    return pytest.importorskip("tonic.functional")


# -- tonic parity ---------------------------------------------------------------------------
FRAME_CASES = [
    ({"time_window": 700}, {"time_window_us": 700}),
    ({"time_window": 700, "include_incomplete": True}, {"time_window_us": 700, "include_incomplete": True}),
    ({"time_window": 500, "overlap": 200}, {"time_window_us": 500, "overlap": 200}),
    (
        {"time_window": 1000, "overlap": 250, "include_incomplete": True},
        {"time_window_us": 1000, "overlap": 250, "include_incomplete": True},
    ),
    (
        {"time_window": 2000, "start_time": 0, "end_time": 14000},
        {"time_window_us": 2000, "start_time_us": 0, "end_time_us": 14000},
    ),
    ({"event_count": 300}, {"event_count": 300}),
    (
        {"event_count": 300, "overlap": 50, "include_incomplete": True},
        {"event_count": 300, "overlap": 50, "include_incomplete": True},
    ),
    ({"n_time_bins": 7}, {"n_time_bins": 7}),
    ({"n_time_bins": 5, "overlap": 0.25}, {"n_time_bins": 5, "overlap": 0.25}),
    ({"n_event_bins": 6}, {"n_event_bins": 6}),
    ({"n_event_bins": 4, "overlap": 0.5}, {"n_event_bins": 4, "overlap": 0.5}),
]


@pytest.mark.parametrize(("size", "n", "case"), list(itertools.product(SIZES, [1, 999, 6000], range(len(FRAME_CASES)))))
def test_to_frame_tonic_compat_matches_tonic(tf, size, n, case):
    tonic_kw, our_kw = FRAME_CASES[case]
    ev = random_stream(n, *size, seed=n + case)
    sensor = (*size, 2)
    expected = tf.to_frame_numpy(as_tonic(ev), sensor, **tonic_kw)
    got = to_frame(ev, sensor_size=sensor, tonic_compat=True, **our_kw)
    assert got.dtype == expected.dtype == np.int16
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(("size", "n_bins", "bool_p"), list(itertools.product(SIZES, [1, 2, 3, 10], [False, True])))
def test_to_voxel_grid_tonic_compat_matches_tonic_bit_for_bit(tf, size, n_bins, bool_p):
    ev = random_stream(5000, *size, seed=n_bins)
    tonic_ev = as_tonic(ev, bool_polarity=bool_p)
    expected = tf.to_voxel_grid_numpy(tonic_ev.copy(), (*size, 2), n_bins)
    got = to_voxel_grid(tonic_ev, sensor_size=(*size, 2), n_time_bins=n_bins, tonic_compat=True)
    assert got.shape == expected.shape == (n_bins, 1, size[1], size[0])
    assert np.array_equal(got, expected)  # exact float64 equality, not allclose


@pytest.mark.parametrize(
    ("size", "dt", "tau", "overlap", "incomplete"),
    list(itertools.product(SIZES, [700, 2500], [300.0, 5000.0], [0, 100], [False, True])),
)
def test_to_timesurface_tonic_compat_matches_tonic(tf, size, dt, tau, overlap, incomplete):
    ev = random_stream(3000, *size, seed=dt + overlap)
    sensor = (*size, 2)
    expected = tf.to_timesurface_numpy(as_tonic(ev), sensor, dt, tau, overlap=overlap, include_incomplete=incomplete)
    got = to_timesurface(
        ev,
        sensor_size=sensor,
        dt_us=dt,
        tau_us=tau,
        overlap_us=overlap,
        include_incomplete=incomplete,
        tonic_compat=True,
    )
    assert np.array_equal(got, expected)


def test_tonic_voxel_quirks_are_reproduced_only_on_request():
    # the example of the ecosystem notes: OFF at 0, ON at 50, OFF at 100, two bins
    ev = make_events([0, 1, 0], [0, 0, 0], [0, 1, 0], [0, 50, 100])
    tonic_bool = as_tonic(ev, bool_polarity=True)
    compat = to_voxel_grid(tonic_bool, sensor_size=(2, 1, 2), n_time_bins=2, tonic_compat=True)
    assert compat.ravel().tolist() == [1.0, 0.0, 0.0, 1.0]  # every event +1, the last one dropped
    fixed = to_voxel_grid(tonic_bool, sensor_size=(2, 1, 2), n_time_bins=2)
    # (T - 1) scale: OFF at bin 0, ON split half/half, OFF at bin 1; polarity signed
    assert fixed.ravel().tolist() == [-1.0, 0.5, -1.0, 0.5]


def test_tonic_voxel_grid_divides_by_zero_where_we_raise_in_compat_mode():
    ev = make_events([0, 1], [0, 0], [1, 0], [5, 5])
    with pytest.raises(InputError, match="one timestamp"):
        to_voxel_grid(ev, sensor_size=(2, 1, 2), n_time_bins=3, tonic_compat=True)
    assert to_voxel_grid(ev, sensor_size=(2, 1, 2), n_time_bins=3)[0].ravel().tolist() == [1.0, -1.0]


# -- the corrected defaults -----------------------------------------------------------------
def test_default_time_windows_keep_an_event_exactly_at_the_end():
    ev = make_events([0, 1, 2, 3], [0, 0, 0, 0], [1, 1, 1, 1], [0, 150, 299, 300])
    compat = to_frame(ev, sensor_size=(4, 1, 2), time_window_us=100, include_incomplete=True, tonic_compat=True)
    fixed = to_frame(ev, sensor_size=(4, 1, 2), time_window_us=100, include_incomplete=True)
    assert compat.shape[0] == 3 and compat.sum() == 3
    assert fixed.shape[0] == 4 and fixed.sum() == 4 and fixed[3, 1, 0, 3] == 1


@pytest.mark.parametrize(("n", "bins"), list(itertools.product([10, 1001, 4096], [1, 3, 7])))
def test_default_bins_place_every_event_once(n, bins):
    ev = random_stream(n, 9, 5, seed=bins)
    assert to_frame(ev, sensor_size=(9, 5, 2), n_time_bins=bins).sum() == n
    assert to_frame(ev, sensor_size=(9, 5, 2), n_event_bins=bins).sum() == n
    assert to_time_bins(ev, sensor_size=(9, 5, 2), n_bins=bins).sum() == n


@pytest.mark.parametrize("n_bins", [1, 2, 5, 9])
def test_default_voxel_grid_conserves_signed_polarity(n_bins):
    ev = random_stream(4000, 13, 7, seed=n_bins)
    grid = to_voxel_grid(ev, sensor_size=(13, 7, 2), n_time_bins=n_bins)
    signed = np.where(ev["p"] > 0, 1.0, -1.0)
    assert grid.sum() == pytest.approx(signed.sum(), abs=1e-9)
    # the first event sits wholly in bin 0, the last wholly in bin T-1
    ends = make_events([0, 1], [0, 0], [1, 0], [100, 900])
    g = to_voxel_grid(ends, sensor_size=(13, 7, 2), n_time_bins=n_bins)
    assert g[0, 0, 0, 0] == 1.0 and g[n_bins - 1, 0, 0, 1] == -1.0 and np.abs(g).sum() == 2.0


def test_frame_counts_saturate_by_default_and_wrap_like_tonic_in_compat_mode():
    n = 40_000
    ev = make_events(np.zeros(n, int), np.zeros(n, int), np.ones(n, int), np.arange(n))
    assert to_frame(ev, sensor_size=(1, 1, 2), event_count=n)[0, 1, 0, 0] == 32767
    assert to_frame(ev, sensor_size=(1, 1, 2), event_count=n, tonic_compat=True)[0, 1, 0, 0] == np.int16(n - 65536)


def test_one_channel_sensor_merges_polarities_but_tonic_compat_refuses():
    ev = random_stream(100, 4, 4)
    assert to_frame(ev, sensor_size=(4, 4, 1), event_count=100).sum() == 100
    with pytest.raises(InputError, match="both polarities"):
        to_frame(ev, sensor_size=(4, 4, 1), event_count=100, tonic_compat=True)


# -- histograms -----------------------------------------------------------------------------
def reference_time_bins(ev, w, h, n_bins, start, end):
    out = np.zeros((n_bins, 2, h, w), np.int64)
    for e in ev:
        if start <= e["t"] < end:
            k = (int(e["t"]) - start) * n_bins // (end - start)
            out[k, int(e["p"] > 0), e["y"], e["x"]] += 1
    return out


@pytest.mark.parametrize(
    ("size", "n_bins", "window"), list(itertools.product(SIZES, [1, 4, 10], [(None, None), (3000, 9000)]))
)
def test_time_bins_match_a_per_event_reference_sorted_or_not(size, n_bins, window):
    ev = random_stream(3000, *size, seed=n_bins)
    start = int(ev["t"][0]) if window[0] is None else window[0]
    end = int(ev["t"][-1]) + 1 if window[1] is None else window[1]
    expected = reference_time_bins(ev, *size, n_bins, start, end)
    kw = {"sensor_size": (*size, 2), "n_bins": n_bins, "t_start_us": window[0], "t_end_us": window[1]}
    np.testing.assert_array_equal(to_time_bins(ev, **kw), expected)
    shuffled = ev[np.random.default_rng(1).permutation(len(ev))]
    np.testing.assert_array_equal(to_time_bins(shuffled, **kw), expected)


@pytest.mark.parametrize(
    ("dtype", "cutoff", "channels", "shuffle"),
    list(itertools.product([np.float32, np.int32], [None, 2], [1, 2], [False, True])),
)
def test_time_bins_native_kernel_equals_the_bincount_path(monkeypatch, dtype, cutoff, channels, shuffle):
    from edgesnn.events.functional import to_histogram as module

    if module._H is None:
        pytest.skip("the C kernel is not built")
    ev = random_stream(4000, 40, 30, seed=7)
    ev["p"][::3] = -1  # -1/0 are OFF, > 0 is ON
    if shuffle:
        ev = ev[np.random.default_rng(2).permutation(len(ev))]
    kw = {"sensor_size": (40, 30, channels), "n_bins": 6, "t_start_us": 2000, "t_end_us": 9000}
    native = to_time_bins(ev, count_cutoff=cutoff, dtype=dtype, **kw)
    monkeypatch.setattr(module, "_H", None)
    numpy_path = to_time_bins(ev, count_cutoff=cutoff, dtype=dtype, **kw)
    assert native.dtype == numpy_path.dtype == dtype
    np.testing.assert_array_equal(native, numpy_path)


def test_time_bins_write_into_a_reused_buffer_and_check_it():
    ev = random_stream(3000, 40, 30, seed=3)
    kw = {"sensor_size": (40, 30, 2), "n_bins": 4, "t_start_us": 2000, "t_end_us": 9000, "dtype": np.float32}
    want = to_time_bins(ev, **kw)
    buf = np.full((4, 2, 30, 40), 7.0, np.float32)  # stale contents from an earlier window
    for events in (ev, ev[np.random.default_rng(4).permutation(len(ev))]):  # sorted (C) and shuffled
        assert to_time_bins(events, out=buf, **kw) is buf
        np.testing.assert_array_equal(buf, want)
    assert to_time_bins(ev[:0], out=buf, **kw) is buf and not buf.any()
    with pytest.raises(OptionError, match="out.*shape"):
        to_time_bins(ev, out=np.zeros((4, 2, 30, 41), np.float32), **kw)
    with pytest.raises(OptionError, match="out.*dtype float32"):
        to_time_bins(ev, out=np.zeros((4, 2, 30, 40), np.int32), **kw)


def test_histogram_is_the_time_bins_sum_and_event_frame_its_difference():
    ev = random_stream(5000, 30, 20)
    hist = to_histogram(ev, sensor_size=(30, 20, 2))
    assert hist.shape == (2, 20, 30) and hist.dtype == np.int32
    np.testing.assert_array_equal(hist, to_time_bins(ev, sensor_size=(30, 20, 2), n_bins=5).sum(0))
    np.testing.assert_array_equal(to_event_frame(ev, sensor_size=(30, 20, 2)), hist[1] - hist[0])
    np.testing.assert_array_equal(to_event_frame(ev, sensor_size=(30, 20, 2), mode="binary"), hist.sum(0) > 0)
    np.testing.assert_array_equal(to_histogram(ev, sensor_size=(30, 20, 1))[0], hist.sum(0))


def test_count_cutoff_clips_counts():
    ev = make_events([1] * 20, [2] * 20, [1] * 20, np.arange(20))
    bins = to_time_bins(ev, sensor_size=(3, 3, 2), n_bins=2, count_cutoff=4)
    assert bins[:, 1, 2, 1].tolist() == [4, 4] and bins.sum() == 8


def rvt_reference(ev, w, h, n_bins, cutoff):
    """RVT's StackedHistogram formula (float64 normalisation, exact for these short spans)."""
    t = ev["t"].astype(np.float64)
    t_norm = (t - t[0]) / max(t[-1] - t[0], 1) * n_bins
    t_idx = np.minimum(np.floor(t_norm).astype(int), n_bins - 1)
    flat = ev["x"].astype(int) + w * ev["y"].astype(int) + h * w * t_idx + n_bins * h * w * ev["p"].astype(int)
    counts = np.bincount(flat, minlength=2 * n_bins * h * w)
    return np.minimum(counts, cutoff).astype(np.uint8).reshape(2 * n_bins, h, w)


@pytest.mark.parametrize(("n_bins", "cutoff"), list(itertools.product([1, 5, 10], [None, 3])))
def test_stacked_histogram_follows_rvt_and_puts_the_last_event_in_the_last_bin(n_bins, cutoff):
    ev = random_stream(4000, 20, 10, seed=n_bins, t_max=50_000)
    got = to_stacked_histogram(ev, sensor_size=(20, 10, 2), n_bins=n_bins, count_cutoff=cutoff)
    np.testing.assert_array_equal(got, rvt_reference(ev, 20, 10, n_bins, 255 if cutoff is None else cutoff))
    tphw = to_stacked_histogram(ev, sensor_size=(20, 10, 2), n_bins=n_bins, count_cutoff=cutoff, layout="tphw")
    np.testing.assert_array_equal(tphw, got.reshape(2, n_bins, 10, 20).transpose(1, 0, 2, 3))
    last = ev[-1]
    assert got[int(last["p"]) * n_bins + n_bins - 1, last["y"], last["x"]] >= 1


# -- contracts shared by every representation -------------------------------------------------
ALL = [
    lambda ev, s: to_histogram(ev, sensor_size=s),
    lambda ev, s: to_time_bins(ev, sensor_size=s, n_bins=3),
    lambda ev, s: to_stacked_histogram(ev, sensor_size=s, n_bins=3),
    lambda ev, s: to_frame(ev, sensor_size=s, time_window_us=500),
    lambda ev, s: to_frame(ev, sensor_size=s, n_time_bins=4, tonic_compat=True),
    lambda ev, s: to_voxel_grid(ev, sensor_size=s, n_time_bins=4),
    lambda ev, s: to_voxel_grid(ev, sensor_size=s, n_time_bins=4, tonic_compat=True),
    lambda ev, s: to_timesurface(ev, sensor_size=s, dt_us=1000, tau_us=100.0),
    lambda ev, s: to_event_frame(ev, sensor_size=s),
]
EMPTY_SHAPES = [
    (2, 5, 7),
    (3, 2, 5, 7),
    (6, 5, 7),
    (1, 2, 5, 7),
    (4, 2, 5, 7),
    (4, 1, 5, 7),
    (4, 1, 5, 7),
    (1, 2, 5, 7),
    (5, 7),
]


@pytest.mark.parametrize("i", range(len(ALL)))
def test_input_is_never_modified_nor_returned(i):
    ev = random_stream(500, 7, 5)
    before = ev.copy()
    out = ALL[i](ev, (7, 5, 2))
    assert out is not ev and not np.shares_memory(out, ev)
    np.testing.assert_array_equal(ev, before)


@pytest.mark.parametrize("i", range(len(ALL)))
def test_empty_input_gives_zeros_of_a_defined_shape(i):
    out = ALL[i](np.zeros(0, EVENT_DTYPE), (7, 5, 2))
    assert out.shape == EMPTY_SHAPES[i] and not out.any()


@pytest.mark.parametrize("i", range(len(ALL)))
def test_coordinates_outside_the_sensor_are_an_input_error(i):
    ev = make_events([0, 7], [0, 1], [1, 0], [0, 10])
    with pytest.raises(InputError, match="x: value 7 outside"):
        ALL[i](ev, (7, 5, 2))


def test_bad_options_name_the_parameter():
    ev = random_stream(10, 4, 4)
    with pytest.raises(OptionError, match="sensor_size"):
        to_histogram(ev, sensor_size=(4, 4))
    with pytest.raises(OptionError, match="exactly one"):
        to_frame(ev, sensor_size=(4, 4, 2), time_window_us=10, n_time_bins=2)
    with pytest.raises(OptionError, match="overlap"):
        to_frame(ev, sensor_size=(4, 4, 2), time_window_us=10, overlap=10)
    with pytest.raises(OptionError, match="n_bins"):
        to_time_bins(ev, sensor_size=(4, 4, 2), n_bins=0)
    with pytest.raises(InputError, match="must not decrease"):
        to_frame(ev[::-1], sensor_size=(4, 4, 2), n_time_bins=2)


# -- transforms -----------------------------------------------------------------------------
TRANSFORMS = [
    (ToHistogram((9, 6, 2)), lambda ev: to_histogram(ev, sensor_size=(9, 6, 2))),
    (ToTimeBins((9, 6, 2), n_bins=3), lambda ev: to_time_bins(ev, sensor_size=(9, 6, 2), n_bins=3)),
    (ToStackedHistogram((9, 6, 2), n_bins=3), lambda ev: to_stacked_histogram(ev, sensor_size=(9, 6, 2), n_bins=3)),
    (ToFrame((9, 6, 2), n_event_bins=3), lambda ev: to_frame(ev, sensor_size=(9, 6, 2), n_event_bins=3)),
    (ToVoxelGrid((9, 6, 2), n_time_bins=3, tonic_compat=True),
     lambda ev: to_voxel_grid(ev, sensor_size=(9, 6, 2), n_time_bins=3, tonic_compat=True)),
    (ToTimesurface((9, 6, 2), dt_us=2000, tau_us=500.0),
     lambda ev: to_timesurface(ev, sensor_size=(9, 6, 2), dt_us=2000, tau_us=500.0)),
    (ToEventFrame((9, 6, 2), mode="binary"), lambda ev: to_event_frame(ev, sensor_size=(9, 6, 2), mode="binary")),
]  # fmt: skip


@pytest.mark.parametrize("i", range(len(TRANSFORMS)))
def test_transforms_are_frozen_configuration_forwarding_to_the_functions(i):
    transform, function = TRANSFORMS[i]
    ev = random_stream(2000, 9, 6, seed=i)
    np.testing.assert_array_equal(transform(ev), function(ev))
    with pytest.raises(dataclasses.FrozenInstanceError):
        transform.sensor_size = (1, 1, 2)
    assert hash(transform) == hash(dataclasses.replace(transform))


def test_transform_checks_its_sensor_size_at_construction():
    with pytest.raises(OptionError, match=r"sensor_size\[2\]"):
        ToVoxelGrid((9, 6, 3))
    assert ToHistogram([9, 6, 2]).sensor_size == (9, 6, 2)
