"""Export to edgesnn bundles: the float model, or a gain-cell one with its calibrated scalers."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgesnn.bundle import write_bundle
from edgesnn.graph.decoder import decoder_graph
from edgesnn.model import Model
from tools.train_lm.model import Config, Params

#: Nominal time of one token, for the bundle's dt (the runtime steps one token per step).
TOKEN_S = 1e-3


def to_model(params: Params, cfg: Config, *, window: int | None = None, mac: str = "polynomial",
             notes: dict[str, Any] | None = None) -> Model:  # fmt: skip
    """The edgesnn Model of ``params``; ``mac`` and the scalers matter under ``numerics="gaincell"`` only."""
    arrays = {k: np.asarray(v) for k, v in params.items() if k != "blocks"}
    blocks = [{k: np.asarray(v) for k, v in b.items() if k != "scalers"} for b in params["blocks"]]
    attention = [{**cfg.attention_fields(mac), **{k: np.asarray(v) for k, v in b["scalers"].items()}}
                 for b in params["blocks"]]  # fmt: skip
    graph = decoder_graph({**arrays, "blocks": blocks}, num_heads=cfg.heads, window=window or cfg.window,
                          activation=cfg.activation, attention=attention,
                          metadata={"name": "stdlib-char-lm", **(notes or {})})  # fmt: skip
    return Model(graph, dt_s=TOKEN_S, producer={"framework": "tools.train_lm", "notes": notes or {}})


def save(model: Model, path: str | os.PathLike[str]) -> None:
    """Write the bundle."""
    write_bundle(model, path)


def save_params(params: Params, path: str | os.PathLike[str]) -> None:
    """The params as one .npz (blocks flattened as ``blocks.<i>.<name>``)."""
    flat = {k: np.asarray(v) for k, v in params.items() if k != "blocks"}
    for i, b in enumerate(params["blocks"]):
        for k, v in b.items():
            if k == "scalers":
                flat.update({f"blocks.{i}.scalers.{n}": np.asarray(a) for n, a in v.items()})
            else:
                flat[f"blocks.{i}.{k}"] = np.asarray(v)
    np.savez(path, **flat)


def load_params(path: str | os.PathLike[str]) -> Params:
    """Params written by :func:`save_params`."""
    data = np.load(path)
    params: Params = {k: data[k] for k in data.files if not k.startswith("blocks.")}
    blocks: dict[int, dict[str, Any]] = {}
    for k in data.files:
        if k.startswith("blocks."):
            _, i, *rest = k.split(".")
            blk = blocks.setdefault(int(i), {"scalers": {}})
            if rest[0] == "scalers":
                blk["scalers"][rest[1]] = data[k]
            else:
                blk[rest[0]] = data[k]
    params["blocks"] = [blocks[i] for i in sorted(blocks)]
    return params


def params_of(model: Model) -> Params:
    """The params of a model :func:`to_model` made (the attention's scalers included)."""
    nodes = model.graph.nodes
    layers = sorted({int(n.split(".")[0][1:]) for n in nodes if n.startswith("b") and "." in n})
    blocks = []
    for i in layers:
        p = f"b{i}."
        attn = nodes[p + "attn"]
        blocks.append({
            "ln_1_w": nodes[p + "ln_1"].weight, "ln_1_b": nodes[p + "ln_1"].bias, "w_qkv": attn.w_qkv,
            "b_qkv": attn.b_qkv, "w_out": attn.w_out, "b_out": attn.b_out, "ln_2_w": nodes[p + "ln_2"].weight,
            "ln_2_b": nodes[p + "ln_2"].bias, "w_fc": nodes[p + "fc"].weight, "b_fc": nodes[p + "fc"].bias,
            "w_proj": nodes[p + "proj"].weight, "b_proj": nodes[p + "proj"].bias,
            "scalers": {f"{k}_{s}": getattr(attn, f"{k}_{s}") for k in ("q", "k", "v", "out")
                        for s in ("scale", "offset")},
        })  # fmt: skip
    return {"wte": nodes["wte"].weight, "wpe": nodes["wpe"].weight, "ln_f_w": nodes["ln_f"].weight,
            "ln_f_b": nodes["ln_f"].bias, "blocks": blocks}  # fmt: skip
