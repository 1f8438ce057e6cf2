"""edgesnn (channels, height, width) tensors <-> Lava (x, y, channels) tensors."""

from __future__ import annotations

import numpy as np


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Lava's shape of an edgesnn tensor shape: (C, H, W) -> (W, H, C); 1-d unchanged."""
    if len(shape) == 3:
        return (shape[2], shape[1], shape[0])
    if len(shape) == 1:
        return tuple(shape)
    raise ValueError(f"Lava processes here take 1-d or (C, H, W) tensors, got shape {shape}")


def to_lava(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """One sample in edgesnn layout (any leading-free shape of ``shape``) -> Lava layout."""
    x = np.asarray(x).reshape(shape)
    return x.transpose(2, 1, 0) if len(shape) == 3 else x


def from_lava(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """One sample in Lava layout -> edgesnn layout ``shape``."""
    x = np.asarray(x)
    return (x.transpose(2, 1, 0) if len(shape) == 3 else x).reshape(shape)


def flat_permutation(shape: tuple[int, ...]) -> np.ndarray:
    """Index of each Lava-flattened element in the edgesnn-flattened tensor (identity for 1-d)."""
    n = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(n)
    return np.arange(n).reshape(shape).transpose(2, 1, 0).reshape(-1)


def conv_weight(weight: np.ndarray) -> np.ndarray:
    """PyTorch-style (C_out, C_in/g, KH, KW) correlation kernel -> Lava Conv's (C_out, KW, KH, C_in/g).

    Lava convolves (scipy ``convolve2d`` flips the kernel), so the kernel is flipped here
    to make Lava compute PyTorch's cross-correlation.
    """
    return np.ascontiguousarray(np.asarray(weight)[:, :, ::-1, ::-1].transpose(0, 3, 2, 1))
