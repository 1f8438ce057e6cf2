"""The event-camera simulator against closed forms: crossings, timing, thresholds, refractory, noise, leak."""

import numpy as np
import pytest

from edgesnn.errors import InputError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE
from edgesnn.events.simulator import EventSimulator, SimulatorConfig

EPS = 1e-3


def exact(**kw):
    """A config without threshold variation or noise unless asked."""
    return SimulatorConfig(**{"threshold_sigma": 0.0, **kw})


def ramp_target(i0, k, c):
    """Intensity whose log(I + eps) is exactly k thresholds above that of i0."""
    return (i0 + EPS) * np.exp(k * c) - EPS


@pytest.mark.parametrize(("k", "c", "dt"), [(1, 0.2, 1000), (5, 0.2, 1000), (12, 0.1, 6000), (3, 0.35, 999)])
def test_a_ramp_of_k_thresholds_gives_k_evenly_spaced_events(k, c, dt):
    sim = EventSimulator(3, 2, exact(contrast_threshold_pos=c, contrast_threshold_neg=c))
    base = np.full((2, 3), 0.3)
    sim.step(base, 10_000)
    up = base.copy()
    up[1, 2] = ramp_target(0.3, k, c)
    ev = sim.step(up, 10_000 + dt)
    assert ev.dtype == EVENT_DTYPE and len(ev) == k
    assert set(ev["x"].tolist()) == {2} and set(ev["y"].tolist()) == {1} and ev["p"].all()
    expected = 10_000 + np.rint(np.arange(1, k + 1) * dt / k).astype(int)
    np.testing.assert_array_equal(ev["t"], expected)
    # and back down: k OFF events, the last one at the new frame's time
    down = sim.step(base, 10_000 + 2 * dt)
    assert len(down) == k and not down["p"].any() and down["t"][-1] == 10_000 + 2 * dt


def test_crossings_are_timed_where_the_linear_ramp_meets_each_level():
    c = 0.2
    sim = EventSimulator(1, 1, exact(contrast_threshold_pos=c))
    sim.step(np.full((1, 1), 0.5), 0)
    # log change of 2.5 thresholds: levels at 1 and 2 thresholds, reached at 40% and 80% of the interval
    ev = sim.step(np.full((1, 1), ramp_target(0.5, 2.5, c)), 1000)
    assert ev["t"].tolist() == [400, 800]
    # the half threshold left over carries to the next interval: 0.5 more thresholds fire at its start
    ev = sim.step(np.full((1, 1), ramp_target(0.5, 3.5, c)), 2000)
    assert ev["t"].tolist() == [1500]


def test_a_static_scene_without_noise_emits_nothing():
    sim = EventSimulator(16, 8, SimulatorConfig(seed=1))
    frame = np.random.default_rng(0).random((8, 16))
    total = sum(len(sim.step(frame, t)) for t in range(0, 100_000, 1000))
    assert total == 0


def test_thresholds_vary_per_pixel_with_the_configured_statistics():
    sim = EventSimulator(200, 150, SimulatorConfig(contrast_threshold_pos=0.25, contrast_threshold_neg=0.15,
                                                   threshold_sigma=0.03, seed=7))  # fmt: skip
    c_pos, c_neg = sim.thresholds
    n = c_pos.size
    assert c_pos.shape == (150, 200)
    assert abs(c_pos.mean() - 0.25) < 4 * 0.03 / np.sqrt(n)
    assert abs(c_neg.mean() - 0.15) < 4 * 0.03 / np.sqrt(n)
    assert c_pos.std() == pytest.approx(0.03, rel=0.03) and c_neg.std() == pytest.approx(0.03, rel=0.03)
    assert np.corrcoef(c_pos.ravel(), c_neg.ravel())[0, 1] < 0.02  # drawn independently


def test_thresholds_are_clipped_at_the_minimum():
    sim = EventSimulator(100, 100, SimulatorConfig(contrast_threshold_pos=0.02, threshold_sigma=0.05, seed=3))
    c_pos, _ = sim.thresholds
    assert c_pos.min() == 0.01 and (c_pos == 0.01).mean() > 0.3


def test_per_pixel_thresholds_set_the_number_of_events():
    sim = EventSimulator(50, 40, SimulatorConfig(threshold_sigma=0.04, seed=11))
    c_pos, _ = sim.thresholds
    sim.step(np.full((40, 50), 0.1), 0)
    target = (0.1 + EPS) * np.exp(1.0) - EPS  # a log change of exactly 1.0 everywhere
    ev = sim.step(np.full((40, 50), target), 1000)
    counts = np.zeros((40, 50), int)
    np.add.at(counts, (ev["y"], ev["x"]), 1)
    np.testing.assert_array_equal(counts, np.floor(1.0 / c_pos + 1e-9).astype(int))


