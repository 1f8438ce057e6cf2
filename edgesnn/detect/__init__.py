"""Hybrid SNN-ANN event-camera object detection: SNN front, attention bridge, ANN (ONNX), YOLOX head, NMS.

Example (a 1280x720 camera into a 304x240 detector; boxes come back in sensor pixels)::

    det = edgesnn.detect.load_detector("detector.esnn")
    with edgesnn.events.FileSource("drive.raw") as src:
        s = det.session(geometry=src.geometry, roi=(184, 0, 912, 720), downsample=3)
        for chunk in src:
            for boxes in s.push(chunk):      # one BOX_DTYPE array per 50 ms window
                print(boxes["t_us"], boxes[["x", "y", "w", "h", "class_id", "score"]])
        s.finish()                           # the last, partial window
"""

from edgesnn.detect._bundle import describe as describe
from edgesnn.detect._bundle import describe_line as describe_line
from edgesnn.detect._bundle import load_detector as load_detector
from edgesnn.detect._bundle import write_detector as write_detector
from edgesnn.detect.boxes import BOX_DTYPE as BOX_DTYPE
from edgesnn.detect.boxes import iou as iou
from edgesnn.detect.boxes import nms as nms
from edgesnn.detect.config import DetectorConfig as DetectorConfig
from edgesnn.detect.head import decode as decode
from edgesnn.detect.pipeline import Detector as Detector
from edgesnn.detect.pipeline import DetectorSession as DetectorSession
from edgesnn.detect.pipeline import postprocess as postprocess
from edgesnn.detect.view import SensorView as SensorView

__all__ = [
    "BOX_DTYPE", "Detector", "DetectorConfig", "DetectorSession", "SensorView", "decode", "describe", "describe_line",
    "iou", "load_detector", "nms", "postprocess", "write_detector",
]  # fmt: skip
