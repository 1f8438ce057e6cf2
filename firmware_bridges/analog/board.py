"""The board's side of the protocol: gain-cell arrays tile by tile, and the commands that drive them.

:class:`Board` is what the emulator process runs behind its serial port, written
from the device model (:mod:`edgesnn.graph.attention`) independently of the
runtime's vectorised kernel: each layer holds, per stream and head, arrays of
``array_width`` cells; a cell keeps the K and V voltages written to it and the
token index it was written at, so leakage follows from the cell's age when it is
read. Each array's analog sum is clipped and read out on its own; the arrays'
read-outs are added digitally.

Commands (payload ``cmd``; every reply has ``seq``, ``ok``, ``boot``, and ``error``,
``code`` when not ok): ``caps``; ``load`` (layer, config: the layer's constants and
calibration); ``unload`` (layer); ``write`` (layer, k, v: float32 bytes (streams,
heads, D)) -> slot; ``query`` (layer, q) -> y (float64 bytes); ``read`` (layer) ->
keys, values (float64 bytes (streams, heads, window, D)), count; ``restore`` (layer,
keys, values, count); ``reset`` (layer, or all layers without one).
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import numpy as np

VERSION = "1"
#: Cells the emulated board has, over all loaded layers (streams x heads x window x D cells per layer).
MAX_CELLS = 1 << 24
_CONFIG_NUMBERS = ("q_max", "kv_max_v", "out_max", "score_saturation", "out_saturation", "decay_per_step",
                   "offset_v")  # fmt: skip
_CONFIG_INTS = ("streams", "heads", "head_dim", "window", "array_width", "q_levels", "kv_levels", "out_levels")
COMMANDS = ("caps", "load", "unload", "reset", "write", "query", "read", "restore")
SCALERS = tuple(f"{k}_{p}" for k in ("q", "k", "v", "out") for p in ("scale", "offset"))


class BoardError(Exception):
    """A command the board refuses; ``code`` is "bad_request", "not_loaded" or "capacity"."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _levels(x: np.ndarray, levels: int, span: float) -> np.ndarray:
    step = span / (levels - 1)
    return np.rint(x / step) * step


def _horner(poly: list[float], u: np.ndarray) -> np.ndarray:
    acc = np.full(u.shape, poly[-1])
    for c in poly[-2::-1]:
        acc = acc * u + c
    return acc


class Tile:
    """One array of gain cells for one stream and head: K and V voltages, and when each cell was written."""

    def __init__(self, width: int, head_dim: int) -> None:
        self.keys = np.zeros((width, head_dim))
        self.values = np.zeros((width, head_dim))
        self.written = np.full(width, -1, np.int64)  # token index, -1 for a cell never written

    def read_out(self, cfg: dict[str, Any], q_hat: np.ndarray, now: int) -> np.ndarray:
        """This array's clipped, quantised contribution (D,) to the query of token ``now``."""
        held = self.written >= 0
        delta = np.exp(-cfg["decay_per_step"] * np.where(held, now - self.written, 0))[:, None]
        poly = cfg["poly"]
        scores = _horner(poly, delta * (self.keys - cfg["offset_v"])) @ q_hat  # (width,)
        pulses = np.clip(scores / cfg["score_saturation"], 0.0, 1.0) * held
        charge = pulses @ _horner(poly, delta * (self.values - cfg["offset_v"]))  # (D,)
        clipped = np.clip(charge / cfg["out_saturation"], -cfg["out_max"], cfg["out_max"])
        return _levels(clipped, cfg["out_levels"], 2 * cfg["out_max"])


