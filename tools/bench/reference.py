"""Plain numpy step loops over the benchmark networks: the reference edgesnn is measured against.

Deliberately straightforward, as a user would write them by hand: dense
``x @ W`` every step, ``v = a*v + g*I``, ``spikes = v > th``, reset to zero,
and convolutions through an im2col gather and one matmul. They read the same
weights as the edgesnn models and report their own firing rates, so a reader
can see both sides did the same work.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgesnn.graph import LI, LIF, Affine, Conv2d, Linear

from .workloads import Workload

StepFn = Callable[[np.ndarray], None]


def _decay(node: LIF | LI, dt_s: float) -> tuple[np.float32, np.float32]:
    a = np.exp(-dt_s / float(node.tau_mem_s.reshape(-1)[0]))
    return np.float32(a), np.float32(1.0 - a)


def _wt(node: Linear | Affine) -> np.ndarray:
    return np.ascontiguousarray(node.weight.T)


class DenseReference:
    """W1 / W2: a chain of dense layers with LIF populations (W1's first layer is recurrent)."""

    def __init__(self, wl: Workload, batch: int) -> None:
        g, dt = wl.model.graph, wl.model.dt_s
        self.recurrent = wl.name == "W1"
        if self.recurrent:
            self.w = [_wt(g.nodes["fc_in"]), _wt(g.nodes["fc_rec"]), _wt(g.nodes["fc_out"])]
            self.b_out = g.nodes["fc_out"].bias
            lifs = [g.nodes["lif"]]
        else:
            self.w = [_wt(g.nodes["fc1"]), _wt(g.nodes["fc2"]), _wt(g.nodes["fc_out"])]
            self.b_out = g.nodes["fc_out"].bias
            lifs = [g.nodes["lif1"], g.nodes["lif2"]]
        self.coef = [_decay(n, dt) for n in lifs]
        self.th = [np.float32(n.v_threshold.reshape(-1)[0]) for n in lifs]
        self.a_out, self.g_out = _decay(g.nodes["li"], dt)
        self.v = [np.zeros((batch, w.shape[1]), np.float32) for w in self.w[: len(lifs)]]
        self.z = [np.zeros_like(v) for v in self.v]
        self.v_out = np.zeros((batch, self.w[-1].shape[1]), np.float32)
        self.spikes = [0.0 for _ in lifs]

    def step(self, x: np.ndarray) -> None:
        """One step of the whole network on input x (batch, 700)."""
        if self.recurrent:
            drives = [x @ self.w[0] + self.z[0] @ self.w[1]]
        else:
            drives = [x @ self.w[0]]
        for k in range(len(self.v)):
            if k > 0:
                drives.append(self.z[k - 1] @ self.w[k])
            a, g = self.coef[k]
            v = a * self.v[k] + g * drives[k]
            z = v > self.th[k]
            v[z] = 0.0
            self.v[k] = v
            self.z[k] = z.astype(np.float32)
            self.spikes[k] += float(self.z[k].mean())
        y = self.z[-1] @ self.w[-1] + self.b_out
        self.v_out = self.a_out * self.v_out + self.g_out * y


class ConvReference:
    """W3: two strided convolutions (im2col + matmul) with LIF, then a dense readout."""

    def __init__(self, wl: Workload) -> None:
        g, dt = wl.model.graph, wl.model.dt_s
        self.convs = []
        in_shape = wl.input_shape
        for name in ("conv1", "conv2"):
            node: Conv2d = g.nodes[name]
            self.convs.append(self._im2col(node, in_shape))
            in_shape = g.shape(name)
        fc = g.nodes["fc"]
        self.w_fc, self.b_fc = _wt(fc), fc.bias
        lifs = [g.nodes["lif1"], g.nodes["lif2"]]
        self.coef = [_decay(n, dt) for n in lifs]
        self.th = [np.float32(n.v_threshold.reshape(-1)[0]) for n in lifs]
        self.v = [np.zeros(n.shape, np.float32).reshape(n.shape[0], -1) for n in lifs]
        self.a_out, self.g_out = _decay(g.nodes["li"], dt)
        self.v_out = np.zeros(fc.weight.shape[0], np.float32)
        self.spikes = [0.0, 0.0]

    @staticmethod
    def _im2col(node: Conv2d, in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        c, h, w = in_shape
        c_out, _, kh, kw = node.weight.shape
        (sh, sw), (ph, pw) = node.stride, node.padding
        hp, wp = h + 2 * ph, w + 2 * pw
        ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
        ci, ky, kx = np.meshgrid(np.arange(c), np.arange(kh), np.arange(kw), indexing="ij")
        oy, ox = np.meshgrid(np.arange(ho), np.arange(wo), indexing="ij")
        rows = (ci.reshape(-1, 1) * hp + ky.reshape(-1, 1) + sh * oy.reshape(1, -1)) * wp
        idx = rows + kx.reshape(-1, 1) + sw * ox.reshape(1, -1)  # (C*KH*KW, HO*WO) into the padded input
        return idx, node.weight.reshape(c_out, -1), node.bias.reshape(-1, 1), ph

    def step(self, x: np.ndarray) -> None:
        """One step on input x (1, 2, 64, 64)."""
        h = x[0]
        for k, (idx, wm, b, pad) in enumerate(self.convs):
            cols = np.pad(h, ((0, 0), (pad, pad), (pad, pad))).reshape(-1)[idx]
            drive = wm @ cols + b
            a, g = self.coef[k]
            v = a * self.v[k] + g * drive
            z = v > self.th[k]
            v[z] = 0.0
            self.v[k] = v
            zf = z.astype(np.float32)
            self.spikes[k] += float(zf.mean())
            side = int(round(np.sqrt(zf.shape[1])))
            h = zf.reshape(zf.shape[0], side, side)
        y = h.reshape(-1) @ self.w_fc + self.b_fc
        self.v_out = self.a_out * self.v_out + self.g_out * y


def make_reference(wl: Workload, batch: int) -> DenseReference | ConvReference:
    """The plain numpy loop for one workload."""
    return ConvReference(wl) if wl.name == "W3" else DenseReference(wl, batch)