def test_refractory_period_drops_events_and_consumes_the_change():
    c = 0.1
    sim = EventSimulator(1, 1, exact(contrast_threshold_pos=c, contrast_threshold_neg=c, refractory_us=250))
    sim.step(np.full((1, 1), 0.2), 0)
    ev = sim.step(np.full((1, 1), ramp_target(0.2, 10, c)), 1000)  # crossings every 100 us
    assert ev["t"].tolist() == [100, 400, 700, 1000]
    # the refractory clock runs across frames: a crossing 100 us after the last event is dropped ...
    assert len(sim.step(np.full((1, 1), ramp_target(0.2, 11, c)), 1100)) == 0
    # ... and dropped crossings move the reference: holding the level gives nothing more
    assert len(sim.step(np.full((1, 1), ramp_target(0.2, 11, c)), 5000)) == 0
    ev = sim.step(np.full((1, 1), ramp_target(0.2, 12, c)), 6000)
    assert ev["t"].tolist() == [6000]


def test_refractory_is_per_pixel():
    c = 0.1
    sim = EventSimulator(2, 1, exact(contrast_threshold_pos=c, refractory_us=10_000))
    sim.step(np.full((1, 2), 0.2), 0)
    ev = sim.step(np.array([[ramp_target(0.2, 3, c), ramp_target(0.2, 2, c)]]), 1000)
    assert sorted(zip(ev["x"].tolist(), ev["t"].tolist(), strict=True)) == [(0, 333), (1, 500)]


def test_shot_noise_rate_and_polarity_balance():
    rate, w, h, seconds = 4.0, 100, 80, 2.0
    sim = EventSimulator(w, h, SimulatorConfig(shot_noise_rate_hz=rate, seed=5))
    frame = np.full((h, w), 0.5)
    sim.step(frame, 0)
    ev = np.concatenate([sim.step(frame, t) for t in range(10_000, int(seconds * 1e6) + 1, 10_000)])
    expected = rate * w * h * seconds
    assert abs(len(ev) - expected) < 5 * np.sqrt(expected)
    assert abs(ev["p"].mean() - 0.5) < 5 * 0.5 / np.sqrt(len(ev))
    assert ev["t"].min() > 0 and ev["t"].max() <= seconds * 1e6
    per_pixel = np.bincount(ev["y"].astype(int) * w + ev["x"], minlength=w * h)
    assert per_pixel.var() == pytest.approx(per_pixel.mean(), rel=0.1)  # Poisson: variance = mean


def test_leak_events_fire_at_the_leak_rate_and_are_on():
    rate, w, h = 2.0, 30, 20
    sim = EventSimulator(w, h, SimulatorConfig(leak_rate_hz=rate, seed=9))
    frame = np.full((h, w), 0.4)
    sim.step(frame, 0)
    ev = np.concatenate([sim.step(frame, t) for t in range(20_000, 5_000_001, 20_000)])
    assert ev["p"].all()
    per_pixel = np.bincount(ev["y"].astype(int) * w + ev["x"], minlength=w * h)
    assert set(per_pixel.tolist()) <= {9, 10, 11} and per_pixel.mean() == pytest.approx(rate * 5, abs=0.2)
    # random initial phases: first leak events are spread over the first period, not simultaneous
    first = np.array([ev["t"][(ev["x"] == i % w) & (ev["y"] == i // w)][0] for i in range(w * h)])
    assert first.std() > 0.2 * 0.5e6 / np.sqrt(3)


def test_output_is_sorted_by_time_then_pixel_and_reproducible():
    def run(seed):
        sim = EventSimulator(40, 30, SimulatorConfig(shot_noise_rate_hz=20.0, seed=seed))
        rng = np.random.default_rng(0)
        return [sim.step(rng.random((30, 40)), t) for t in range(0, 50_000, 5_000)]

    a, b, c = run(1), run(1), run(2)
    for chunk in a:
        key = chunk["t"] * 10_000 + chunk["y"].astype(np.int64) * 40 + chunk["x"]
        assert np.all(np.diff(key) >= 0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_an_explicit_generator_is_used_instead_of_the_seed():
    one = EventSimulator(10, 10, SimulatorConfig(seed=1), rng=np.random.default_rng(42))
    two = EventSimulator(10, 10, SimulatorConfig(seed=2), rng=np.random.default_rng(42))
    np.testing.assert_array_equal(one.thresholds[0], two.thresholds[0])


def test_reset_forgets_pixel_state_but_keeps_thresholds():
    sim = EventSimulator(4, 4, SimulatorConfig(seed=0))
    before = sim.thresholds[0]
    sim.step(np.full((4, 4), 0.1), 0)
    sim.reset()
    assert len(sim.step(np.full((4, 4), 0.9), 5)) == 0  # first frame after reset only initialises
    np.testing.assert_array_equal(sim.thresholds[0], before)


def test_bad_frames_and_times_are_input_errors():
    sim = EventSimulator(4, 3)
    with pytest.raises(InputError, match=r"frame: expected shape \(3, 4\)"):
        sim.step(np.zeros((4, 3)), 0)
    with pytest.raises(InputError, match="finite"):
        sim.step(np.full((3, 4), np.nan), 0)
    sim.step(np.zeros((3, 4)), 100)
    with pytest.raises(InputError, match="t_us: frame times must increase"):
        sim.step(np.zeros((3, 4)), 100)


@pytest.mark.parametrize(
    ("field", "value"),
    [("contrast_threshold_pos", 0.0), ("threshold_sigma", -0.1), ("refractory_us", -1), ("leak_rate_hz", float("nan"))],
)
def test_config_refuses_bad_values_naming_the_field(field, value):
    with pytest.raises(OptionError, match=field):
        SimulatorConfig(**{field: value})
