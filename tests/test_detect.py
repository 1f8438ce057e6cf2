"""edgesnn.detect pieces against closed forms: boxes, NMS, YOLOX decode, the attention bridge, settings."""

from __future__ import annotations

import numpy as np
import pytest

from edgesnn.detect import BOX_DTYPE, DetectorConfig, decode, iou, nms, postprocess
from edgesnn.detect.bridge import BridgeWeights, bridge, event_rate_gate, spatial_context, temporal_attention
from edgesnn.errors import InputError, OptionError


def test_iou_of_known_boxes():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]])
    np.testing.assert_allclose(iou(a, b), [[50 / 150, 0.0, 1.0]])


def test_nms_suppresses_within_a_class_only():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [0, 0, 10, 10], [50, 50, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    classes = np.array([0, 0, 1, 0])
    # box 1 overlaps box 0 (IoU 9/11) in class 0 and goes; box 2 is class 1 and stays
    assert nms(boxes, scores, classes, iou_threshold=0.5, max_detections=10).tolist() == [0, 2, 3]
    assert nms(boxes, scores, classes, iou_threshold=0.9, max_detections=10).tolist() == [0, 1, 2, 3]
    assert nms(boxes, scores, classes, iou_threshold=0.5, max_detections=2).tolist() == [0, 2]


def greedy_nms(boxes, scores, classes, iou_threshold):
    """Textbook greedy NMS, one box at a time: best first, drop what a kept box overlaps."""
    keep = []
    for i in np.argsort(-scores, kind="stable"):
        if all(classes[j] != classes[i] or iou(boxes[j], boxes[i])[0, 0] <= iou_threshold for j in keep):
            keep.append(int(i))
    return keep


@pytest.mark.parametrize("seed", range(6))
def test_nms_equals_one_box_at_a_time_greedy_on_crowded_scenes(seed):
    rng = np.random.default_rng(seed)
    n = 120
    centres = rng.uniform(0, 60, (n, 2))  # crowded: long chains of boxes suppressing boxes
    boxes = np.concatenate([centres, rng.uniform(4, 20, (n, 2))], axis=1).astype(np.float32)
    scores = rng.choice(np.linspace(0.1, 1.0, 40), n)  # ties keep input order
    classes = rng.integers(0, 3, n)
    for thr in (0.2, 0.5, 0.8):
        want = greedy_nms(boxes, scores, classes, thr)
        got = nms(boxes, scores, classes, iou_threshold=thr, max_detections=n).tolist()
        assert got == want


def test_nms_of_nothing():
    assert nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), iou_threshold=0.5, max_detections=5).size == 0


def test_decode_inverts_the_yolox_parametrisation():
    shapes, strides = ((2, 3), (1, 2)), (8, 16)
    raw = np.zeros((2 * 3 + 1 * 2, 7), np.float32)
    # cell (row 1, col 2) of level 0: centre (2 + 0.5, 1 + 0.25) * 8, size e^1 * 8 by e^0 * 8
    raw[5, :4] = [0.5, 0.25, 1.0, 0.0]
    raw[5, 4], raw[5, 5], raw[5, 6] = 2.0, -1.0, 3.0
    # cell (row 0, col 1) of level 1 (index 6 + 1)
    raw[7, :4] = [0.0, 0.0, np.log(2.0), np.log(3.0)]
    boxes, scores, classes = decode(raw, shapes, strides)
    w = np.e * 8
    np.testing.assert_allclose(boxes[5], [20 - w / 2, 10 - 4, w, 8], rtol=1e-6)
    assert classes[5] == 1
    np.testing.assert_allclose(scores[5], 1 / (1 + np.exp(-2.0)) / (1 + np.exp(-3.0)), rtol=1e-6)
    np.testing.assert_allclose(boxes[7], [16 - 16, 0 - 24, 32, 48], rtol=1e-6)


def test_decode_refuses_a_wrong_cell_count():
    with pytest.raises(InputError, match="raw predictions"):
        decode(np.zeros((5, 7)), ((2, 3),), (8,))


def test_decode_does_not_overflow_on_wild_logits():
    raw = np.full((6, 7), 1e4, np.float32)
    boxes, scores, _ = decode(raw, ((2, 3),), (8,))
    assert np.isfinite(boxes).all() and np.all(scores <= 1)


