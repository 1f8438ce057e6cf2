"""The runtime steps a bundle as the JAX model of tools.train_lm computes it over whole sequences."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("optax")

from tests.transformer_helpers import tiny_params, token_feed  # noqa: E402
from tools.train_lm.calibrate import calibrate, head_stats  # noqa: E402
from tools.train_lm.export import to_model  # noqa: E402
from tools.train_lm.model import Config, default_scalers, forward_jit, grad_jit  # noqa: E402

CFG = Config(vocab=11, d=16, heads=2, layers=2, context=20, window=8, array_width=4, decay_per_step=0.01)
TOKENS = np.random.default_rng(2).integers(0, 11, (2, 20))


def params(calibrated: bool = True) -> dict:
    p = tiny_params(vocab=11, d=16, layers=2, max_len=20)
    rng = np.random.default_rng(4)
    for blk in p["blocks"]:
        sc = default_scalers(2)
        if calibrated:
            sc.update(q_scale=rng.uniform(0.2, 0.4, 2).astype(np.float32), q_offset=np.full(2, 0.5, np.float32),
                      k_scale=np.full(2, 0.2, np.float32), v_scale=np.full(2, 0.25, np.float32),
                      out_scale=np.full(2, 3.0, np.float32))  # fmt: skip
        blk["scalers"] = sc
    return p


def jax_logits(p: dict, kind: str) -> np.ndarray:
    with jax.enable_x64(True):
        logits, _ = forward_jit(jax.tree_util.tree_map(np.asarray, p), TOKENS, CFG, kind, compute_dtype=np.float64)
        return np.asarray(logits, np.float64)


def test_float_runtime_equals_the_jax_model_on_the_same_bundle() -> None:
    p = params()
    runtime = to_model(p, CFG).session(batch=2).run(token_feed(TOKENS))["logits"].transpose(1, 0, 2)
    np.testing.assert_allclose(runtime, jax_logits(p, "float"), rtol=1e-4, atol=1e-4)


def test_gaincell_runtime_equals_the_jax_hardware_model_step_for_step() -> None:
    p, mac = params(), "polynomial"
    session = to_model(p, CFG, mac=mac).session(batch=2, numerics="gaincell")
    runtime = np.stack([session.step(TOKENS[:, t : t + 1].astype(np.float32))["logits"] for t in range(20)], 1)
    want = jax_logits(p, mac)
    close = np.isclose(runtime, want, rtol=1e-4, atol=1e-4).all(axis=-1)
    # float32 projections summed in another order can move a value across a quantiser's step now and then
    assert close.mean() >= 0.95, close
    assert np.abs(want - jax_logits(p, "float")).max() > 0.1  # and the hardware model is not the float one


def test_calibration_moves_the_scaler_outputs_to_their_targets() -> None:
    p = params(calibrated=False)
    batch = TOKENS
    tuned, report = calibrate(p, CFG, "polynomial", batch, max_iter=30)
    _, stats = forward_jit(tuned, batch, CFG, "polynomial")
    _, ref = forward_jit(p, batch, CFG, "float")
    mean, std = head_stats(stats[0]["q"])
    np.testing.assert_allclose(mean, 0.5, atol=1e-3)  # the middle of the queries' range [0, 1]
    np.testing.assert_allclose(std, 0.25, atol=1e-3)
    np.testing.assert_allclose(head_stats(stats[1]["out"])[1], head_stats(ref[1]["out"])[1], rtol=0.05)
    assert report["iterations"] <= 30 and report["largest_std_error"] < 0.05


def test_gradients_reach_through_the_quantised_cells() -> None:
    small = Config(vocab=11, d=16, heads=2, layers=1, context=8, window=8, array_width=4)
    p = params()
    p = {**p, "wpe": p["wpe"][:8], "blocks": p["blocks"][:1]}
    g_poly = grad_jit(p, TOKENS[:, :9], small, "polynomial")
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree_util.tree_leaves(g_poly))
    assert np.abs(np.asarray(g_poly["blocks"][0]["w_qkv"])).max() > 0  # gradients reach through the cells
    assert np.abs(np.asarray(g_poly["blocks"][0]["scalers"]["k_scale"])).max() > 0
