"""The streaming detector: events -> time-binned histograms -> SNN front (engine) -> ONNX part -> boxes.

A :class:`Detector` is immutable and shareable: the SNN front as an edgesnn
:class:`~edgesnn.model.Model`, the bridge + ANN + head as ONNX bytes, and a
:class:`DetectorConfig`. A :class:`DetectorSession` owns all state: the engine session
(membranes carry over from one window to the next), the onnxruntime session, and the
events of the window being filled.

Coordinates: ``push``, ``finish`` and ``run`` take events and give boxes in the sensor's
pixels; a session's :class:`~edgesnn.detect.view.SensorView` (``roi``, ``downsample``)
maps events to the model's pixels and boxes back. ``detect_window``, ``predict_window``
and ``front_window`` work in the model's pixels.

Long gaps: windows are consecutive, so a stream whose next event is hours (or, with
``start_us=0`` on epoch timestamps, decades) after the last one would run billions of empty
windows. A gap of more than ``max_gap_windows`` empty windows is shortened to that many:
the windows before them are neither run nor emitted (:attr:`DetectorSession.skipped_windows`
counts them), and the state carries on through the ones that are run. An empty window is not
"rest": the SNN front still gets its convolution biases, so its membranes settle toward a
bias-driven level (or, where a bias is above threshold, keep spiking), not to the reset
state. With the default of 10 s worth of windows this settling is complete (the membranes
decay by exp(-10 s / tau) toward it), so the output equals running every window, except that
the phase of a front that keeps spiking on no input can differ.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator

import numpy as np

from edgesnn.detect.boxes import BOX_DTYPE, nms
from edgesnn.detect.config import DetectorConfig
from edgesnn.detect.head import decode
from edgesnn.detect.view import SensorView, check_fit
from edgesnn.errors import InputError, ModelError, OptionError
from edgesnn.events._dtype import EVENT_DTYPE, empty_events
from edgesnn.events.functional.to_histogram import to_time_bins
from edgesnn.model import Model

log = logging.getLogger("edgesnn.detect")

#: Stages of one window, as timed in :attr:`DetectorSession.last_timings_us`.
STAGES = ("histogram", "snn", "ann", "post")
#: Default bound on a run of empty windows (see the module docstring): this much stream time, in µs.
MAX_GAP_US = 10_000_000


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

    def session(
        self,
        *,
        num_threads: int = 1,
        start_us: int | None = None,
        roi: tuple[int, int, int, int] | None = None,
        downsample: int = 1,
        geometry: tuple[int, int] | None = None,
        max_gap_windows: int | None = None,
    ) -> DetectorSession:
        """A stream's state; see :class:`DetectorSession` for the keywords."""
        return DetectorSession(
            self, num_threads=num_threads, start_us=start_us, roi=roi, downsample=downsample, geometry=geometry,
            max_gap_windows=max_gap_windows,
        )  # fmt: skip


def onnx_parameter_count(model: bytes) -> int:
    """Number of weights in an ONNX model's initializers (graph field 5), read from the protobuf wire format."""
    count = 0
    for field, value in _proto_fields(model, 0, len(model), "model"):
        if field == 7 and isinstance(value, tuple):  # ModelProto.graph
            for gfield, init in _proto_fields(model, *value, "graph"):
                if gfield == 5 and isinstance(init, tuple):  # GraphProto.initializer: a TensorProto
                    count += int(np.prod(_tensor_dims(model, init), dtype=np.int64))
    return count


def _tensor_dims(buf: bytes, span: tuple[int, int]) -> list[int]:
    dims: list[int] = []
    for field, value in _proto_fields(buf, *span, "initializer"):
        if field == 1:  # TensorProto.dims: repeated int64, one varint each or packed
            if isinstance(value, int):
                dims.append(value)
            else:
                i, end = value
                while i < end:
                    d, i = _varint(buf, i, "initializer dims")
                    dims.append(d)
    return dims


