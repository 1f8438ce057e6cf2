"""Export trained parameters: the SNN front as an edgesnn graph, the rest as one ONNX model, both in one bundle.

The ONNX graph is built op by op with ``onnx.helper`` from the same parameter arrays (stored
bit for bit as initializers) and the same layouts as :mod:`tools.train_detect.model`;
``tests/test_detect_train.py`` checks onnxruntime against JAX on the same input.
"""

from __future__ import annotations

import math

import numpy as np

from edgesnn.detect import Detector, DetectorConfig
from edgesnn.graph import LIF, Conv2d, Graph, Input, Output, SumPool2d
from edgesnn.model import Model
from tools.datasets.detection import CLASSES
from tools.train_detect.arch import ArchSpec
from tools.train_detect.model import METHOD

OPSET = 18
INPUT_NAME, OUTPUT_NAME = "window", "raw"


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def front_model(params: dict[str, np.ndarray], spec: ArchSpec) -> Model:
    """The SNN front as an edgesnn model stepping at one bin: Input events (2, H, W) -> Output ``spikes``."""
    nodes: dict = {"events": Input((2, spec.height, spec.width), unit="events")}
    edges = []
    prev = "events"
    if spec.variant == "ann":
        nodes["pool"] = SumPool2d(kernel_size=(2, 2))
        edges.append(("events", "pool"))
        prev = "pool"
    else:
        h, w = spec.height, spec.width
        for i, (c, st) in enumerate(zip(spec.front_channels, spec.front_strides, strict=True)):
            h, w = (h - 1) // st + 1, (w - 1) // st + 1
            nodes[f"conv{i}"] = Conv2d(weight=np.asarray(params[f"front{i}.w"]), bias=np.asarray(params[f"front{i}.b"]),
                                       stride=(st, st), padding=(1, 1))  # fmt: skip
            tau = spec.dt_s / _sigmoid(float(params[f"front{i}.tau_logit"]))
            nodes[f"lif{i}"] = LIF.uniform((c, h, w), tau_mem_s=tau, v_threshold=1.0, reset_mode="subtract")
            edges += [(prev, f"conv{i}"), (f"conv{i}", f"lif{i}")]
            prev = f"lif{i}"
    shape = spec.front_shape()
    nodes["spikes"] = Output(shape, unit="spikes" if spec.variant != "ann" else "events")
    edges.append((prev, "spikes"))
    meta = {"producer": "tools.train_detect", "variant": spec.variant}
    return Model(Graph(nodes, edges, meta), dt_s=spec.dt_s, method=METHOD, producer={"name": "tools.train_detect"})


class _Builder:
    """Collects ONNX nodes and initializers with unique names."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, array: np.ndarray, base: str) -> str:
        name = self.name(base)
        self.inits.append(self.numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def conv(self, x: str, w: np.ndarray, b: np.ndarray, stride: int = 1, relu: bool = False) -> str:
        k = w.shape[-1]
        p = k // 2
        y = self.op("Conv", [x, self.const(w, "w"), self.const(b, "b")], strides=[stride, stride], pads=[p, p, p, p],
                    kernel_shape=[k, k])  # fmt: skip
        return self.op("Relu", [y]) if relu else y

    def reshape(self, x: str, shape: list[int]) -> str:
        return self.op("Reshape", [x, self.const(np.array(shape, np.int64), "shape")])


def _bridge(g: _Builder, p: dict[str, np.ndarray], x: str, spec: ArchSpec) -> str:
    """The bridge as :func:`tools.train_detect.model.bridge`, with ``spec``'s ablations (plain time-wise conv)."""
    if not spec.bridge_attention:
        out = g.op("ReduceMean", [x, g.const(np.array([1], np.int64), "axes")], keepdims=0)
        return _gate(g, x, out) if spec.bridge_gate else out
    c, h, w = spec.front_shape()
    t, d = spec.n_bins, spec.bridge_dim
    flat = g.reshape(x, [-1, c, h, w])
    ctx = g.conv(flat, p["bridge.sc_weight"], p["bridge.sc_bias"])

    def proj(name: str, relu: bool, perm: list[int]) -> str:
        wgt = p[f"bridge.{name}_weight"][:, :, None, None]
        y = g.conv(ctx, wgt, p[f"bridge.{name}_bias"], relu=relu)
        return g.op("Transpose", [g.reshape(y, [-1, t, d, h, w])], perm=perm)

    q = proj("q", True, [0, 3, 4, 1, 2])  # (B, h, w, T, D)
    k = proj("k", False, [0, 3, 4, 2, 1])  # (B, h, w, D, T)
    v = proj("v", True, [0, 3, 4, 1, 2])
    scores = g.op("Mul", [g.op("MatMul", [q, k]), g.const(np.float32(1.0 / math.sqrt(d)), "scale")])
    att = g.op("Relu", [g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])])
    att = g.reshape(g.op("Transpose", [att], perm=[0, 3, 4, 1, 2]), [-1, t * d, h, w])
    out = g.conv(att, p["bridge.out_weight"][:, :, None, None], p["bridge.out_bias"])
    return _gate(g, x, out) if spec.bridge_gate else out