class Layer:
    """A loaded attention layer: tiles[stream][head][array], the token count, its constants."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg
        w, width = cfg["window"], cfg["array_width"]
        self.widths = [min(width, w - start) for start in range(0, w, width)]
        self.tiles = [[[Tile(n, cfg["head_dim"]) for n in self.widths] for _ in range(cfg["heads"])]
                      for _ in range(cfg["streams"])]  # fmt: skip
        self.count = 0

    def _cell(self, slot: int) -> tuple[int, int]:
        return divmod(slot, self.cfg["array_width"])

    def _voltages(self, kind: str, x: np.ndarray) -> np.ndarray:
        c = self.cfg
        a, b = c["scalers"][f"{kind}_scale"][:, None], c["scalers"][f"{kind}_offset"][:, None]
        if kind == "q":
            return _levels(np.clip(x * a + b, 0.0, c["q_max"]), c["q_levels"], c["q_max"])
        return _levels(np.clip(x * a + b, 0.0, c["kv_max_v"]), c["kv_levels"], c["kv_max_v"])

    def write(self, k: np.ndarray, v: np.ndarray) -> int:
        """Write one token's K and V (streams, heads, D) into the next cell of every stream and head."""
        slot = self.count % self.cfg["window"]
        g, cell = self._cell(slot)
        for b, (kb, vb) in enumerate(zip(k, v, strict=True)):
            kv, vv = self._voltages("k", kb), self._voltages("v", vb)
            for h in range(self.cfg["heads"]):
                tile = self.tiles[b][h][g]
                tile.keys[cell], tile.values[cell], tile.written[cell] = kv[h], vv[h], self.count
        self.count += 1
        return slot

    def query(self, q: np.ndarray) -> np.ndarray:
        """Outputs (streams, heads, D) for queries q of the newest token: arrays read out, summed, scaled."""
        c, now = self.cfg, self.count - 1
        out = np.zeros(q.shape)
        for b in range(q.shape[0]):
            q_hat = self._voltages("q", q[b])
            for h in range(c["heads"]):
                total = sum(tile.read_out(c, q_hat[h], now) for tile in self.tiles[b][h])
                out[b, h] = total * c["scalers"]["out_scale"][h] + c["scalers"]["out_offset"][h]
        return out

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Every cell's K and V voltages as (streams, heads, window, D) float64."""
        c = self.cfg
        shape = (c["streams"], c["heads"], c["window"], c["head_dim"])
        keys, values = np.zeros(shape), np.zeros(shape)
        for b in range(c["streams"]):
            for h in range(c["heads"]):
                keys[b, h] = np.concatenate([t.keys for t in self.tiles[b][h]])
                values[b, h] = np.concatenate([t.values for t in self.tiles[b][h]])
        return keys, values

    def restore(self, keys: np.ndarray, values: np.ndarray, count: int) -> None:
        """Set every cell's voltages, and its age as if ``count`` tokens had been written in order."""
        w = self.cfg["window"]
        slots = np.arange(w)
        newest = count - 1
        written = np.where(slots < min(count, w), newest - (newest - slots) % w, -1)
        for b in range(self.cfg["streams"]):
            for h in range(self.cfg["heads"]):
                for g, tile in enumerate(self.tiles[b][h]):
                    part = slice(g * self.cfg["array_width"], g * self.cfg["array_width"] + len(tile.written))
                    tile.keys[:], tile.values[:] = keys[b, h, part], values[b, h, part]
                    tile.written[:] = written[part]
        self.count = count

    @property
    def cells(self) -> int:
        """Cells this layer occupies."""
        c = self.cfg
        return c["streams"] * c["heads"] * c["window"] * c["head_dim"]


