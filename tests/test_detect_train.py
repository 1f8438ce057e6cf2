"""Trainer and export held to the runtime: JAX vs numpy bridge, JAX vs engine front, ONNX round trip, tiny run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

jax = pytest.importorskip("jax")
onnx = pytest.importorskip("onnx")

import jax.numpy as jnp  # noqa: E402
import onnxruntime as ort  # noqa: E402

from edgesnn.detect import load_detector, write_detector  # noqa: E402
from edgesnn.detect.bridge import BridgeWeights, bridge  # noqa: E402
from edgesnn.detect.config import ANN_ATTACHMENT  # noqa: E402
from edgesnn.events.functional.to_histogram import to_time_bins  # noqa: E402
from tools.datasets.detection import SIZES, make_split  # noqa: E402
from tools.train_detect import model as M  # noqa: E402
from tools.train_detect.arch import ArchSpec, preset  # noqa: E402
from tools.train_detect.export import INPUT_NAME, ann_onnx, build_detector, front_model  # noqa: E402
from tools.train_detect.train import TrainConfig, label_times, train  # noqa: E402

SMALL = ArchSpec(width=64, height=48, n_bins=4, bin_us=5000)


def _window(spec: ArchSpec, rng: np.random.Generator) -> np.ndarray:
    shape = (2, spec.n_bins, *spec.front_shape())
    if spec.variant == "ann":
        return rng.integers(0, 4, shape).astype(np.float32)
    return (rng.random(shape) < 0.2).astype(np.float32)


@pytest.mark.parametrize("variant", ["hybrid", "hybrid-noattn", "hybrid-nogate", "snn", "ann"])
def test_onnx_part_round_trips_parameters_and_outputs(variant):
    spec = dataclasses.replace(SMALL, variant=variant, front_channels=(4, 8, 8) + ((8,) if variant == "snn" else ()),
                               front_strides=(2, 2, 2) + ((1,) if variant == "snn" else ()))  # fmt: skip
    params = M.init_params(spec, seed=1)
    data = ann_onnx(params, spec)
    inits = [onnx.numpy_helper.to_array(t) for t in onnx.load_from_string(data).graph.initializer]
    float_inits = [a for a in inits if a.dtype == np.float32]
    # every trained array is stored bit for bit (1x1 projections as (O, I, 1, 1))
    for name, value in params.items():
        if name.startswith("front"):  # the front lives in the engine graph, not in the ONNX part
            continue
        flat = np.asarray(value, np.float32).ravel()
        assert any(a.size == flat.size and np.array_equal(a.ravel(), flat) for a in float_inits), name
    win = _window(spec, np.random.default_rng(2))
    got = ort.InferenceSession(data).run(None, {INPUT_NAME: win})[0]
    want = np.asarray(M.ann({k: jnp.asarray(v) for k, v in params.items()}, spec, jnp.asarray(win)))
    assert got.shape == (2, sum(h * w for h, w in spec.level_shapes()), 7)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_jax_bridge_matches_the_numpy_reference():
    params = M.init_params(SMALL, seed=4)
    win = _window(SMALL, np.random.default_rng(5))
    wts = BridgeWeights(**{f.name: params[f"bridge.{f.name}"] for f in dataclasses.fields(BridgeWeights)})
    want = np.stack([bridge(w, wts) for w in win])
    got = np.asarray(M.bridge({k: jnp.asarray(v) for k, v in params.items()}, jnp.asarray(win)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_bridge_ablations_are_the_stated_reductions():
    spec = dataclasses.replace(SMALL, variant="hybrid-noattn")
    assert not any(k.startswith("bridge.") for k in M.init_params(spec))
    win = jnp.asarray(_window(SMALL, np.random.default_rng(8)))
    assert np.allclose(M.bridge({}, win, attention=False, gate=False), win.mean(axis=1))
    params = {k: jnp.asarray(v) for k, v in M.init_params(SMALL, seed=9).items()}
    gated, plain = M.bridge(params, win), M.bridge(params, win, gate=False)
    np.testing.assert_allclose(gated, jax.nn.sigmoid(win.sum(axis=1)) * plain, rtol=1e-6, atol=1e-6)


def test_engine_front_matches_the_jax_front():
    params = M.init_params(SMALL, seed=6)
    rng = np.random.default_rng(7)
    hist = rng.poisson(0.3, (12, 1, 2, SMALL.height, SMALL.width)).astype(np.float32)
    want = np.asarray(M.front({k: jnp.asarray(v) for k, v in params.items()}, SMALL, jnp.asarray(hist)))
    got = front_model(params, SMALL).session().run(hist, outputs=["spikes"])["spikes"]
    assert got.shape == want.shape and want.mean() > 0.005  # the layers fire
    # float32 rounding may flip a spike sitting exactly at threshold; nothing more
    assert np.mean(got != want) < 1e-3


@pytest.mark.slow
def test_tiny_train_export_detect_agrees_with_jax(tmp_path):
    cfg = dataclasses.replace(SIZES["tiny"], clips=(2, 1, 1), duration_us=100_000)
    split = make_split(cfg, "train")
    spec = ArchSpec(front_channels=(4, 8, 8), n_bins=4, bin_us=12_500, ann_channels=(8, 8), head_channels=8,
                    bridge_context=4, bridge_dim=4)  # fmt: skip
    params, history = train(split, spec, TrainConfig(steps=3, batch=2, log_every=0))
    assert len(history) == 3 and np.isfinite(history).all()
    path = tmp_path / "tiny.esnn"
    write_detector(build_detector(params, spec, score_threshold=0.0), path)
    det = load_detector(path)
    assert det.config.window_us == 50_000 and det.ann and ANN_ATTACHMENT == "detect.onnx"
    clip, t = label_times(split, spec, 1)[0]
    ev = split.events(clip)
    s = det.session(start_us=0)
    s.predict_window(ev[ev["t"] < 50_000], 0)
    raw = s.predict_window(ev[(ev["t"] >= 50_000) & (ev["t"] < 100_000)], 50_000)
    hist = to_time_bins(ev, sensor_size=(304, 240, 2), n_bins=8, t_start_us=0, t_end_us=100_000,
                        count_cutoff=spec.count_cutoff, dtype=np.float32)  # fmt: skip
    want = np.asarray(M.forward({k: jnp.asarray(v) for k, v in params.items()}, spec, jnp.asarray(hist[:, None])))[0]
    assert t == 100_000
    close = np.isclose(raw, want, rtol=1e-3, atol=1e-3)
    assert close.mean() > 0.99
    boxes = s.detect_window(ev[ev["t"] >= 100_000], 100_000)
    assert len(boxes) > 0 and set(np.unique(boxes["class_id"])) <= {0, 1}


def test_presets_have_the_parameter_ordering_the_comparison_needs():
    variants = ("hybrid", "hybrid-noattn", "hybrid-nogate", "ann")
    counts = {v: build_detector(M.init_params(preset(v)), preset(v)).parameters()["total"] for v in variants}
    assert counts["hybrid"] < counts["ann"]
    assert counts["hybrid-noattn"] < counts["hybrid-nogate"] <= counts["hybrid"]