def _varint(buf: bytes, i: int, where: str) -> tuple[int, int]:
    value = shift = 0
    while i < len(buf) and shift < 64:
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7
    raise ModelError("truncated or overlong varint in the ONNX protobuf", path=f"ann/{where}")


def _proto_fields(buf: bytes, start: int, end: int, where: str) -> Iterator[tuple[int, int | tuple[int, int]]]:
    """(field number, varint value or (start, end) of a length-delimited value) of one protobuf message."""
    i = start
    while i < end:
        key, i = _varint(buf, i, where)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i, where)
            yield key >> 3, value
        elif wire == 2:
            n, i = _varint(buf, i, where)
            if i + n > end:
                raise ModelError("a protobuf field runs past its message", path=f"ann/{where}")
            yield key >> 3, (i, i + n)
            i += n
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4  # fixed64 / fixed32: no initializer dims live there
        else:
            raise ModelError(f"unsupported protobuf wire type {wire}", path=f"ann/{where}")


def _ort_session(model: bytes, num_threads: int):
    from edgesnn.engine._onnx import make_session

    return make_session(model, "", "", num_threads)


class DetectorSession:
    """One stream through a :class:`Detector`: ``push`` chunks, get one box array per finished window.

    Parameters
    ----------
    num_threads : int
        Threads of the engine and of onnxruntime.
    start_us : int, optional
        Start of the first window in µs; None (default): the first event's time.
    roi : (x0, y0, width, height), optional
        Sensor region the model sees (:class:`~edgesnn.events.transforms.Crop`).
    downsample : int
        Then pool ``downsample`` x ``downsample`` pixel blocks into one
        (:class:`~edgesnn.events.transforms.Downsample`), 1 to 16.
    geometry : (width, height), optional
        The sensor's size (e.g. ``FileSource.geometry``): checked against the model's after
        ``roi`` and ``downsample``; the error suggests a crop and factor that fit.
    max_gap_windows : int, optional
        At most this many empty windows are run in a row (module docstring); default: 10 s worth.
    """

    def __init__(
        self,
        detector: Detector,
        *,
        num_threads: int = 1,
        start_us: int | None = None,
        roi: tuple[int, int, int, int] | None = None,
        downsample: int = 1,
        geometry: tuple[int, int] | None = None,
        max_gap_windows: int | None = None,
    ) -> None:
        from edgesnn.engine import SessionOptions

        self.detector = detector
        self.config = detector.config
        self.view = SensorView(roi=roi, downsample=downsample)
        check_fit(self.view, geometry, (self.config.width, self.config.height), cli=False, path="geometry")
        if start_us is not None and (isinstance(start_us, bool) or not isinstance(start_us, int | np.integer)):
            raise OptionError(f"must be an integer time in µs or None, got {start_us!r}", path="start_us")
        self.max_gap_windows = _max_gap(max_gap_windows, self.config.window_us)
        self._snn = detector.front.session(
            dt=self.config.bin_us * 1e-6, options=SessionOptions(num_threads=num_threads)
        )
        self._ort, self._in_name, self._out_name = _ort_session(detector.ann, num_threads)
        self._start_us = None if start_us is None else int(start_us)
        self._origin = self._start_us
        self._t_seen: int | None = None
        self._pending = empty_events()
        self._hist_buffer: np.ndarray | None = None
        #: Wall time of each stage of the last window, in µs (keys: :data:`STAGES`).
        self.last_timings_us: dict[str, float] = {}
        #: End time (µs) of each window the last ``push`` or ``finish`` returned, in order.
        self.last_window_ends_us: list[int] = []
        #: Empty windows not run (gaps longer than ``max_gap_windows``) since the session opened.
        self.skipped_windows = 0

    def reset(self) -> None:
        """Forget the stream: SNN state to rest, pending events dropped, windows restart at the next event."""
        self._snn.reset()
        self._pending = empty_events()
        self._origin = self._start_us
        self._t_seen = None

    def push(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Add a time-sorted chunk of events (sensor pixels); return the boxes of every window it completes."""
        if chunk.dtype != EVENT_DTYPE:
            raise InputError(f"expected events of EVENT_DTYPE, got {chunk.dtype}", path="chunk")
        self.last_window_ends_us = []
        if len(chunk) == 0:
            return []
        t_first, t_last = int(chunk["t"][0]), int(chunk["t"][-1])
        if self._t_seen is not None and t_first < self._t_seen:
            raise InputError("chunk starts before the previous chunk's last event", path="chunk")
        self._t_seen = t_last
        if self._origin is None:
            self._origin = t_first
        chunk = self.view(chunk)
        chunk = chunk[chunk["t"] >= self._origin]
        buf = np.concatenate((self._pending, chunk)) if len(self._pending) else chunk
        out = []
        window = self.config.window_us
        # Time advances with every event, those outside the region too, so windows close on time.
        while t_last >= self._origin + window:
            t_next = int(buf["t"][0]) if len(buf) else t_last
            empty = (t_next - self._origin) // window
            if empty > self.max_gap_windows:
                skip = empty - self.max_gap_windows
                log.info("skipping %d empty windows (%d µs without events)", skip, skip * window)
                self._origin += skip * window
                self.skipped_windows += skip
                continue
            end = self._origin + window
            cut = int(np.searchsorted(buf["t"], end, side="left"))
            out.append(self.view.to_sensor(self.detect_window(buf[:cut], self._origin)))
            self.last_window_ends_us.append(end)
            buf = buf[cut:]
            self._origin = end
        self._pending = buf
        return out

    def finish(self) -> list[np.ndarray]:
        """Detect on the last, partly filled window (if it holds events) and reset the stream."""
        out, ends = [], []
        if len(self._pending):
            out.append(self.view.to_sensor(self.detect_window(self._pending, self._origin)))
            ends.append(self._origin + self.config.window_us)
        self.reset()
        self.last_window_ends_us = ends
        return out

    def detect_window(self, events: np.ndarray, t_start_us: int) -> np.ndarray:
        """Run one window [t_start_us, t_start_us + window) on the current state (model pixels); stamped at its end."""
        raw = self.predict_window(events, t_start_us)
        t0 = time.perf_counter()
        boxes = postprocess(raw, self.config, t_start_us + self.config.window_us)
        self.last_timings_us["post"] = (time.perf_counter() - t0) * 1e6
        return boxes

    def predict_window(self, events: np.ndarray, t_start_us: int) -> np.ndarray:
        """The head's raw predictions (cells, 5 + classes) for one window, advancing the SNN state."""
        t0 = time.perf_counter()
        # One buffer for every window: the front copies each bin in as it runs, so it can be reused.
        if self._hist_buffer is None:
            self._hist_buffer = self.histograms(events, t_start_us)
            hist = self._hist_buffer
        else:
            hist = self.histograms(events, t_start_us, out=self._hist_buffer)
        t1 = time.perf_counter()
        spikes = self._front(hist)
        t2 = time.perf_counter()
        raw = self._ort.run([self._out_name], {self._in_name: spikes[None]})
        t3 = time.perf_counter()
        self.last_timings_us = dict(zip(STAGES[:3], np.diff([t0, t1, t2, t3]) * 1e6, strict=True))
        return raw[0][0]

    def histograms(self, events: np.ndarray, t_start_us: int, out: np.ndarray | None = None) -> np.ndarray:
        """The window's input: event counts (T, 2, height, width) float32 per bin and polarity (into ``out``)."""
        cfg = self.config
        return to_time_bins(
            events, sensor_size=(cfg.width, cfg.height, 2), n_bins=cfg.n_bins, t_start_us=t_start_us,
            t_end_us=t_start_us + cfg.window_us, count_cutoff=cfg.count_cutoff, dtype=np.float32, out=out,
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


def _max_gap(value: int | None, window_us: int) -> int:
    """``max_gap_windows``: a count >= 0, or None for :data:`MAX_GAP_US` worth of windows."""
    if value is None:
        return -(-MAX_GAP_US // window_us)
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
        raise OptionError(f"expected a number of windows >= 0 or None, got {value!r}", path="max_gap_windows")
    return int(value)


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
