"""Shared steps of the model builders: make a dataset when missing, stamp what a model scored, write it."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgesnn.bundle import read_bundle, write_bundle
from edgesnn.catalog import DESCRIPTION, EVALUATION, MADE_BY, TASK, evaluations, models_dir
from edgesnn.model import Model

log = logging.getLogger("edgesnn.models")


def ensure_dataset(folder: Path, generate: Callable[[Sequence[str]], int], argv: Sequence[str]) -> None:
    """Run a dataset generator's command line into ``folder`` unless its splits are already there."""
    if all((folder / f"{split}.npz").exists() for split in ("train", "val", "test")):
        return
    log.info("generating %s", folder)
    if generate(["--out", str(folder), *argv]) != 0:
        raise RuntimeError(f"the dataset generator failed for {folder}")


def stamped(model: Model, *, task: str, description: str, made_by: str, evaluation: list[dict[str, Any]]) -> Model:
    """``model`` with what it does, how it was made and what it scored in its producer record."""
    producer = {**model.producer, TASK: task, DESCRIPTION: description, MADE_BY: made_by, EVALUATION: evaluation}
    out = dataclasses.replace(model, producer=producer)
    evaluations(out.producer)  # refuse a malformed entry before it is shipped
    return out


def target(name: str, out_dir: str | os.PathLike[str] | None) -> Path:
    """Where the shipped bundle ``name`` goes: ``out_dir`` or edgesnn/data/models."""
    folder = Path(out_dir) if out_dir is not None else Path(models_dir())
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{name}.esnn"


def ship(model: Model, name: str, out_dir: str | os.PathLike[str] | None) -> Path:
    """Write ``model`` as the shipped bundle ``name`` and check it loads back."""
    path = target(name, out_dir)
    write_bundle(model, path)
    read_bundle(path)
    log.info("wrote %s (%d bytes)", path, path.stat().st_size)
    return path


def few_shot_accuracy(model: Model, x: np.ndarray, y: np.ndarray, *, k: int, episodes: int, seed: int) -> tuple:
    """Mean and 95 % half-width of 5-way k-shot query accuracy, learned by runtime sessions (tools.eval.fewshot)."""
    from tools.eval.fewshot import interval, runtime_rule_accuracy
    from tools.metatrain.episodes import fixed_episodes

    eps = fixed_episodes(y, episodes, n_way=5, k_shot=k, n_query=5, seed=[seed, 1000, k])
    got = interval(np.array([runtime_rule_accuracy(model, x, e)[0] for e in eps]))
    return got["mean"] / 100.0, got["ci95"] / 100.0
