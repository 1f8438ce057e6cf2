"""The spoken-keyword spike dataset: cochlea model, binning, storage, split, determinism, shipped slice."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgesnn.errors import EventFileError, InputError, OptionError
from tools.datasets import _cochlea, _mix, _voices
from tools.datasets._plan import DatasetConfig, plan_split
from tools.datasets._scipy import signal
from tools.datasets.keywords import SIZES, bin_spikes, generate, load_split, read_split

SMALL = Path(__file__).parent / "data" / "keywords"
FS = 22050
DTS = (0.25e-3, 0.5e-3, 1e-3, 2e-3, 3e-3, 4e-3)


# --- cochlea ---------------------------------------------------------------------------


def test_centre_frequencies_increase_on_the_erb_scale() -> None:
    config = _cochlea.CochleaConfig(n_channels=64, f_min_hz=100.0, f_max_hz=8000.0)
    fc = _cochlea.centre_frequencies(config)
    assert fc.shape == (64,)
    assert np.all(np.diff(fc) > 0)
    np.testing.assert_allclose(fc[[0, -1]], [100.0, 8000.0])
    np.testing.assert_allclose(np.diff(_cochlea.erb_rate(fc)), np.diff(_cochlea.erb_rate(fc)).mean())


@pytest.mark.parametrize("k", [5, 20, 40, 60])
def test_pure_tone_excites_its_own_channel_most(k: int) -> None:
    config = _cochlea.CochleaConfig(n_channels=64)
    bank = _cochlea.filterbank(config, FS)
    f0 = _cochlea.centre_frequencies(config)[k]
    # Closed form: steady-state amplitude of channel j is |H_j(f0)|, 1 at its own centre.
    gains = np.array([abs(signal.freqz(b, a, worN=[f0], fs=FS)[1][0]) for b, a in bank])
    assert gains.argmax() == k
    np.testing.assert_allclose(gains[k], 1.0, rtol=1e-9)
    # Simulated: after the onset transient, RMS = |H_j(f0)| / sqrt(2) in every channel.
    t = np.arange(FS) / FS
    bm = _cochlea.basilar_membrane(np.sin(2 * np.pi * f0 * t), bank)
    steady = np.sqrt(np.mean(bm[:, FS // 2 :] ** 2, axis=1))
    np.testing.assert_allclose(steady, gains / np.sqrt(2), rtol=0.02, atol=1e-3)
    # And the spikes: a quiet tone (well below saturation) makes channel k fire most.
    times, units = _cochlea.encode(0.01 * np.sin(2 * np.pi * f0 * t), FS, config)
    assert np.bincount(units, minlength=64).argmax() == k


def test_integrate_and_fire_matches_closed_form_for_a_constant_rate() -> None:
    rate = np.full((2, FS), [[301.5], [0.0]])  # 301.5 spikes/s on channel 0 for 1 s, silence on channel 1
    times, units = _cochlea.integrate_and_fire(rate, FS)
    assert np.all(units == 0)
    # V(t) = 301.5 t crosses k at t = k / 301.5 s, for k = 1..301.
    expected = np.floor(np.arange(1, 302) / 301.5 * 1e6).astype(np.int64)
    assert times.dtype == np.int64 and units.dtype == np.uint16
    assert np.all(np.abs(times - expected) <= 1)


def test_cochlea_config_rejects_impossible_values() -> None:
    with pytest.raises(OptionError, match="cochlea.f_min_hz"):
        _cochlea.CochleaConfig(f_min_hz=9000.0, f_max_hz=8000.0)
    with pytest.raises(OptionError, match="Nyquist"):
        _cochlea.filterbank(_cochlea.CochleaConfig(f_max_hz=12000.0), FS)


# --- mixing ----------------------------------------------------------------------------


def test_mix_sets_the_requested_snr() -> None:
    rng = np.random.default_rng(1)
    speech = rng.standard_normal(1000) * 0.05
    noise = _mix.pink_noise(1000, rng)
    mixed = _mix.mix(speech, _mix.rms(speech), noise, snr_db=12.0)
    assert 20 * np.log10(_mix.rms(speech) / _mix.rms(mixed - speech)) == pytest.approx(12.0)


def test_place_keeps_margins_and_cuts_long_words() -> None:
    window, cut = _mix.place(np.ones(50), n_samples=100, shift_samples=-1000, margin_samples=10)
    assert cut == 0 and np.flatnonzero(window)[[0, -1]].tolist() == [10, 59]
    window, cut = _mix.place(np.ones(95), n_samples=100, shift_samples=0, margin_samples=10)
    assert cut == 15 and window.sum() == 80


# --- binning ---------------------------------------------------------------------------


@pytest.mark.parametrize("dt_s", DTS)
def test_bin_counts_sum_to_the_spike_count(dt_s: float) -> None:
    rng = np.random.default_rng(2)
    times = np.sort(rng.integers(0, 1_000_000, 5000))
    units = rng.integers(0, 64, 5000).astype(np.uint16)
    x = bin_spikes(times, units, dt_s=dt_s, n_channels=64, duration_s=1.0)
    assert x.dtype == np.float32 and x.shape == (int(np.ceil(1.0 / dt_s - 1e-9)), 64)
    assert x.sum() == 5000
    np.testing.assert_array_equal(x.sum(axis=0), np.bincount(units, minlength=64))


@pytest.mark.parametrize("dt_s", DTS)
def test_spikes_on_a_bin_edge_go_to_the_later_bin(dt_s: float) -> None:
    dt_us = round(dt_s * 1e6)
    k = 1_000_000 // dt_us - 1  # last full bin
    times = np.array([0, dt_us - 1, dt_us, k * dt_us - 1, k * dt_us])
    x = bin_spikes(times, np.zeros(5, np.uint16), dt_s=dt_s, n_channels=1, duration_s=1.0)
    assert x[0, 0] == 2 and x[1, 0] == 1 and x[k - 1, 0] == 1 and x[k, 0] == 1


def test_binning_rejects_bad_input() -> None:
    with pytest.raises(OptionError, match="dt_s"):
        bin_spikes(np.zeros(1, np.int64), np.zeros(1, np.uint16), dt_s=1e-3 / 3, n_channels=1, duration_s=1.0)
    with pytest.raises(InputError, match="times_us"):
        bin_spikes(np.array([1_000_000]), np.zeros(1, np.uint16), dt_s=1e-3, n_channels=1, duration_s=1.0)
    with pytest.raises(InputError, match="units"):
        bin_spikes(np.array([5]), np.array([3], np.uint16), dt_s=1e-3, n_channels=2, duration_s=1.0)


# --- plan and split --------------------------------------------------------------------


def test_variant_lists_are_disjoint_so_split_voices_are() -> None:
    train, val, test = (set(_voices.VARIANTS_BY_SPLIT[s]) for s in _voices.SPLITS)
    assert not (train & val) and not (train & test) and not (val & test)
    config = DatasetConfig(speakers=(50, 20, 20))
    voices = {s: {u.voice for u in plan_split(config, s, seed=3)} for s in _voices.SPLITS}
    assert not (voices["train"] & voices["val"]) and not (voices["train"] & voices["test"])
    assert not (voices["val"] & voices["test"])


def test_plan_depends_only_on_the_seed_and_stays_in_range() -> None:
    config = SIZES["full"]
    a, b = plan_split(config, "val", seed=7), plan_split(config, "val", seed=7)
    assert a == b and a != plan_split(config, "val", seed=8)
    assert len(a) == config.speakers[1] * len(config.keywords)
    params = np.array([u.speaker_params() for u in a])
    assert params[:, 0].min() >= 80 and params[:, 1].max() <= 99
    lo, hi = config.snr_db_range
    assert lo <= params[:, 3].min() and params[:, 3].max() <= hi


def test_config_rejects_bad_values() -> None:
    with pytest.raises(OptionError, match="speakers"):
        DatasetConfig(speakers=(0, 0, 0))
    with pytest.raises(OptionError, match="pitch_range"):
        DatasetConfig(speakers=(1, 1, 1), pitch_range=(0.0, 99.0))
    with pytest.raises(OptionError, match="split"):
        plan_split(SIZES["small"], "training", seed=0)


# --- the shipped small slice -----------------------------------------------------------


def test_shipped_small_slice_loads_with_the_documented_shapes() -> None:
    n_keywords = len(_voices.KEYWORDS)
    for split in _voices.SPLITS:
        data = read_split(SMALL, split)
        assert str(data.config_hash) == SIZES["small"].config_hash(), "regenerate tests/data/keywords (--size small)"
        assert data.keywords.tolist() == list(_voices.KEYWORDS) and int(data.n_channels) == 64
        for dt_s, t in ((1e-3, 1000), (0.25e-3, 4000), (4e-3, 250)):
            x, y = load_split(SMALL, split, dt_s=dt_s)
            assert x.shape == (n_keywords, t, 64) and x.dtype == np.float32
            assert y.dtype == np.int64 and sorted(y.tolist()) == list(range(n_keywords))
            assert x.sum() == len(data.times_us)


def test_shipped_spikes_are_sorted_and_inside_the_window() -> None:
    data = read_split(SMALL, "test")
    duration_us = round(float(data.duration_s) * 1e6)
    for i in range(len(data)):
        times, units = data.sample(i)
        assert len(times) > 0
        assert np.all(np.diff(times) >= 0) and times[0] >= 0 and times[-1] < duration_us
        assert units.max() < data.n_channels


def test_shipped_split_voices_are_disjoint() -> None:
    voices = {s: set(read_split(SMALL, s).voices.tolist()) for s in _voices.SPLITS}
    assert not (voices["train"] & voices["val"]) and not (voices["train"] & voices["test"])
    assert not (voices["val"] & voices["test"])


def test_load_split_crops_pads_and_selects() -> None:
    x_full, y_full = load_split(SMALL, "val", dt_s=2e-3)
    x_half, _ = load_split(SMALL, "val", dt_s=2e-3, duration_s=0.5)
    x_long, _ = load_split(SMALL, "val", dt_s=2e-3, duration_s=1.2)
    np.testing.assert_array_equal(x_half, x_full[:, :250])
    np.testing.assert_array_equal(x_long[:, :500], x_full)
    assert not x_long[:, 500:].any()
    x3, y3 = load_split(SMALL, "val", dt_s=2e-3, indices=[3, 0])
    np.testing.assert_array_equal(x3, x_full[[3, 0]])
    np.testing.assert_array_equal(y3, y_full[[3, 0]])
    with pytest.raises(OptionError, match="indices"):
        load_split(SMALL, "val", dt_s=2e-3, indices=[22])


def test_broken_split_files_name_the_member(tmp_path: Path) -> None:
    shutil.copy(SMALL / "train.npz", tmp_path / "train.npz")
    with np.load(tmp_path / "train.npz") as z:
        members = dict(z)
    members["times_us"] = members["times_us"][::-1].copy()
    np.savez(tmp_path / "reversed.npz", **members)
    with pytest.raises(EventFileError, match="times_us"):
        read_split(tmp_path / "reversed.npz", "train")
    del members["offsets"]
    np.savez(tmp_path / "partial.npz", **members)
    with pytest.raises(EventFileError, match="missing members offsets"):
        read_split(tmp_path / "partial.npz", "train")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(EventFileError, match="junk.npz"):
        read_split(tmp_path / "junk.npz", "train")
    with pytest.raises(EventFileError, match="no such file"):
        read_split(tmp_path, "test")
    with pytest.raises(OptionError, match="not 'val'"):
        read_split(tmp_path / "train.npz", "val")


# --- generation (needs espeak-ng) ------------------------------------------------------


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (Debian package espeak-ng)")
def test_same_seed_gives_identical_arrays_with_any_worker_count() -> None:
    tiny = DatasetConfig(
        speakers=(1, 1, 1),
        keywords=("yes", "no"),
        duration_s=0.6,
        cochlea=replace(SIZES["small"].cochlea, n_channels=16),
    )
    one = generate(tiny, seed=11, workers=1, quiet=True)
    two = generate(tiny, seed=11, workers=2, quiet=True)
    other = generate(tiny, seed=12, workers=1, quiet=True)
    for split in _voices.SPLITS:
        for name in ("times_us", "units", "offsets", "labels", "voice", "speaker_params", "noise_kind"):
            a, b = getattr(one[split], name), getattr(two[split], name)
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), f"{split}/{name}"
        assert len(one[split]) == 2 and one[split].offsets[-1] > 0
        assert one[split].times_us.tobytes() != other[split].times_us.tobytes()
