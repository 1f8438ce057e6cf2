"""The streaming detector: events -> time-binned histograms -> SNN front (engine) -> ONNX part -> boxes.

A :class:`Detector` is immutable and shareable: the SNN front as an edgesnn
:class:`~edgesnn.model.Model`, the bridge + ANN + head as ONNX bytes, and a
:class:`DetectorConfig`. A :class:`DetectorSession` owns all state: the engine session
(membranes carry over from one window to the next), the onnxruntime session, and the
events of the window being filled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

import numpy as np

from edgesnn.detect.boxes import BOX_DTYPE, nms
from edgesnn.detect.config import DetectorConfig
from edgesnn.detect.head import decode
from edgesnn.errors import InputError, MissingDependencyError, ModelError
from edgesnn.events._dtype import EVENT_DTYPE, empty_events
from edgesnn.events.functional.to_histogram import to_time_bins
from edgesnn.model import Model

log = logging.getLogger("edgesnn.detect")

#: Stages of one window, as timed in :attr:`DetectorSession.last_timings_us`.
STAGES = ("histogram", "snn", "ann", "post")


class Detector:
    """A hybrid SNN-ANN detector: immutable; open a :meth:`session` per stream.

    Parameters
    ----------
    front : Model
        The SNN front: one input (2, height, width) of event counts per bin, and an output
        named ``config.front_output`` of shape (C, h, w).
    ann : bytes
        ONNX model: input (batch, T, C, h, w) float32, output (batch, cells, 5 + classes).
    config : DetectorConfig
        Geometry, binning, grid levels and post-processing.
    """

    def __init__(self, front: Model, ann: bytes, config: DetectorConfig) -> None:
        self.front, self.ann, self.config = front, bytes(ann), config
        inputs = front.inputs
        want = (2, config.height, config.width)
        if len(inputs) != 1 or inputs[0].shape != want:
            got = [s.shape for s in inputs]
            raise ModelError(f"expected one front input of shape {want}, got {got}", path="front/inputs")
        if config.front_output not in front.graph.nodes:
            raise ModelError(f"the front has no node {config.front_output!r}", path="front_output")
        self.front_shape = front.graph.shape(config.front_output)
        sess, in_name, out_name = _ort_session(self.ann, 1)
        in_shape = sess.get_inputs()[0].shape
        out_shape = sess.get_outputs()[0].shape
        if list(in_shape[1:]) != [config.n_bins, *self.front_shape]:
            raise ModelError(f"ONNX input is {in_shape}, the front gives (batch, {config.n_bins}, "
                             f"{', '.join(map(str, self.front_shape))})", path="ann/input")  # fmt: skip
        if list(out_shape[1:]) != [config.n_cells, 5 + len(config.classes)]:
            raise ModelError(f"ONNX output is {out_shape}; the levels and classes need (batch, {config.n_cells}, "
                             f"{5 + len(config.classes)})", path="ann/output")  # fmt: skip

    def parameters(self) -> dict[str, int]:
        """Parameter counts: SNN front (synapse weights and biases, one time constant per neuron layer), ONNX part."""
        snn = 0
        for node in self.front.graph.nodes.values():
            if getattr(node, "stateful", False):
                snn += 1  # a parametric LIF layer learns one time constant
                continue
            snn += sum(int(np.size(getattr(node, f))) for f in node.array_fields() if getattr(node, f) is not None)
        ann = onnx_parameter_count(self.ann)
        return {"snn": snn, "ann": ann, "total": snn + ann}

    def session(self, *, num_threads: int = 1, start_us: int | None = None) -> DetectorSession:
        """A stream's state; windows start at ``start_us`` (default: the first event's time)."""
        return DetectorSession(self, num_threads=num_threads, start_us=start_us)


def onnx_parameter_count(model: bytes) -> int:
    """Number of weights in an ONNX model's initializers (needs the ``onnx`` package, in the dev extra)."""
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError("counting ONNX parameters needs onnx: pip install onnx") from exc
    return int(sum(np.prod(t.dims) for t in onnx.load_from_string(model).graph.initializer))


def _ort_session(model: bytes, num_threads: int):
    from edgesnn.engine._onnx import make_session

    return make_session(model, "", "", num_threads)


