"""Detected boxes: the record layout, intersection over union, and class-aware non-maximum suppression."""

from __future__ import annotations

import numpy as np

#: One detection: top-left corner and size in pixels, class index, score in [0, 1], window end time in µs.
BOX_DTYPE = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("w", "<f4"), ("h", "<f4"), ("class_id", "<i4"), ("score", "<f4"), ("t_us", "<i8")]
)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``a`` (N, 4) and ``b`` (M, 4), each (x, y, w, h): shape (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    # In place where possible: each N x M temporary costs an allocation (an mmap above 128 KiB).
    iw = np.minimum((a[:, 0] + a[:, 2])[:, None], (b[:, 0] + b[:, 2])[None, :])
    iw -= np.maximum(a[:, None, 0], b[None, :, 0])
    np.maximum(iw, 0, out=iw)
    ih = np.minimum((a[:, 1] + a[:, 3])[:, None], (b[:, 1] + b[:, 3])[None, :])
    ih -= np.maximum(a[:, None, 1], b[None, :, 1])
    np.maximum(ih, 0, out=ih)
    iw *= ih  # the intersection
    union = np.add((a[:, 2] * a[:, 3])[:, None], (b[:, 2] * b[:, 3])[None, :], out=ih)
    union -= iw
    out = np.zeros_like(iw)
    np.divide(iw, union, out=out, where=union > 0)
    return out


#: Rows of the IoU matrix formed at once: float64 temporaries of 48 x 300 stay below glibc's
#: 128 KiB mmap threshold, so they come from the heap; a whole 300 x 300 block was mapped and
#: page-faulted afresh for each of its temporaries (5x slower).
_IOU_ROWS = 48


def nms(
    boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, *, iou_threshold: float, max_detections: int
) -> np.ndarray:
    """Indices of the boxes greedy non-maximum suppression keeps, best score first.

    Within each class, a box is dropped when it overlaps a better-scoring kept box
    with IoU > ``iou_threshold``; boxes of different classes never suppress each
    other. At most ``max_detections`` indices are returned (ties keep input order).
    """
    scores = np.asarray(scores)
    class_ids = np.asarray(class_ids)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    for c in np.unique(class_ids):
        idx = order[class_ids[order] == c]
        # beats[j, i]: the better box j suppresses box i if j is kept. Greedy NMS keeps i exactly
        # when no kept j < i beats it; that triangular system has one solution, which iterating
        # from "keep all" reaches (after round r the first r boxes are final) as soon as a round
        # changes nothing: a few array passes instead of a Python step per kept box.
        beats = np.empty((len(idx), len(idx)), np.float32)
        for r in range(0, len(idx), _IOU_ROWS):
            beats[r : r + _IOU_ROWS] = iou(boxes[idx[r : r + _IOU_ROWS]], boxes[idx]) > iou_threshold
        beats = np.triu(beats, k=1)
        kept = np.ones(len(idx), bool)
        while True:
            again = (kept.astype(np.float32) @ beats) == 0
            if np.array_equal(again, kept):
                break
            kept = again
        keep += idx[kept].tolist()
    out = np.sort(np.asarray(keep, np.int64))  # input order, so that equal scores keep it across classes
    out = out[np.argsort(-scores[out], kind="stable")] if len(out) else out
    return out[:max_detections]
