r"""The YOLOX-style anchor-free head's decoding: raw predictions per grid cell to scored boxes.

Level :math:`l` has stride :math:`s` and an (h, w) grid; the prediction of cell (i, j) is
:math:`(t_x, t_y, t_w, t_h, o, c_1 \dots c_K)` and decodes (Ge et al. 2021, YOLOX) as

.. math::
    c_x = (t_x + j)\,s, \quad c_y = (t_y + i)\,s, \quad w = e^{t_w} s, \quad h = e^{t_h} s,
    \qquad \mathrm{score} = \sigma(o)\,\max_k \sigma(c_k),\ \mathrm{class} = \arg\max_k c_k

Boxes are returned as top-left corner and size (x, y, w, h), the Gen1 label convention.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgesnn.errors import InputError

#: Box-size logits are clipped here before ``exp`` so a wild prediction cannot overflow float32.
MAX_SIZE_LOGIT = 12.0


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, without overflow for large ``|x|``."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x)))


def grid(level_shapes: Sequence[tuple[int, int]], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column, row and stride of every cell, levels concatenated in order, rows major: three (N,) arrays."""
    cols, rows, steps = [], [], []
    for (h, w), s in zip(level_shapes, strides, strict=True):
        r, c = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
        cols.append(c.ravel())
        rows.append(r.ravel())
        steps.append(np.full(h * w, s))
    return (np.concatenate(cols).astype(np.float32), np.concatenate(rows).astype(np.float32),
            np.concatenate(steps).astype(np.float32))  # fmt: skip


def decode(
    raw: np.ndarray, level_shapes: Sequence[tuple[int, int]], strides: Sequence[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decode raw predictions (N, 5 + K) into boxes (N, 4) as (x, y, w, h), scores (N,) and classes (N,)."""
    raw = np.asarray(raw, np.float32)
    cols, rows, steps = grid(level_shapes, strides)
    if raw.ndim != 2 or raw.shape[0] != len(cols) or raw.shape[1] < 6:
        raise InputError(f"expected raw predictions ({len(cols)}, 5 + classes), got {raw.shape}", path="raw")
    cx = (raw[:, 0] + cols) * steps
    cy = (raw[:, 1] + rows) * steps
    w = np.exp(np.clip(raw[:, 2], -MAX_SIZE_LOGIT, MAX_SIZE_LOGIT)) * steps
    h = np.exp(np.clip(raw[:, 3], -MAX_SIZE_LOGIT, MAX_SIZE_LOGIT)) * steps
    cls = raw[:, 5:]
    class_ids = np.argmax(cls, axis=1).astype(np.int32)
    best = np.take_along_axis(cls, class_ids[:, None].astype(np.int64), axis=1)[:, 0]
    scores = (sigmoid(raw[:, 4]) * sigmoid(best)).astype(np.float32)
    boxes = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1).astype(np.float32)
    return boxes, scores, class_ids
