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
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 0] + a[:, None, 2], b[None, :, 0] + b[None, :, 2])
    y1 = np.minimum(a[:, None, 1] + a[:, None, 3], b[None, :, 1] + b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    out = np.zeros_like(inter)
    np.divide(inter, union, out=out, where=union > 0)
    return out


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
        overlap = iou(boxes[idx], boxes[idx])
        alive = np.ones(len(idx), bool)
        for i in range(len(idx)):
            if alive[i]:
                keep.append(int(idx[i]))
                alive[i + 1 :] &= overlap[i, i + 1 :] <= iou_threshold
    kept = np.asarray(keep, np.int64)
    kept = kept[np.argsort(-scores[kept], kind="stable")] if len(kept) else kept
    return kept[:max_detections]
