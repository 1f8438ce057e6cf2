"""Capacity searches: the largest machine a network of N neurons walks correctly half of the time.

:func:`critical_size` bisects a machine size on a log scale, judging each size by the pass
rate of a few random machines (:mod:`tools.eval.fsm.trials`); the fits turn the critical
sizes into the paper's figures: the dense boundary ``N_Z + beta N_E = c N`` and the sparse
power law ``C = a N^gamma``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Points = list[tuple[int, float]]


def critical_size(passes: Callable[[int, int], float], lo: int, hi: int, *, seeds: int, ratio: float = 1.12,
                  floor: int = 1) -> tuple[float, Points]:  # fmt: skip
    """The size where the mean pass rate of ``passes(size, seed)`` (a bool or a rate) over ``seeds`` seeds crosses 0.5;
    and every rate seen.

    ``lo`` and ``hi`` bracket it (either is moved outwards, by factors of 2, until lo passes and
    hi fails); bisection in log size stops when ``hi / lo <= ratio`` or they are adjacent sizes.
    """
    seen: Points = []

    def rate(size: int) -> float:
        r = sum(passes(size, s) for s in range(seeds)) / seeds
        seen.append((size, r))
        return r

    while lo > floor and rate(lo) < 0.5:
        hi, lo = lo, max(floor, lo // 2)
    while rate(hi) >= 0.5:
        lo, hi = hi, hi * 2
    while hi / lo > ratio and hi - lo > 1:
        mid = int(round(math.sqrt(lo * hi)))
        mid = min(max(mid, lo + 1), hi - 1)
        if rate(mid) >= 0.5:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi), seen


def fit_boundary(rows: list[dict]) -> dict[str, float]:
    """Least-squares ``c`` and ``beta`` of ``N_Z + beta N_E = c N`` through the critical points (n, states, edges)."""
    a = np.array([[r["edges"], -r["n"]] for r in rows], float)
    b = -np.array([r["states"] for r in rows], float)
    # Each row scaled by 1/N: every network size weighs the same.
    scale = 1 / np.array([r["n"] for r in rows], float)
    (beta, c), *_ = np.linalg.lstsq(a * scale[:, None], b * scale, rcond=None)
    resid = (np.array([r["states"] + beta * r["edges"] for r in rows]) / np.array([r["n"] for r in rows])) - c
    # Standard errors from the residuals (2 parameters).
    dof = max(1, len(rows) - 2)
    cov = np.linalg.inv((a * scale[:, None]).T @ (a * scale[:, None])) * float(resid @ resid) / dof
    return {"c": float(c), "beta": float(beta), "c_se": float(math.sqrt(cov[1, 1])),
            "beta_se": float(math.sqrt(cov[0, 0])), "rms_residual": float(math.sqrt(np.mean(resid**2)))}  # fmt: skip


def fit_width(points: list[dict], c: float, beta: float) -> float:
    """Width ``w`` of the logistic ``P(fail) = 1 / (1 + exp(-(load - c) / w))``, load ``(N_Z + beta N_E) / N``, by
    maximum likelihood over every pass rate measured."""
    load = np.array([(p["states"] + beta * p["edges"]) / p["n"] for p in points])
    rate = np.array([p["pass_rate"] for p in points])
    seeds = np.array([p["seeds"] for p in points])
    best, best_ll = 0.0, -np.inf
    for w in np.geomspace(1e-4, 0.1, 400):
        q = 1 / (1 + np.exp(np.clip(-(load - c) / w, -700, 700)))  # failure probability
        q = np.clip(q, 1e-9, 1 - 1e-9)
        ll = float(np.sum(seeds * (rate * np.log(1 - q) + (1 - rate) * np.log(q))))
        if ll > best_ll:
            best, best_ll = float(w), ll
    return best


def fit_power(ns: list[int], caps: list[float]) -> dict[str, float]:
    """``C = a N^gamma`` by least squares in log-log, with the standard error of gamma."""
    x, y = np.log(np.array(ns, float)), np.log(np.array(caps, float))
    gamma, log_a = np.polyfit(x, y, 1)
    resid = y - (gamma * x + log_a)
    spread = float(np.sum((x - x.mean()) ** 2))
    se = math.sqrt(float(resid @ resid) / (len(x) - 2) / spread) if len(x) > 2 else 0.0
    return {"gamma": float(gamma), "a": float(math.exp(log_a)), "gamma_se": se}


def fit_log_width(samples: list[tuple[float, float, float, int]]) -> float:
    """Width ``w`` of ``P(fail) = 1 / (1 + exp(-log(size / C) / w))`` by maximum likelihood.

    ``samples`` are (size, critical size C of its network, pass rate, trials) of every rate measured.
    """
    x = np.array([math.log(s / c) for s, c, _, _ in samples])
    rate = np.array([r for _, _, r, _ in samples])
    trials = np.array([t for _, _, _, t in samples])
    best, best_ll = 0.0, -np.inf
    for w in np.geomspace(1e-3, 2.0, 400):
        q = np.clip(1 / (1 + np.exp(np.clip(-x / w, -700, 700))), 1e-9, 1 - 1e-9)
        ll = float(np.sum(trials * (rate * np.log(1 - q) + (1 - rate) * np.log(q))))
        if ll > best_ll:
            best, best_ll = float(w), ll
    return best
