"""Gain-cell numerics: the device model of Leroux et al. against closed forms on tiny cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgesnn.engine._gaincell import quantise
from edgesnn.graph import Graph, Input, Output, SlidingWindowAttention
from edgesnn.graph.attention import MAC_COEFFICIENTS
from edgesnn.model import Model
from tests.conformance._models import small_model, spikes

C = MAC_COEFFICIENTS  # the list: c_00 c_01 c_02 c_03 c_10 c_11 c_12 c_20 c_21 c_30


def one_layer(node: SlidingWindowAttention) -> Model:
    d = node.d_model
    return Model(Graph({"x": Input((d,)), "attn": node, "y": Output((d,))}, [("x", "attn"), ("attn", "y")]), 1e-3)


def direct(q: float, k: float, v: float, **fields) -> SlidingWindowAttention:
    """One head of width 1 whose q, k, v are the input times the given numbers; output projection 1."""
    w = np.array([[q], [k], [v]], np.float32)
    return SlidingWindowAttention(w, np.zeros(3), np.ones((1, 1)), np.zeros(1), num_heads=1, **fields)


def q32(x: float, saturation: float = 40.0) -> float:
    """The read-out: x / saturation clipped to [-1, 1], on multiples of 2/31 (half to even, as torch.round)."""
    y = min(max(x / saturation, -1.0), 1.0) / (2 / 31)
    return round(y) * (2 / 31)  # Python's round is half to even too


def test_quantisers_have_the_papers_levels() -> None:
    assert np.allclose(np.unique(quantise(np.linspace(0, 1, 1001), 16, 1.0)), np.arange(16) / 15)
    assert np.allclose(np.unique(quantise(np.linspace(0, 0.9, 1001), 8, 0.9)), np.arange(8) * 0.9 / 7)
    out = np.unique(quantise(np.linspace(-1, 1, 1001), 32, 2.0))
    # the authors' grid: multiples of 2/31, so a saturated read-out of 1 rounds (15.5 -> 16) to 32/31
    assert np.allclose(out, np.arange(-16, 17) * 2 / 31)
    assert quantise(np.array([0.5 / 15, 1.5 / 15]), 16, 1.0).tolist() == pytest.approx([0.0, 2 / 15])


def test_the_cell_polynomial_is_the_papers_fit_with_i_outer() -> None:
    node = direct(1, 1, 1)
    vin, c = 0.9, np.float32(C).astype(np.float64)  # node arrays are float32, the coefficients too
    want = [c[0] + c[1] * vin + c[2] * vin**2 + c[3] * vin**3, c[4] + c[5] * vin + c[6] * vin**2, c[7] + c[8] * vin,
            c[9]]  # fmt: skip
    np.testing.assert_allclose(node.mac_polynomial(), want, rtol=1e-12)
    assert direct(1, 1, 1, mac="linear").mac_polynomial().tolist() == [0.0, 19.3]


def test_one_token_through_the_linear_cells_is_the_closed_form() -> None:
    q, k, v = 0.6, 0.3, 0.35  # scalers start at a = 1, b = 0 (q) and 0.45 (k, v)
    node = direct(q, k, v, mac="linear", window=4, out_saturation=0.5)
    y = one_layer(node).session(numerics="gaincell").step(np.ones((1, 1)))["y"]
    q_hat = round(q * 15) / 15
    k_hat, v_hat = round((k + 0.45) * 7 / 0.9) * 0.9 / 7, round((v + 0.45) * 7 / 0.9) * 0.9 / 7
    a = min(max(q_hat * 19.3 * (k_hat - 0.45) / 80, 0), 1)
    assert float(y[0, 0]) == pytest.approx(q32(a * 19.3 * (v_hat - 0.45), 0.5), abs=1e-7)
    assert 0 < a < 1 and 0 < float(y[0, 0]) < 1


def test_leakage_scales_the_older_cells_deviation_by_exp_minus_rate_times_age() -> None:
    rate = 0.3
    node = direct(1.0, 0.4, 0.4, window=4, decay_per_step=rate, score_saturation=0.5, out_saturation=0.1,
                  out_levels=2**20)  # fmt: skip
    s = one_layer(node).session(numerics="gaincell")
    x = [np.full((1, 1), 1.0), np.full((1, 1), 0.25)]  # second token: k, v at 0.1 + 0.45 -> the 0.9/7 grid
    y = [float(s.step(xi)["y"][0, 0]) for xi in x]
    p = node.mac_polynomial()

    def poly(u: float) -> float:
        return sum(c * u**i for i, c in enumerate(p))

    kv = [round((0.4 * xi + 0.45) * 7 / 0.9) * 0.9 / 7 for xi in (1.0, 0.25)]
    qs = [round(min(1.0 * xi, 1) * 15) / 15 for xi in (1.0, 0.25)]
    step = 2 / (2**20 - 1)

    def read(total: float) -> float:
        return round(min(max(total / 0.1, -1), 1) / step) * step

    first = read(min(max(qs[0] * poly(kv[0] - 0.45) / 0.5, 0), 1) * poly(kv[0] - 0.45))
    delta = math.exp(-rate)  # the first token is one step old when the second queries
    a_old = min(max(qs[1] * poly(delta * (kv[0] - 0.45)) / 0.5, 0), 1)
    a_new = min(max(qs[1] * poly(kv[1] - 0.45) / 0.5, 0), 1)
    second = read(a_old * poly(delta * (kv[0] - 0.45)) + a_new * poly(kv[1] - 0.45))
    assert y == pytest.approx([first, second], abs=1e-9)


def test_scores_saturate_as_a_hard_sigmoid() -> None:
    big = direct(1.0, 0.45, 0.3, window=2, mac="linear", score_saturation=1.0)  # S = 19.3 * 0.4 * 1 > 1
    neg = direct(1.0, -0.45, 0.3, window=2, mac="linear")  # k at 0 V: S < 0
    v_dev = round(0.75 * 7 / 0.9) * 0.9 / 7 - 0.45
    assert float(one_layer(big).session(numerics="gaincell").step(np.ones((1, 1)))["y"][0, 0]) == pytest.approx(
        q32(1.0 * 19.3 * v_dev), abs=1e-7
    )
    assert float(one_layer(neg).session(numerics="gaincell").step(np.ones((1, 1)))["y"][0, 0]) == 0.0


def test_arrays_saturate_one_by_one_and_are_summed_digitally() -> None:
    # Four tokens with the same k, v: every score saturates at 1 and every cell adds 19.3 * 0.45 * 19.3 ... / 40.
    fields = dict(window=4, mac="linear", score_saturation=1.0, out_saturation=10.0)
    one_array = one_layer(direct(1.0, 0.45, 0.45, array_width=4, **fields)).session(numerics="gaincell")
    two_arrays = one_layer(direct(1.0, 0.45, 0.45, array_width=2, **fields)).session(numerics="gaincell")
    ys = np.ones((4, 1, 1), np.float32)
    y1, y2 = one_array.run(ys)["y"][:, 0, 0], two_arrays.run(ys)["y"][:, 0, 0]
    per_cell = 19.3 * 0.45 / 10  # 0.8685: one cell's share of the read-out before clipping
    grid = 2 / 31

    def read(x: float) -> float:
        return round(min(x, 1.0) / grid) * grid

    assert y1 == pytest.approx([read(n * per_cell) for n in (1, 2, 3, 4)], abs=1e-6)
    # cells 0, 1 in array 0, cells 2, 3 in array 1: each array clips on its own, then the sum
    assert y2 == pytest.approx([read(per_cell), read(2 * per_cell), read(2 * per_cell) + read(per_cell),
                                2 * read(2 * per_cell)], abs=1e-6)  # fmt: skip


def _brute_force(node: SlidingWindowAttention, xs: np.ndarray) -> np.ndarray:
    """The device model element by element in plain Python floats (one stream), for comparison."""
    h, dh, w = node.num_heads, node.head_dim, node.window
    p = node.mac_polynomial()

    def q_n(x: float, levels: int, span: float) -> float:
        step = span / (levels - 1)
        return round(x / step) * step

    cells: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    outs = []
    for t, x in enumerate(xs):
        qkv = (node.w_qkv @ x.astype(np.float32) + node.b_qkv).astype(np.float64)  # float32 projection, as the runtime
        q, k, v = (
            qkv[: h * dh].reshape(h, dh),
            qkv[h * dh : 2 * h * dh].reshape(h, dh),
            qkv[2 * h * dh :].reshape(h, dh),
        )
        kc = [[q_n(min(max(k[i, j] * node.k_scale[i] + node.k_offset[i], 0), 0.9), 8, 0.9) for j in range(dh)]
              for i in range(h)]  # fmt: skip
        vc = [[q_n(min(max(v[i, j] * node.v_scale[i] + node.v_offset[i], 0), 0.9), 8, 0.9) for j in range(dh)]
              for i in range(h)]  # fmt: skip
        cells[t % w] = (np.array(kc), np.array(vc))
        y = np.zeros((h, dh))
        for i in range(h):
            qh = [q_n(min(max(q[i, j] * node.q_scale[i] + node.q_offset[i], 0), 1), 16, 1.0) for j in range(dh)]
            arrays: dict[int, np.ndarray] = {}
            for slot, (kc_s, vc_s) in cells.items():
                age = (t - slot) % w
                dl = math.exp(-node.decay_per_step * age)
                score = sum(
                    qh[j] * sum(c * (dl * (kc_s[i, j] - 0.45)) ** n for n, c in enumerate(p)) for j in range(dh)
                )
                a = min(max(score / 80, 0), 1)
                contrib = [a * sum(c * (dl * (vc_s[i, e] - 0.45)) ** n for n, c in enumerate(p)) for e in range(dh)]
                arrays[slot // 64] = arrays.get(slot // 64, np.zeros(dh)) + np.array(contrib)
            total = sum(np.array([q_n(min(max(x / 40, -1), 1), 32, 2.0) for x in arr]) for arr in arrays.values())
            y[i] = total * node.out_scale[i] + node.out_offset[i]
        outs.append(node.w_out.astype(np.float64) @ y.reshape(-1).astype(np.float32) + node.b_out)
    return np.array(outs)


def test_the_polynomial_cells_with_calibration_equal_the_model_element_by_element() -> None:
    rng = np.random.default_rng(5)
    d, heads = 6, 2
    scalers = {"q_scale": [0.3, 0.5], "q_offset": [0.5, 0.4], "k_scale": [0.2, 0.3], "v_scale": [0.25, 0.2],
               "out_scale": [2.0, 1.5], "out_offset": [0.1, -0.1]}  # fmt: skip
    node = SlidingWindowAttention(rng.standard_normal((3 * d, d)), rng.standard_normal(3 * d) * 0.1,
                                  rng.standard_normal((d, d)), np.zeros(d), num_heads=heads, window=70,
                                  decay_per_step=0.01, **{k: np.array(v) for k, v in scalers.items()})  # fmt: skip
    xs = rng.standard_normal((72, d)).astype(np.float32)  # past the window, across two arrays of 64 cells
    got = one_layer(node).session(numerics="gaincell").run(xs[:, None])["y"][:, 0]
    want = _brute_force(node, xs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(want).max() > 0.1


def test_a_model_without_attention_steps_alike_in_float_and_gaincell() -> None:
    xs = spikes(20)
    np.testing.assert_array_equal(small_model().session(numerics="gaincell").run(xs)["out"],
                                  small_model().session().run(xs)["out"])  # fmt: skip