def _gate(g: _Builder, x: str, out: str) -> str:
    """Event-rate spatial attention: sigmoid of the spike count over the bins times ``out``."""
    rate = g.op("ReduceSum", [x, g.const(np.array([1], np.int64), "axes")], keepdims=0)
    return g.op("Mul", [g.op("Sigmoid", [rate]), out])


def ann_onnx(params: dict[str, np.ndarray], spec: ArchSpec) -> bytes:
    """The ONNX part: input ``window`` (batch, T, C, h, w) -> output ``raw`` (batch, cells, 5 + K)."""
    from onnx import TensorProto, checker, helper

    p = {k: np.asarray(v, np.float32) for k, v in params.items()}
    g = _Builder()
    c, h, w = spec.front_shape()
    t = spec.n_bins
    x = INPUT_NAME
    if spec.variant == "snn":
        rate = g.op("ReduceMean", [x, g.const(np.array([1], np.int64), "axes")], keepdims=0)
        levels = [rate, g.op("AveragePool", [rate], kernel_shape=[2, 2], strides=[2, 2])]
    else:
        if spec.is_hybrid:
            y = _bridge(g, p, x, spec)
        else:
            y = g.reshape(x, [-1, t * c, h, w])
            for i in range(len(spec.stem_channels)):
                y = g.conv(y, p[f"stem{i}.w"], p[f"stem{i}.b"], 2, relu=True)
        p3 = g.conv(y, p["p3.w"], p["p3.b"], relu=True)
        p4 = g.conv(p3, p["p4.w"], p["p4.b"], 2, relu=True)
        levels = [p3, p4]
    k = spec.n_classes + 5
    outs = []
    for lvl, y in enumerate(levels):
        if spec.variant != "snn":
            y = g.conv(y, p[f"head{lvl}.hidden_w"], p[f"head{lvl}.hidden_b"], relu=True)
        y = g.conv(y, p[f"head{lvl}.pred_w"], p[f"head{lvl}.pred_b"])
        outs.append(g.reshape(y, [0, k, -1]))
    cat = g.op("Concat", outs, axis=2)
    g.nodes.append(helper.make_node("Transpose", [cat], [OUTPUT_NAME], perm=[0, 2, 1]))
    cells = sum(a * b for a, b in spec.level_shapes())
    graph = helper.make_graph(
        g.nodes, f"detect_{spec.variant}",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", t, c, h, w])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", cells, k])], g.inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgesnn")
    model.ir_version = 8
    checker.check_model(model)
    return model.SerializeToString()


def detector_config(spec: ArchSpec, **post) -> DetectorConfig:
    """The runtime settings matching ``spec`` (``post``: score_threshold, iou_threshold, max_detections)."""
    return DetectorConfig(
        width=spec.width, height=spec.height, n_bins=spec.n_bins, bin_us=spec.bin_us, classes=CLASSES[: spec.n_classes],
        level_shapes=spec.level_shapes(), strides=spec.strides(), front_output="spikes",
        count_cutoff=spec.count_cutoff, **post,
    )  # fmt: skip


def build_detector(params: dict[str, np.ndarray], spec: ArchSpec, **post) -> Detector:
    """A runtime :class:`~edgesnn.detect.Detector` from trained parameters."""
    return Detector(front_model(params, spec), ann_onnx(params, spec), detector_config(spec, **post))
