"""The models shipped with edgesnn, by name: ``edgesnn.load("keywords")``, ``edgesnn models``.

Each is a bundle in ``edgesnn/data/models/NAME.esnn`` made by ``python -m tools.models NAME``
with the project's own trainers. Its producer record says what it does (``task``), how it was
made (``made_by``) and what it scored when it was made (``evaluation``: one entry per figure,
each with its metric, value, split, sample count and dataset), so ``edgesnn info`` can say it.
"""

from __future__ import annotations

import dataclasses
import errno
import os
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from edgesnn.errors import BundleValidationError

__all__ = ["Evaluation", "ShippedModel", "evaluations", "models", "names", "resolve"]

#: Producer keys a shipped model carries.
TASK, DESCRIPTION, MADE_BY, EVALUATION = "task", "description", "made_by", "evaluation"


def models_dir() -> str:
    """The folder holding the shipped bundles."""
    return str(resources.files("edgesnn") / "data" / "models")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One measured figure of a model: ``value`` of ``metric`` on ``samples`` of a dataset's ``split``."""

    metric: str
    value: float
    split: str
    samples: int
    dataset: str
    unit: str = ""
    note: str = ""

    def __str__(self) -> str:
        shown = f"{100 * self.value:.1f} %" if self.unit == "%" else f"{self.value:.3f}"
        extra = f"; {self.note}" if self.note else ""
        return f"{self.metric} {shown} ({self.dataset} {self.split}, {self.samples} samples{extra})"


@dataclasses.dataclass(frozen=True)
class ShippedModel:
    """A shipped bundle: its name, file, task, how it was made and what it scored."""

    name: str
    path: str
    size_bytes: int
    task: str
    description: str
    made_by: str
    evaluation: tuple[Evaluation, ...]


def names() -> tuple[str, ...]:
    """Names of the shipped models, sorted."""
    folder = models_dir()
    if not os.path.isdir(folder):
        return ()
    return tuple(sorted(f[: -len(".esnn")] for f in os.listdir(folder) if f.endswith(".esnn")))


def _looks_like_name(text: str) -> bool:
    return bool(text) and os.sep not in text and "/" not in text and "." not in text


def resolve(source: Any) -> Any:
    """``source`` itself if it is a file, a file object or a path; the shipped bundle's path if it names one.

    A bare word that is neither a file nor a shipped model's name raises FileNotFoundError
    listing the shipped names.
    """
    if not isinstance(source, (str, os.PathLike)):
        return source
    text = os.fspath(source)
    if os.path.exists(text) or not _looks_like_name(text):
        return source
    if text in names():
        return os.path.join(models_dir(), f"{text}.esnn")
    shipped = ", ".join(names()) or "none"
    raise FileNotFoundError(errno.ENOENT, f"no such file, and no shipped model of that name (shipped: {shipped})", text)


def evaluations(producer: Mapping[str, Any]) -> tuple[Evaluation, ...]:
    """The ``evaluation`` entries of a producer record (empty when it has none)."""
    entries = producer.get(EVALUATION, ())
    if not isinstance(entries, Sequence) or isinstance(entries, str):
        raise BundleValidationError("expected a list of measured figures", path=f"producer/{EVALUATION}")
    fields = {f.name for f in dataclasses.fields(Evaluation)}
    out = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or not {"metric", "value", "split", "samples", "dataset"} <= set(entry):
            raise BundleValidationError(
                "expected {metric, value, split, samples, dataset}", path=f"producer/{EVALUATION}/{i}"
            )
        out.append(Evaluation(**{k: v for k, v in entry.items() if k in fields}))
    return tuple(out)


def describe(name: str) -> ShippedModel:
    """What the shipped model ``name`` is, read from its bundle's manifest."""
    from edgesnn.bundle import read_bundle

    if name not in names():
        raise FileNotFoundError(errno.ENOENT, f"no shipped model of that name (shipped: {', '.join(names())})", name)
    path = os.path.join(models_dir(), f"{name}.esnn")
    model = read_bundle(path)
    p = model.producer
    return ShippedModel(
        name=name,
        path=path,
        size_bytes=os.path.getsize(path),
        task=str(p.get(TASK, "")),
        description=str(p.get(DESCRIPTION, "")),
        made_by=str(p.get(MADE_BY, "")),
        evaluation=evaluations(p),
    )


def models() -> list[ShippedModel]:
    """Every shipped model, described."""
    return [describe(n) for n in names()]
