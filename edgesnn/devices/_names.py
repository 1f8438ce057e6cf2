"""Model names over gRPC metadata, beside the edgesnn.v1 messages that have no field for them.

``ModelInfo`` on the wire carries no name, so the client sends the uploaded file's name as
request metadata ``edgesnn-model-name`` of LoadModel, and the server answers LoadModel,
GetModelInfo and ListModels with trailing metadata ``edgesnn-model-names-bin`` (JSON: model
id -> {name, producer}). A server or bridge that sends none leaves the names "", as before.
Bounded both ways, so that a long name or many models never push a call over gRPC's
metadata limit: names are cut to :data:`NAME_CHARS`, the answer stops at :data:`MAX_BYTES`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence

from edgesnn.devices.base import ModelInfo

REQUEST_KEY = "edgesnn-model-name"
RESPONSE_KEY = "edgesnn-model-names-bin"
NAME_CHARS = 64
#: Well below gRPC's default 8 KiB of metadata a client accepts (binary values travel base64).
MAX_BYTES = 3072


def clean(text: object) -> str:
    """Printable text of at most NAME_CHARS characters ("" for anything else)."""
    if not isinstance(text, str):
        return ""
    return "".join(c for c in text if c.isprintable())[:NAME_CHARS]


def stem(source_name: str) -> str:
    """The name of a model loaded from ``source_name``: the file's base name without extension."""
    if not isinstance(source_name, str) or not source_name or source_name.startswith("<"):  # "<bytes>", an fd
        return ""
    base = os.path.basename(source_name.replace("\\", "/"))
    return clean(base[: -len(".esnn")] if base.lower().endswith(".esnn") else base)


def request_metadata(source_name: str) -> tuple[tuple[str, str], ...]:
    """What a LoadModel call sends to name its upload (nothing without a file name).

    Non-ASCII characters become "?": plain metadata values are ASCII.
    """
    name = clean(os.path.basename(source_name)) if stem(source_name) else ""
    return ((REQUEST_KEY, name.encode("ascii", "replace").decode()),) if name else ()


def from_request(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The file name a LoadModel call's metadata gives ("" when it gives none)."""
    for key, value in metadata or ():
        if key == REQUEST_KEY and isinstance(value, str):
            return clean(os.path.basename(value))
    return ""


def response_metadata(infos: Sequence[ModelInfo]) -> tuple[tuple[str, bytes], ...]:
    """Trailing metadata naming ``infos``, in order, up to MAX_BYTES."""
    names: dict[str, dict[str, str]] = {}
    size = 2
    for info in infos:
        if not (info.name or info.producer_name):
            continue
        entry = {"name": clean(info.name), "producer": clean(info.producer_name)}
        size += len(json.dumps({info.model_id: entry})) + 1
        if size > MAX_BYTES:
            break  # the rest keep their ids only
        names[info.model_id] = entry
    return ((RESPONSE_KEY, json.dumps(names).encode()),) if names else ()


def from_response(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, dict[str, str]]:
    """Model id -> {name, producer} from a call's trailing metadata; {} when absent or malformed."""
    for key, value in metadata or ():
        if key != RESPONSE_KEY:
            continue
        try:
            data = json.loads(value)
        except ValueError:
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): v for k, v in data.items() if isinstance(v, Mapping)}
    return {}


def named(info: ModelInfo, names: Mapping[str, Mapping[str, object]]) -> ModelInfo:
    """``info`` with the name and producer ``names`` gives for its id."""
    entry = names.get(info.model_id)
    if not entry:
        return info
    return dataclasses.replace(info, name=clean(entry.get("name")), producer_name=clean(entry.get("producer")))
