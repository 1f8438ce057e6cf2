"""Learnability check (not a test): multinomial logistic regression on binned spike counts.

Features are per-channel spike counts in coarse time bins (default 50 ms), log1p'd and
standardised with the training statistics; the L2 strength is picked on the validation
split; the test accuracy is reported next to chance (1 / number of keywords)::

    python -m tools.datasets.baseline --data data/keywords
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np

from edgesnn.cli import HelpFormatter
from edgesnn.errors import MissingDependencyError
from tools.datasets.keywords import load_split


def features(x: np.ndarray) -> np.ndarray:
    """(N, T, C) counts to (N, T*C) float64 log-counts."""
    return np.log1p(x.reshape(len(x), -1).astype(np.float64))


def fit_softmax(x: np.ndarray, y: np.ndarray, n_classes: int, *, l2: float, max_iter: int = 300) -> np.ndarray:
    """Weights (D+1, K) of L2-regularised multinomial logistic regression (bias last), fitted by L-BFGS."""
    try:
        from scipy.optimize import minimize
    except ImportError as exc:
        raise MissingDependencyError("the baseline needs scipy (pip install scipy)") from exc

    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    onehot = np.eye(n_classes)[y]

    def loss_grad(w_flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = w_flat.reshape(d + 1, n_classes)
        z = xb @ w
        z -= z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        reg = np.sum(w[:-1] ** 2)
        loss = -np.sum(onehot * logp) / n + 0.5 * l2 * reg
        grad = xb.T @ (np.exp(logp) - onehot) / n
        grad[:-1] += l2 * w[:-1]
        return loss, grad.ravel()

    res = minimize(loss_grad, np.zeros((d + 1) * n_classes), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter})  # fmt: skip
    return res.x.reshape(d + 1, n_classes)


def accuracy(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of ``x`` whose arg-max class under ``w`` equals ``y``."""
    return float(np.mean((np.hstack([x, np.ones((len(x), 1))]) @ w).argmax(axis=1) == y))


def logistic_baseline(data: str, bin_ms: float = 100.0) -> dict:
    """Fit on train, choose L2 on val; train/val/test accuracy, chance and the settings as a dict."""
    t0 = time.perf_counter()
    dt_s = bin_ms / 1000.0
    (xtr, ytr), (xva, yva), (xte, yte) = (load_split(data, s, dt_s=dt_s) for s in ("train", "val", "test"))
    ftr, fva, fte = features(xtr), features(xva), features(xte)
    mean, std = ftr.mean(axis=0), ftr.std(axis=0) + 1e-6
    ftr, fva, fte = ((f - mean) / std for f in (ftr, fva, fte))
    n_classes = int(max(ytr.max(), yva.max(), yte.max())) + 1
    best = None
    for l2 in (1e-2, 1e-1, 1.0):
        w = fit_softmax(ftr, ytr, n_classes, l2=l2)
        val = accuracy(w, fva, yva)
        if best is None or val > best[1]:
            best = (l2, val, w)
    l2, val, w = best
    return {
        "bin_ms": bin_ms,
        "features": ftr.shape[1],
        "samples": {"train": len(ytr), "val": len(yva), "test": len(yte)},
        "l2": l2,
        "accuracy": {"train": accuracy(w, ftr, ytr), "val": val, "test": accuracy(w, fte, yte)},
        "chance": 1.0 / n_classes,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Fit on train, choose L2 on val, print train/val/test accuracy and chance as JSON."""
    parser = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="python -m tools.datasets.baseline", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", required=True, help="dataset directory with train/val/test.npz")
    parser.add_argument("--bin-ms", type=float, default=100.0)
    args = parser.parse_args(argv)
    print(json.dumps(logistic_baseline(args.data, args.bin_ms), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
