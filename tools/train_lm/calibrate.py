"""Calibration of the per-head affine scalers (Leroux et al.'s ``calibration_algorithm``), in JAX.

For every layer and head the scalers (a, b) of q, k, v and of the attention output are
moved so that the hardware model's values after each scaler have a target mean and
standard deviation over a calibration batch: ``a <- a * std_target / std``,
``b <- b + mean_target - mean``, each relaxed by alpha, which falls linearly from 1.0
to 0.1 over the first 50 iterations; it stops when every error is within 1e-4, or
after 100 iterations.

Targets (a choice; the authors load them from a reference model's buffers): the
output's are the float model's attention output statistics per head, so that the
hardware heads hand the next layer what the float heads did; q, k and v aim at the
middle of the device's input range with two standard deviations to each end (mean
q_max/2, std q_max/4; mean kv_max/2, std kv_max/4), so that about 95 % of a Gaussian
lands inside the range (the authors' "new" initialisation).
"""

from __future__ import annotations

import logging

import numpy as np

from tools.train_lm.model import Config, Params, forward_jit

log = logging.getLogger("tools.train_lm")

KINDS = ("q", "k", "v", "out")


def head_stats(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per head of an array (B, H, T, D)."""
    a = np.asarray(arr, np.float64)
    return a.mean(axis=(0, 2, 3)), a.std(axis=(0, 2, 3))


def targets(params: Params, cfg: Config, batch: np.ndarray) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Per layer, the (mean, std) each scaler's output should have."""
    _, stats = forward_jit(params, batch, cfg, "float")
    out = []
    for layer in stats:
        h = cfg.heads
        t = {"q": (np.full(h, cfg.q_max / 2), np.full(h, cfg.q_max / 4)),
             "k": (np.full(h, cfg.kv_max_v / 2), np.full(h, cfg.kv_max_v / 4))}  # fmt: skip
        t["v"] = t["k"]
        t["out"] = head_stats(layer["out"])
        out.append(t)
    return out


def calibrate(params: Params, cfg: Config, kind: str, batch: np.ndarray, *, tol: float = 1e-4,
              max_iter: int = 100, decay_iters: int = 50) -> tuple[Params, dict]:  # fmt: skip
    """Params with calibrated scalers for hardware model ``kind``, and a report (iterations, largest errors)."""
    goal = targets(params, cfg, batch)
    alphas = np.linspace(1.0, 0.1, decay_iters)
    blocks = [dict(b, scalers={k: np.array(v, np.float64) for k, v in b["scalers"].items()}) for b in params["blocks"]]
    worst = (np.inf, np.inf)
    for it in range(max_iter):
        current = {**params, "blocks": [dict(b, scalers={k: v.astype(np.float32) for k, v in b["scalers"].items()})
                                        for b in blocks]}  # fmt: skip
        stats = forward_jit(current, batch, cfg, kind)[1]
        alpha = alphas[it] if it < decay_iters else alphas[-1]
        errors_std, errors_mean = [], []
        for blk, layer, want in zip(blocks, stats, goal, strict=True):
            for name in KINDS:
                mean, std = head_stats(layer[name])
                t_mean, t_std = want[name]
                sc = blk["scalers"]
                e_std, e_mean = np.abs(std - t_std), np.abs(mean - t_mean)
                errors_std.append(e_std.max())
                errors_mean.append(e_mean.max())
                fix = (e_std > tol) & (std > 0)
                new_a = sc[f"{name}_scale"] * t_std / np.where(std > 0, std, 1)
                sc[f"{name}_scale"] = np.where(fix, alpha * new_a + (1 - alpha) * sc[f"{name}_scale"],
                                               sc[f"{name}_scale"])  # fmt: skip
                new_b = sc[f"{name}_offset"] + (t_mean - mean)
                sc[f"{name}_offset"] = np.where(e_mean > tol, alpha * new_b + (1 - alpha) * sc[f"{name}_offset"],
                                                sc[f"{name}_offset"])  # fmt: skip
        worst = (max(errors_std), max(errors_mean))
        if it % 10 == 0:
            log.info("calibration %s iteration %d: largest std error %.2e, mean error %.2e", kind, it, *worst)
        if worst[0] <= tol and worst[1] <= tol:
            break
    params = {**params, "blocks": [dict(b, scalers={k: v.astype(np.float32) for k, v in b["scalers"].items()})
                                   for b in blocks]}  # fmt: skip
    report = {"iterations": it + 1, "converged": bool(worst[0] <= tol and worst[1] <= tol),
              "largest_std_error": float(worst[0]), "largest_mean_error": float(worst[1])}  # fmt: skip
    return params, report