class DetectorSession:
    """One stream through a :class:`Detector`: ``push`` chunks, get one box array per finished window."""

    def __init__(self, detector: Detector, *, num_threads: int = 1, start_us: int | None = None) -> None:
        from edgesnn.engine import SessionOptions

        self.detector = detector
        self.config = detector.config
        self._snn = detector.front.session(
            dt=self.config.bin_us * 1e-6, options=SessionOptions(num_threads=num_threads)
        )
        self._ort, self._in_name, self._out_name = _ort_session(detector.ann, num_threads)
        self._start_us = start_us
        self._origin = start_us
        self._pending = empty_events()
        #: Wall time of each stage of the last window, in µs (keys: :data:`STAGES`).
        self.last_timings_us: dict[str, float] = {}

    def reset(self) -> None:
        """Forget the stream: SNN state to rest, pending events dropped, windows restart at the next event."""
        self._snn.reset()
        self._pending = empty_events()
        self._origin = self._start_us

    def push(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Add a time-sorted chunk of events; return the detections of every window it completes."""
        if chunk.dtype != EVENT_DTYPE:
            raise InputError(f"expected events of EVENT_DTYPE, got {chunk.dtype}", path="chunk")
        if len(chunk) == 0:
            return []
        if self._origin is None:
            self._origin = int(chunk["t"][0])
        if len(self._pending) and int(chunk["t"][0]) < int(self._pending["t"][-1]):
            raise InputError("chunk starts before the previous chunk's last event", path="chunk")
        chunk = chunk[chunk["t"] >= self._origin]
        buf = np.concatenate((self._pending, chunk)) if len(self._pending) else chunk
        out = []
        window = self.config.window_us
        t_last = int(buf["t"][-1]) if len(buf) else self._origin
        while t_last >= self._origin + window:
            end = self._origin + window
            cut = int(np.searchsorted(buf["t"], end, side="left"))
            out.append(self.detect_window(buf[:cut], self._origin))
            buf = buf[cut:]
            self._origin = end
        self._pending = buf
        return out

    def finish(self) -> list[np.ndarray]:
        """Detect on the last, partly filled window (if it holds events) and reset the stream."""
        out = [self.detect_window(self._pending, self._origin)] if len(self._pending) else []
        self.reset()
        return out

    def detect_window(self, events: np.ndarray, t_start_us: int) -> np.ndarray:
        """Run one window [t_start_us, t_start_us + window) on the current state; boxes stamped at its end."""
        raw = self.predict_window(events, t_start_us)
        t0 = time.perf_counter()
        boxes = postprocess(raw, self.config, t_start_us + self.config.window_us)
        self.last_timings_us["post"] = (time.perf_counter() - t0) * 1e6
        return boxes

    def predict_window(self, events: np.ndarray, t_start_us: int) -> np.ndarray:
        """The head's raw predictions (cells, 5 + classes) for one window, advancing the SNN state."""
        t0 = time.perf_counter()
        hist = self.histograms(events, t_start_us)
        t1 = time.perf_counter()
        spikes = self._front(hist)
        t2 = time.perf_counter()
        raw = self._ort.run([self._out_name], {self._in_name: spikes[None]})
        t3 = time.perf_counter()
        self.last_timings_us = dict(zip(STAGES[:3], np.diff([t0, t1, t2, t3]) * 1e6, strict=True))
        return raw[0][0]

    def histograms(self, events: np.ndarray, t_start_us: int) -> np.ndarray:
        """The window's input: event counts (T, 2, height, width) float32 per bin and polarity."""
        cfg = self.config
        return to_time_bins(
            events, sensor_size=(cfg.width, cfg.height, 2), n_bins=cfg.n_bins, t_start_us=t_start_us,
            t_end_us=t_start_us + cfg.window_us, count_cutoff=cfg.count_cutoff, dtype=np.float32,
        )  # fmt: skip

    def front_window(self, events: np.ndarray, t_start_us: int) -> np.ndarray:
        """Only the SNN front on one window (advancing its state): output (T, C, h, w), the ONNX part's input."""
        return self._front(self.histograms(events, t_start_us))

    def _front(self, hist: np.ndarray) -> np.ndarray:
        out = self.config.front_output
        return np.ascontiguousarray(self._snn.run(hist[:, None], outputs=[out])[out][:, 0])

    def run(self, chunks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Detections of every window of a chunked stream (any events source), the last partial one included."""
        for chunk in chunks:
            yield from self.push(chunk)
        yield from self.finish()


def postprocess(raw: np.ndarray, config: DetectorConfig, t_us: int) -> np.ndarray:
    """Raw head output (cells, 5 + K) -> BOX_DTYPE array: decode, score threshold, class-aware NMS."""
    boxes, scores, classes = decode(raw, config.level_shapes, config.strides)
    keep = np.flatnonzero(scores >= config.score_threshold)
    if len(keep) > config.pre_nms_top_k:
        keep = keep[np.argsort(-scores[keep], kind="stable")[: config.pre_nms_top_k]]
    keep = keep[nms(boxes[keep], scores[keep], classes[keep], iou_threshold=config.iou_threshold,
                    max_detections=config.max_detections)]  # fmt: skip
    out = np.empty(len(keep), BOX_DTYPE)
    for i, name in enumerate(("x", "y", "w", "h")):
        out[name] = boxes[keep, i]
    out["class_id"] = classes[keep]
    out["score"] = scores[keep]
    out["t_us"] = t_us
    return out