def test_postprocess_thresholds_and_stamps_time():
    cfg = DetectorConfig(level_shapes=((2, 2),), strides=(8,), score_threshold=0.5, classes=("a", "b"))
    raw = np.full((4, 7), -10.0, np.float32)
    raw[3, :4] = [0.5, 0.5, 0.0, 0.0]
    raw[3, 4], raw[3, 6] = 10.0, 10.0
    out = postprocess(raw, cfg, 123)
    assert out.dtype == BOX_DTYPE and len(out) == 1
    assert (out["x"][0], out["y"][0], out["w"][0], out["class_id"][0], out["t_us"][0]) == (8.0, 8.0, 8.0, 1, 123)


def _weights(rng, c=3, ca=4, d=2, t=5, k=3) -> BridgeWeights:
    f = lambda *s: rng.normal(0, 0.5, s).astype(np.float32)  # noqa: E731
    return BridgeWeights(f(ca, c, k, k), f(ca), f(d, ca), f(d), f(d, ca), f(d), f(d, ca), f(d), f(c, t * d), f(c))


def test_bridge_shapes():
    rng = np.random.default_rng(0)
    wts = _weights(rng)
    spikes = (rng.random((5, 3, 4, 6)) < 0.3).astype(np.float32)
    assert spatial_context(spikes, wts).shape == (5, 4, 4, 6)
    assert bridge(spikes, wts).shape == (3, 4, 6)
    with pytest.raises(InputError, match="T = 5"):
        bridge(spikes[:4], wts)


def test_spatial_context_convolves_each_bin_alone():
    rng = np.random.default_rng(1)
    wts = _weights(rng)
    spikes = np.zeros((5, 3, 5, 5), np.float32)
    spikes[2, 1, 2, 2] = 1.0  # one spike: every other bin sees the bias only
    ctx = spatial_context(spikes, wts)
    np.testing.assert_allclose(ctx[0], np.broadcast_to(wts.sc_bias[:, None, None], (4, 5, 5)))
    # the impulse response is the kernel, flipped (cross-correlation)
    np.testing.assert_allclose(ctx[2][:, 1:4, 1:4] - wts.sc_bias[:, None, None], wts.sc_weight[:, 1, ::-1, ::-1],
                               rtol=1e-6)  # fmt: skip


def test_temporal_attention_with_uniform_scores_averages_the_values():
    # keys independent of the input -> every query sees equal scores -> attention is the mean of V over T
    rng = np.random.default_rng(2)
    wts = _weights(rng)
    wts = BridgeWeights(**{**wts.__dict__, "k_weight": np.zeros_like(wts.k_weight)})
    ctx = rng.normal(size=(5, 4, 2, 3)).astype(np.float32)
    v = np.maximum(np.einsum("dc,tchw->hwtd", wts.v_weight, ctx) + wts.v_bias, 0)
    mean = v.mean(axis=2, keepdims=True).repeat(5, axis=2)  # (h, w, T, D)
    expected = np.einsum("ctd,hwtd->chw", wts.out_weight.reshape(3, 5, 2), mean) + wts.out_bias[:, None, None]
    np.testing.assert_allclose(temporal_attention(ctx, wts), expected, rtol=1e-5, atol=1e-6)


def test_event_rate_gate_is_sigmoid_of_the_spike_count():
    spikes = np.zeros((4, 1, 1, 3), np.float32)
    spikes[:, 0, 0, 1] = [1, 0, 1, 0]
    spikes[:, 0, 0, 2] = 1
    feats = np.full((1, 1, 3), 2.0, np.float32)
    np.testing.assert_allclose(event_rate_gate(spikes, feats)[0, 0], 2 / (1 + np.exp(-np.array([0.0, 2.0, 4.0]))),
                               rtol=1e-6)  # fmt: skip
    with pytest.raises(InputError):
        event_rate_gate(spikes, feats[:, :, :2])


def test_config_round_trip_and_checks():
    cfg = DetectorConfig(count_cutoff=4)
    assert DetectorConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.window_us == 50_000 and cfg.n_cells == 30 * 38 + 15 * 19
    with pytest.raises(OptionError, match="unknown field"):
        DetectorConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(OptionError) as err:
        DetectorConfig(score_threshold=1.5)
    assert err.value.path == "score_threshold"
    with pytest.raises(OptionError):
        DetectorConfig(level_shapes=((2, 2),), strides=(8, 16))
