"""The few-shot glyph event dataset: fonts, saccades, alphabet splits, episodes, storage, determinism, shipped slice."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgesnn.errors import EdgeSNNError, EventFileError, MissingDependencyError, OptionError
from tools.datasets import _fonts, _saccades, _scripts
from tools.datasets._glyph_plan import GlyphConfig, draw_pose, enumerate_classes, plan_split
from tools.datasets._glyph_storage import read_glyph_split
from tools.datasets.glyphs import SIZES, episodes, generate, load_split, read_split, write

SMALL = Path(__file__).parent / "data" / "glyphs"


def _fonts_installed() -> bool:
    try:
        for alphabets in _scripts.ALPHABETS.values():
            for a in alphabets:
                _fonts.find_font(a.font)
    except MissingDependencyError:
        return False
    return True


needs_fonts = pytest.mark.skipif(not _fonts_installed(), reason="Noto fonts missing (Debian package fonts-noto-core)")

#: A configuration small enough to generate in a test: 1 alphabet per split, 2 letters, 2 samples of 60 ms.
TINY = GlyphConfig(samples_per_class=2, max_classes_per_alphabet=2, alphabets_per_split=1, duration_us=60_000)


# --- fonts -------------------------------------------------------------------------------


@needs_fonts
def test_code_points_without_a_glyph_are_skipped() -> None:
    lao = next(a for a in _scripts.ALPHABETS["val"] if a.name == "Lao")
    # U+0E86 (Lao letter ko, Pali) is newer than this Noto Lao: the font draws its .notdef box
    assert 0x0E86 in _fonts.candidates(lao)
    assert not _fonts.has_glyph(lao.font, 0x0E86)
    assert _fonts.has_glyph(lao.font, 0x0E81)
    drawn = [cp for cp, _ in _fonts.drawable(lao)]
    assert 0x0E81 in drawn and 0x0E86 not in drawn
    # a blank glyph (space) is rejected too, and so is the probe that draws .notdef
    assert not _fonts.has_glyph("NotoSans-Regular.ttf", 0x0020)
    assert not _fonts.has_glyph("NotoSans-Regular.ttf", _fonts.NOTDEF_PROBE)


@needs_fonts
def test_render_mask_is_cropped_ink_and_stroke_thickens_it() -> None:
    thin = _fonts.render_mask("NotoSans-Regular.ttf", ord("L"), size_px=64)
    thick = _fonts.render_mask("NotoSans-Regular.ttf", ord("L"), size_px=64, stroke_px=2)
    assert thin.min() >= 0.0 and thin.max() == 1.0
    assert thin[0].any() and thin[-1].any() and thin[:, 0].any() and thin[:, -1].any()  # cropped to ink
    assert thick.shape[0] > thin.shape[0] and thick.sum() > 1.2 * thin.sum()


def test_missing_font_names_the_debian_package() -> None:
    with pytest.raises(MissingDependencyError, match="fonts-noto-core"):
        _fonts.find_font("NoSuchFont-Regular.ttf")


def test_candidates_keep_letters_only() -> None:
    arabic = next(a for a in _scripts.ALPHABETS["train"] if a.name == "Arabic")
    cps = _fonts.candidates(arabic)
    assert 0x0628 in cps  # BEH, a letter
    assert 0x0640 not in cps  # TATWEEL, a modifier letter (Lm) inside the range: a bare line
    greek = next(a for a in _scripts.ALPHABETS["train"] if a.name == "Greek")
    assert 0x03A2 not in _fonts.candidates(greek)  # unassigned hole in the capitals
    latin = _fonts.candidates(_scripts.ALPHABETS["train"][0])
    assert latin == list(range(0x41, 0x5B))


# --- alphabets and classes ---------------------------------------------------------------


def test_alphabet_splits_are_disjoint_and_many() -> None:
    names = {split: {a.name for a in alphabets} for split, alphabets in _scripts.ALPHABETS.items()}
    points = {split: {cp for a in alist for cp in _fonts.candidates(a)} for split, alist in _scripts.ALPHABETS.items()}
    for a, b in itertools.combinations(_scripts.SPLITS, 2):
        assert not names[a] & names[b]
        assert not points[a] & points[b]
    assert sum(len(n) for n in names.values()) >= 20
    assert all(len(names[s]) >= 5 for s in _scripts.SPLITS)


@needs_fonts
def test_full_configuration_has_many_classes_and_drops_look_alikes() -> None:
    classes = enumerate_classes(SIZES["full"])
    counts = {split: len(c) for split, c in classes.items()}
    assert sum(counts.values()) >= 600 and counts["test"] >= 100
    for split, cls in classes.items():
        assert len({c.name for c in cls}) == len(cls)
        assert {c.alphabet for c in cls} == {a.name for a in _scripts.ALPHABETS[split]}
        per_alphabet = np.unique([c.alphabet for c in cls], return_counts=True)[1]
        assert per_alphabet.max() <= SIZES["full"].max_classes_per_alphabet
    cyrillic = {c.codepoint for c in classes["train"] if c.alphabet == "Cyrillic"}
    assert 0x0410 not in cyrillic  # Cyrillic A is Latin A's glyph, kept once (as Latin)
    assert 0x0411 in cyrillic  # Cyrillic BE has no Latin twin


def test_plan_depends_only_on_the_seed() -> None:
    cfg = GlyphConfig()
    a = [draw_pose(cfg, np.random.default_rng(3)) for _ in range(5)]
    b = [draw_pose(cfg, np.random.default_rng(3)) for _ in range(5)]
    c = [draw_pose(cfg, np.random.default_rng(4)) for _ in range(5)]
    assert a == b and a != c
    for pose in a:
        assert cfg.font_px_range[0] <= pose.font_px <= cfg.font_px_range[1]
        assert abs(pose.rotation_deg) <= cfg.rotation_deg and abs(pose.shear) <= cfg.shear


def test_config_rejects_bad_values() -> None:
    with pytest.raises(OptionError, match="samples_per_class"):
        GlyphConfig(samples_per_class=0)
    with pytest.raises(OptionError, match="frame_us"):
        GlyphConfig(frame_us=400_000)
    with pytest.raises(OptionError, match="ink_ratio_range"):
        GlyphConfig(ink_ratio_range=(0.5, 0.2))
    with pytest.raises(OptionError, match="refractory_us"):
        GlyphConfig(refractory_us=-1)
    with pytest.raises(OptionError, match="split"):
        plan_split(GlyphConfig(), "dev", [], 0)


# --- saccades and events -----------------------------------------------------------------


def test_saccades_trace_a_closed_triangle() -> None:
    pose = draw_pose(GlyphConfig(tremor_px=0.0), np.random.default_rng(0))
    times = np.array([0.0, 100_000.0, 200_000.0, 299_999.0, 50_000.0])
    path = _saccades.saccade_path(pose, times, 300_000)
    np.testing.assert_allclose(path[0], [0.0, 0.0])
    np.testing.assert_allclose(path[1], pose.vertices[0])
    np.testing.assert_allclose(path[2], pose.vertices[1])
    np.testing.assert_allclose(path[3], [0.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(path[4], np.array(pose.vertices[0]) / 2)  # straight legs at constant speed


def test_view_interpolates_between_pixels() -> None:
    page = np.arange(100, dtype=np.float64).reshape(10, 10)
    np.testing.assert_allclose(_saccades.view(page, np.array([0.0, 0.0]), (4, 4), 2), page[2:6, 2:6])
    np.testing.assert_allclose(_saccades.view(page, np.array([0.5, 0.0]), (4, 4), 2), page[2:6, 2:6] + 0.5)
    np.testing.assert_allclose(_saccades.view(page, np.array([-1.0, 1.0]), (4, 4), 2), page[3:7, 1:5])


def _square_mask() -> np.ndarray:
    mask = np.zeros((40, 40))
    mask[5:35, 5:35] = 1.0
    mask[15:25, 15:25] = 0.0  # a hollow square: outer and inner edges
    return mask


def _simulate(cfg: GlyphConfig, pose, mask: np.ndarray, seed: int) -> np.ndarray:
    return _saccades.simulate(
        mask,
        pose,
        sensor=(34, 34),
        margin=cfg.margin,
        duration_us=cfg.duration_us,
        frame_us=cfg.frame_us,
        simulator=cfg.simulator_config(0.2),
        rng=np.random.default_rng(seed),
    )


def test_saccades_make_events_at_the_glyph_edges_only() -> None:
    cfg = GlyphConfig(shot_noise_rate_hz=0.0, leak_rate_hz=0.0, texture_range=(0.0, 0.0))
    pose = replace(draw_pose(cfg, np.random.default_rng(1)), rotation_deg=0.0, shear=0.0, offset_x=0.0, offset_y=0.0)
    mask = _square_mask()
    ev = _simulate(cfg, pose, mask, seed=2)
    assert len(ev) > 500 and set(np.unique(ev["p"])) == {0, 1}
    assert np.all(np.diff(ev["t"]) >= 0) and ev["t"].min() >= 0 and ev["t"].max() < cfg.duration_us
    m = cfg.margin
    cover = _saccades.glyph_on_page(mask, pose, (34 + 2 * m, 34 + 2 * m))[m:-m, m:-m]
    # edge band: pixels whose coverage changes within the saccade's reach (3 px legs, ~4 px far vertex)
    partial = (cover > 0.02) & (cover < 0.98)
    edge = np.zeros_like(partial)
    steps = (np.abs(np.diff(cover, axis=a, prepend=0)) > 0.02 for a in (0, 1))
    hy, hx = np.nonzero(partial | next(steps) | next(steps))
    for dy in range(-5, 6):
        for dx in range(-5, 6):
            edge[np.clip(hy + dy, 0, 33), np.clip(hx + dx, 0, 33)] = True
    counts = np.zeros((34, 34))
    np.add.at(counts, (ev["y"], ev["x"]), 1)
    assert counts[edge].sum() == len(ev)  # plain paper, no noise: nothing away from the edges
    solid = (cover > 0.999) | (cover < 0.001)
    far_from_edge = solid & ~edge
    assert far_from_edge.sum() > 50 and counts[far_from_edge].sum() == 0


def test_textured_paper_and_noise_stay_weaker_than_the_edges() -> None:
    cfg = GlyphConfig(texture_range=(0.06, 0.06), shot_noise_rate_hz=0.5)
    pose = replace(draw_pose(cfg, np.random.default_rng(5)), rotation_deg=0.0, shear=0.0, offset_x=0.0, offset_y=0.0)
    ev = _simulate(cfg, pose, _square_mask(), seed=6)
    counts = np.zeros((34, 34))
    np.add.at(counts, (ev["y"], ev["x"]), 1)
    # the square spans rows/cols ~ 6..27 at height 18..24 px; the corners of the sensor are paper only
    corner = np.r_[0:3, 31:34]
    background = counts[np.ix_(corner, corner)].mean()
    edge_rows = counts[:, 17].max()  # the column through the square's centre crosses its edges
    assert edge_rows > 10 * max(background, 0.1)


# --- episodes ----------------------------------------------------------------------------


def test_episodes_have_the_right_shapes_and_disjoint_sets() -> None:
    y = np.repeat(np.arange(12), 20)
    rng = np.random.default_rng(0)
    for support, query, classes in episodes(y, n_way=5, k_shot=2, n_query=3, rng=rng, n_episodes=50):
        assert support.shape == (10,) and query.shape == (15,) and classes.shape == (5,)
        assert len(set(classes.tolist())) == 5
        assert not set(support.tolist()) & set(query.tolist())
        np.testing.assert_array_equal(y[support], np.repeat(classes, 2))
        np.testing.assert_array_equal(y[query], np.repeat(classes, 3))


def test_episodes_are_reproducible_and_endless_by_default() -> None:
    y = np.repeat(np.arange(6), 3)
    a = list(itertools.islice(episodes(y, n_way=3, k_shot=1, n_query=2, rng=np.random.default_rng(1)), 200))
    b = list(itertools.islice(episodes(y, n_way=3, k_shot=1, n_query=2, rng=np.random.default_rng(1)), 200))
    assert len(a) == 200
    assert all(np.array_equal(p, q) for ea, eb in zip(a, b, strict=True) for p, q in zip(ea, eb, strict=True))


def test_episodes_reject_impossible_requests() -> None:
    y = np.repeat(np.arange(4), 2)
    with pytest.raises(OptionError, match="n_way"):
        next(episodes(y, n_way=5, k_shot=1, n_query=1, rng=np.random.default_rng(0)))
    with pytest.raises(OptionError, match="n_way"):
        next(episodes(y, n_way=2, k_shot=2, n_query=1, rng=np.random.default_rng(0)))  # 3 per class needed
    with pytest.raises(OptionError, match="k_shot"):
        next(episodes(y, n_way=2, k_shot=0, n_query=1, rng=np.random.default_rng(0)))
    with pytest.raises(OptionError, match="rng"):
        next(episodes(y, n_way=2, k_shot=1, n_query=1, rng=0))


# --- shipped slice and storage -----------------------------------------------------------


def test_shipped_slice_loads_with_the_documented_shapes() -> None:
    for split in _scripts.SPLITS:
        data = read_split(SMALL, split)
        x, y = load_split(SMALL, split, n_bins=3)
        n = len(data)
        assert x.shape == (n, 3, 2, 34, 34) and x.dtype == np.float32 and y.dtype == np.int64
        np.testing.assert_array_equal(x.sum(axis=(1, 2, 3, 4)), np.diff(data.offsets))  # every event counted
        assert str(data.config_hash) == SIZES["small"].config_hash()
        assert set(data.alphabets) <= {a.name for a in _scripts.ALPHABETS[split]}
        assert np.all(np.bincount(y) == SIZES["small"].samples_per_class)
        # ON and OFF events both occur, in every sample
        for i in range(n):
            assert set(np.unique(data.events(i)["p"])) == {0, 1}
    sizes = sum(p.stat().st_size for p in SMALL.glob("*.npz"))
    assert sizes < 300_000


def test_shipped_slice_draws_episodes() -> None:
    _, y = load_split(SMALL, "test", n_bins=1)
    support, query, classes = next(episodes(y, n_way=3, k_shot=1, n_query=1, rng=np.random.default_rng(0)))
    assert support.shape == query.shape == classes.shape == (3,)


def test_load_split_crops_and_selects() -> None:
    full, y = load_split(SMALL, "val", n_bins=4)
    half, _ = load_split(SMALL, "val", n_bins=2, duration_us=150_000)
    np.testing.assert_array_equal(half.sum(axis=1), full[:, :2].sum(axis=1))  # first half of the window
    some, ys = load_split(SMALL, "val", n_bins=4, indices=[3, 0])
    np.testing.assert_array_equal(some, full[[3, 0]])
    np.testing.assert_array_equal(ys, y[[3, 0]])
    with pytest.raises(OptionError, match="indices"):
        load_split(SMALL, "val", n_bins=4, indices=[99])
    with pytest.raises(OptionError, match="split"):
        load_split(SMALL, "dev", n_bins=4)
    with pytest.raises(OptionError, match="n_bins"):
        load_split(SMALL, "val", n_bins=0)
    with pytest.raises(EventFileError, match="no such file"):
        load_split(SMALL / "nowhere", "val", n_bins=4)


def test_broken_split_files_name_the_member(tmp_path: Path) -> None:
    with np.load(SMALL / "train.npz") as z:
        arrays = {k: z[k] for k in z.files}
    bad = dict(arrays, t=arrays["t"][::-1].copy())
    np.savez_compressed(tmp_path / "a.npz", **bad)
    with pytest.raises(EventFileError, match="a.npz/t"):
        read_glyph_split(tmp_path / "a.npz")
    bad = dict(arrays, x=np.full_like(arrays["x"], 40))
    np.savez_compressed(tmp_path / "b.npz", **bad)
    with pytest.raises(EventFileError, match="b.npz/x"):
        read_glyph_split(tmp_path / "b.npz")
    bad = {k: v for k, v in arrays.items() if k != "offsets"}
    np.savez_compressed(tmp_path / "c.npz", **bad)
    with pytest.raises(EventFileError, match="offsets"):
        read_glyph_split(tmp_path / "c.npz")
    (tmp_path / "d.npz").write_bytes(b"not a zip")
    with pytest.raises(EdgeSNNError, match="d.npz"):
        read_glyph_split(tmp_path / "d.npz")


# --- determinism -------------------------------------------------------------------------


@needs_fonts
def test_same_seed_gives_identical_arrays_with_any_worker_count(tmp_path: Path) -> None:
    one = generate(TINY, seed=7, workers=1, quiet=True)
    two = generate(TINY, seed=7, workers=2, quiet=True)
    other = generate(TINY, seed=8, workers=1, quiet=True)
    for split in _scripts.SPLITS:
        a, b = one[split], two[split]
        for name in ("x", "y", "p", "t", "offsets", "labels", "class_names", "pose_params"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert len(a) == 4 and a.offsets[-1] > 0
    assert not np.array_equal(one["test"].t, other["test"].t)
    # and the written files read back to the same arrays
    write(one, tmp_path)
    back = read_split(tmp_path, "test")
    np.testing.assert_array_equal(back.t, one["test"].t)
    assert str(back.config_json) == TINY.to_json()
