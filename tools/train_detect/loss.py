"""Targets and losses of the YOLOX-style head.

Label assignment is simplified from YOLOX's SimOTA to centre sampling: a box goes to level 0
(stride 8) when its longer side is under ``LEVEL_SPLIT_PX``, else to level 1; the cell holding
its centre and those of the 3x3 around it whose centres fall inside the box are positives
(a smaller box wins a contested cell). Regression targets invert
:func:`edgesnn.detect.head.decode`: ``t_x = c_x / s - j``, ``t_w = log(w / s)``.
Losses: binary cross-entropy on objectness (all cells) and classes (positives), L1 on the
four box terms (positives), each summed and divided by the number of positives.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from edgesnn.detect.head import grid

LEVEL_SPLIT_PX = 56.0


def build_targets(
    boxes: np.ndarray, level_shapes, strides, n_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Targets of boxes (n, 5) as (x, y, w, h, class): objectness, classes (N, K), box terms (N, 4), positives."""
    cols, rows, steps = grid(level_shapes, strides)
    n = len(cols)
    obj = np.zeros(n, np.float32)
    cls = np.zeros((n, n_classes), np.float32)
    reg = np.zeros((n, 4), np.float32)
    offsets = np.concatenate(([0], np.cumsum([h * w for h, w in level_shapes])))
    for x, y, w, h, c in sorted(boxes.tolist(), key=lambda b: -b[2] * b[3]):
        lvl = 0 if max(w, h) < LEVEL_SPLIT_PX else 1
        s = strides[lvl]
        gh, gw = level_shapes[lvl]
        cx, cy = x + w / 2, y + h / 2
        ci, cj = min(int(cy // s), gh - 1), min(int(cx // s), gw - 1)
        for i in range(max(0, ci - 1), min(gh, ci + 2)):
            for j in range(max(0, cj - 1), min(gw, cj + 2)):
                inside = x <= (j + 0.5) * s <= x + w and y <= (i + 0.5) * s <= y + h
                if not ((i == ci and j == cj) or inside):
                    continue
                k = offsets[lvl] + i * gw + j
                obj[k] = 1.0
                cls[k] = 0.0
                cls[k, int(c)] = 1.0
                reg[k] = (cx / s - j, cy / s - i, math.log(max(w, 1.0) / s), math.log(max(h, 1.0) / s))
    return obj, cls, reg, obj.copy()


def _bce(logits: jax.Array, targets: jax.Array) -> jax.Array:
    return jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))


def detection_loss(raw: jax.Array, obj: jax.Array, cls: jax.Array, reg: jax.Array, pos: jax.Array) -> jax.Array:
    """Mean over the batch of (objectness + class + box L1) losses, each normalised by the positives."""
    npos = jnp.maximum(pos.sum(axis=1), 1.0)
    l_obj = _bce(raw[..., 4], obj).sum(axis=1)
    l_cls = (_bce(raw[..., 5:], cls).sum(axis=-1) * pos).sum(axis=1)
    l_box = (jnp.abs(raw[..., :4] - reg).sum(axis=-1) * pos).sum(axis=1)
    return jnp.mean((l_obj + l_cls + l_box) / npos)
