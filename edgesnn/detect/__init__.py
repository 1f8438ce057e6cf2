"""Hybrid SNN-ANN event-camera object detection: SNN front, attention bridge, ANN (ONNX), YOLOX head, NMS.

Example::

    det = edgesnn.detect.load_detector("detector.esnn")
    s = det.session(start_us=0)
    for chunk in edgesnn.events.FileSource("drive.raw"):
        for boxes in s.push(chunk):          # one BOX_DTYPE array per 50 ms window
            print(boxes["t_us"], boxes[["x", "y", "w", "h", "class_id", "score"]])
"""

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

__all__ = [
    "BOX_DTYPE", "Detector", "DetectorConfig", "DetectorSession", "decode", "iou", "load_detector", "nms",
    "postprocess", "write_detector",
]  # fmt: skip