def _config(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BoardError("bad_request", "load: expected a config map")
    cfg: dict[str, Any] = {}
    for key in _CONFIG_INTS:
        v = raw.get(key)
        if not isinstance(v, int) or isinstance(v, bool) or v < (2 if key.endswith("levels") else 1):
            raise BoardError("bad_request", f"load: config {key} must be a positive integer, got {v!r}")
        cfg[key] = v
    for key in _CONFIG_NUMBERS:
        v = raw.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise BoardError("bad_request", f"load: config {key} must be a finite number, got {v!r}")
        cfg[key] = float(v)
    poly = raw.get("poly")
    if not isinstance(poly, list) or not poly or not all(isinstance(c, (int, float)) for c in poly):
        raise BoardError("bad_request", "load: config poly must be a list of numbers")
    cfg["poly"] = [float(c) for c in poly]
    scalers = raw.get("scalers")
    if not isinstance(scalers, dict) or set(scalers) != set(SCALERS):
        raise BoardError("bad_request", f"load: config scalers must have {', '.join(SCALERS)}")
    cfg["scalers"] = {}
    for key in SCALERS:
        arr = np.asarray(scalers[key], np.float64)
        if arr.shape != (cfg["heads"],) or not np.all(np.isfinite(arr)):
            raise BoardError("bad_request", f"load: scaler {key} must be {cfg['heads']} finite numbers")
        cfg["scalers"][key] = arr
    return cfg


def _array(payload: dict[str, Any], key: str, shape: tuple[int, ...], dtype: str) -> np.ndarray:
    data = payload.get(key)
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    if not isinstance(data, bytes) or len(data) != size:
        got = len(data) if isinstance(data, bytes) else type(data).__name__
        raise BoardError("bad_request", f"{payload.get('cmd')}: {key} must be {size} bytes of {dtype}, got {got}")
    return np.frombuffer(data, dtype).reshape(shape)


class Board:
    """An emulated gain-cell attention board: loaded layers, a boot id, the last reply (answered again to a repeat)."""

    def __init__(self, *, max_cells: int = MAX_CELLS, name: str = "gaincell-emulator") -> None:
        self.max_cells = max_cells
        self.name = name
        self.boot = secrets.randbits(62)
        self.layers: dict[int, Layer] = {}
        self._last: tuple[int, dict[str, Any]] | None = None

    def restart(self) -> None:
        """A power cycle: every cell and layer is lost, and the boot id changes."""
        self.__init__(max_cells=self.max_cells, name=self.name)  # type: ignore[misc]

    def handle(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The reply to one request payload (a repeated seq gets the same reply, without running it again)."""
        seq = payload["seq"]
        if self._last is not None and self._last[0] == seq:
            return self._last[1]
        try:
            reply = {"ok": True, **self._run(payload)}
        except BoardError as exc:
            reply = {"ok": False, "code": exc.code, "error": str(exc)}
        reply.update(seq=seq, boot=self.boot)
        self._last = (seq, reply)
        return reply

    def nak(self, why: str) -> dict[str, Any]:
        """The reply to a frame that failed its checks (its seq cannot be trusted)."""
        return {"seq": -1, "ok": False, "nak": why, "boot": self.boot}

    def _layer(self, payload: dict[str, Any]) -> Layer:
        layer = self.layers.get(payload.get("layer"))  # type: ignore[arg-type]
        if layer is None:
            raise BoardError("not_loaded", f"{payload.get('cmd')}: no layer {payload.get('layer')!r} is loaded")
        return layer

    def _run(self, p: dict[str, Any]) -> dict[str, Any]:
        cmd = p.get("cmd")
        if cmd not in COMMANDS:
            raise BoardError("bad_request", f"unknown command {cmd!r}; known: {', '.join(COMMANDS)}")
        if cmd == "caps":
            used = sum(layer.cells for layer in self.layers.values())
            return {"name": self.name, "version": VERSION, "simulated": True, "max_cells": self.max_cells,
                    "free_cells": self.max_cells - used, "layers": len(self.layers)}  # fmt: skip
        if cmd == "load":
            layer_id = p.get("layer")
            if not isinstance(layer_id, int) or isinstance(layer_id, bool):
                raise BoardError("bad_request", f"load: layer must be an integer, got {layer_id!r}")
            cfg = _config(p.get("config"))
            cells = cfg["streams"] * cfg["heads"] * cfg["window"] * cfg["head_dim"]
            used = sum(x.cells for k, x in self.layers.items() if k != layer_id)
            if used + cells > self.max_cells:  # refused before anything is allocated
                raise BoardError("capacity", f"load: {cells} cells asked, {self.max_cells - used} free")
            self.layers[layer_id] = Layer(cfg)
            return {}
        if cmd == "unload":
            self.layers.pop(p.get("layer"), None)  # type: ignore[arg-type]
            return {}
        if cmd == "reset":
            targets = self.layers.values() if p.get("layer") is None else [self._layer(p)]
            for layer in targets:
                layer.restore(*(np.zeros_like(a) for a in layer.read()), 0)
            return {}
        layer = self._layer(p)
        c = layer.cfg
        vec = (c["streams"], c["heads"], c["head_dim"])
        if cmd == "write":
            return {"slot": layer.write(_array(p, "k", vec, "<f4"), _array(p, "v", vec, "<f4"))}
        if cmd == "query":
            if layer.count == 0:
                raise BoardError("bad_request", "query: no token has been written")
            return {"y": layer.query(_array(p, "q", vec, "<f4")).astype("<f8").tobytes()}
        ring = (c["streams"], c["heads"], c["window"], c["head_dim"])
        if cmd == "read":
            keys, values = layer.read()
            return {"keys": keys.astype("<f8").tobytes(), "values": values.astype("<f8").tobytes(),
                    "count": layer.count}  # fmt: skip
        count = p.get("count")  # restore
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise BoardError("bad_request", f"restore: count must be an integer >= 0, got {count!r}")
        layer.restore(_array(p, "keys", ring, "<f8"), _array(p, "values", ring, "<f8"), count)
        return {}


__all__ = ["COMMANDS", "Board", "BoardError", "Layer", "SCALERS", "Tile", "VERSION"]
