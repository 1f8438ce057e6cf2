"""onnxruntime session creation for ONNX nodes (imported only when a model has one)."""

from __future__ import annotations

from typing import Any

from edgesnn.errors import MissingDependencyError, ModelError


def make_session(model: bytes, input_name: str, output_name: str, num_threads: int) -> tuple[Any, str, str]:
    """Create a single-threaded CPU InferenceSession and resolve the I/O names."""
    try:
        import onnxruntime as ort
    except ImportError as exc:  # pragma: no cover - onnxruntime is a runtime dependency
        raise MissingDependencyError("onnxruntime is needed to run ONNX nodes: pip install onnxruntime") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    try:
        sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad models
        raise ModelError(f"onnxruntime cannot load the ONNX part: {exc}", path="model") from exc
    ins = [i.name for i in sess.get_inputs()]
    outs = [o.name for o in sess.get_outputs()]
    in_name = input_name or ins[0]
    out_name = output_name or outs[0]
    if in_name not in ins:
        raise ModelError(f"ONNX model has no input {in_name!r}; it has {', '.join(ins)}", path="input_name")
    if out_name not in outs:
        raise ModelError(f"ONNX model has no output {out_name!r}; it has {', '.join(outs)}", path="output_name")
    return sess, in_name, out_name
