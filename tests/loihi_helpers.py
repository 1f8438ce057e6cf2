"""Models, inputs and the Lava-subprocess helpers shared by the Loihi tests."""

from __future__ import annotations

import io
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from edgesnn.bundle import write_bundle
from edgesnn.graph import LI, LIF, Affine, Conv2d, CubaLIF, Flatten, Graph, Input, Linear, Output
from edgesnn.model import Model

ROOT = pathlib.Path(__file__).resolve().parents[1]
BRIDGE_PYTHON = ROOT / "firmware_bridges" / "loihi2" / ".venv" / "bin" / "python"


def conv_model(seed: int = 0) -> Model:
    """2x12x12 spikes -> conv3x3 s2 p1 6 LIF -> flatten -> 8 CUBA LIF (sparse weights) -> 5 LI."""
    rng = np.random.default_rng(seed)
    nodes = {
        "in": Input((2, 12, 12)),
        "conv": Conv2d(
            (2.0 + 1.5 * rng.standard_normal((6, 2, 3, 3))).astype(np.float32),
            np.zeros(6, np.float32),
            stride=(2, 2),
            padding=(1, 1),
        ),  # fmt: skip
        "lif1": LIF.uniform((6, 6, 6), tau_mem_s=20e-3, r=1.0, v_leak=0.0, v_threshold=1.0, v_reset=0.0),
        "flat": Flatten(),
        "fc": Linear(
            np.where(rng.random((8, 216)) < 0.08, 3.0 * rng.standard_normal((8, 216)), 0.0).astype(np.float32)
        ),
        "cuba": CubaLIF.uniform(
            8, tau_syn_s=5e-3, tau_mem_s=10e-3, r=1.0, v_leak=0.0, v_threshold=0.5, v_reset=0.0, w_in=1.0
        ),  # fmt: skip
        "fc_out": Affine((0.5 * rng.standard_normal((5, 8))).astype(np.float32), np.zeros(5, np.float32)),
        "li": LI.uniform(5, tau_mem_s=10e-3, r=1.0, v_leak=0.0),
        "out": Output((5,)),
    }
    edges = (("in", "conv"), ("conv", "lif1"), ("lif1", "flat"), ("flat", "fc"), ("fc", "cuba"), ("cuba", "fc_out"),
             ("fc_out", "li"), ("li", "out"))  # fmt: skip
    return Model(Graph(nodes, edges), 1e-3)


def bernoulli(shape: tuple[int, ...], steps: int, density: float, seed: int = 1) -> np.ndarray:
    """Spikes (T, *shape) float32."""
    return (np.random.default_rng(seed).random((steps, *shape)) < density).astype(np.float32)


def bundle_bytes(model: Model) -> bytes:
    """The model's .esnn bytes."""
    buf = io.BytesIO()
    write_bundle(model, buf)
    return buf.getvalue()


def require_bridge() -> pathlib.Path:
    """The bridge venv's python, or skip: `make test` creates it (firmware_bridges/loihi2/setup.sh)."""
    if not BRIDGE_PYTHON.exists():
        pytest.skip("the Loihi 2 bridge venv is absent; run firmware_bridges/loihi2/setup.sh (make test does)")
    return BRIDGE_PYTHON


def _run_simulate(args: list[str], out: pathlib.Path) -> dict[str, np.ndarray]:
    python = require_bridge()
    cmd = [str(python), "-m", "firmware_bridges.loihi2.simulate", *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise AssertionError(f"Lava simulation failed ({done.returncode}):\n{done.stderr[-4000:]}")
    with np.load(out) as f:
        return {k: f[k] for k in f.files}


def lava_simulate(
    tmp: pathlib.Path, model: Model, xs: dict[str, np.ndarray], tag: str, *, record_state: bool = False
) -> dict[str, np.ndarray]:
    """Run ``model`` on Lava (``tag``) in the bridge venv; returns every layer's trace (and u, v with ``record_state``).

    The model travels as a bundle, so a model with its own integer network (``model.loihi``) runs those integers.
    """
    require_bridge()
    bundle, inputs, out = tmp / f"m-{tag}.esnn", tmp / f"x-{tag}.npz", tmp / f"y-{tag}.npz"
    bundle.write_bytes(bundle_bytes(model))
    np.savez(inputs, **xs)
    extra = ["--record-state"] if record_state else []
    return _run_simulate([str(bundle), str(inputs), str(out), "--tag", tag, *extra], out)


def lava_simulate_netx(tmp: pathlib.Path, path: pathlib.Path, xs: np.ndarray, dt_s: float) -> dict[str, np.ndarray]:
    """Run a netx file's integers on Lava's fixed_pt models (see firmware_bridges/loihi2/netx_lava.py), with u and v."""
    require_bridge()
    inputs, out = tmp / "x-netx.npz", tmp / "y-netx.npz"
    np.savez(inputs, **{"in": xs})
    return _run_simulate([str(path), str(inputs), str(out), "--netx", "--dt", repr(dt_s), "--record-state"], out)


__all__ = ["bernoulli", "bundle_bytes", "conv_model", "lava_simulate", "lava_simulate_netx", "require_bridge", "sys"]
