"""Sessions' attention layers on the board: each layer loaded once, stepped by write + query, rebuilt after a restart.

The session keeps its K/V window on the host as well (the engine's state arrays):
each token's cell voltages are written there once the board has acknowledged them,
so the host mirror is always what the board holds. That mirror is what makes a
restarted board recoverable (:meth:`BoardClient.recover` loads every layer again and
restores its cells) and what ``Session.state()`` saves.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgesnn.engine._gaincell import DeviceModel, cell_voltages, write
from edgesnn.errors import DeviceError
from firmware_bridges.analog.link import BoardLink, BoardRestarted

log = logging.getLogger("edgesnn.analog")


def layer_config(model: DeviceModel, streams: int) -> dict[str, Any]:
    """The ``load`` config of one attention layer of ``streams`` streams."""
    return {
        "streams": streams, "heads": model.heads, "head_dim": model.head_dim, "window": model.window,
        "array_width": model.array_width, "q_levels": model.q_levels, "kv_levels": model.kv_levels,
        "out_levels": model.out_levels, "q_max": model.q_max, "kv_max_v": model.kv_max_v, "out_max": model.out_max,
        "score_saturation": model.score_saturation, "out_saturation": model.out_saturation,
        "decay_per_step": model.decay_per_step, "offset_v": model.offset_v, "poly": list(model.poly),
        "scalers": {k: v.tolist() for k, v in model.scalers.items()},
    }  # fmt: skip


class BoardCells:
    """One attention layer of one session on the board (the engine's ``Cells``)."""

    def __init__(self, client: BoardClient, layer: int, op: Any, model: DeviceModel) -> None:
        self.client, self.layer, self.op, self.model = client, layer, op, model
        self.config = layer_config(model, op.keys.shape[0])

    def step(self, op: Any, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Write the token's K, V on the board, mirror them, query; the outputs (batch, heads, D)."""
        f32 = "<f4"
        with self.client.link.lock:
            reply = self.client.call("write", layer=self.layer, k=k.astype(f32).tobytes(), v=v.astype(f32).tobytes())
            slot = write(op, cell_voltages(self.model, "k", k), cell_voltages(self.model, "v", v))
            if reply.get("slot") != slot:
                raise DeviceError(f"the board wrote layer {self.layer}'s token to cell {reply.get('slot')!r}, the"
                                  f" host expected {slot}; the session will resynchronise", path="board")  # fmt: skip
            y = self.client.call("query", layer=self.layer, q=q.astype(f32).tobytes())["y"]
        if not isinstance(y, bytes) or len(y) != q.size * 8:
            raise DeviceError(f"the board's query reply holds {type(y).__name__} of the wrong size", path="board")
        return np.frombuffer(y, "<f8").reshape(q.shape)

    def restore_payload(self) -> dict[str, Any]:
        """The ``restore`` fields that put the host mirror on the board."""
        return {"layer": self.layer, "keys": self.op.keys.astype("<f8").tobytes(),
                "values": self.op.values.astype("<f8").tobytes(), "count": int(self.op.count[0])}  # fmt: skip


class BoardClient:
    """The attention layers of every open session on one board, and their recovery after a restart."""

    def __init__(self, link: BoardLink) -> None:
        self.link = link
        self.layers: dict[int, BoardCells] = {}
        self._next = 0
        self.restarts = 0

    def call(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """``link.request``; after a restart, every layer is rebuilt from its mirror and the command sent again."""
        with self.link.lock:
            try:
                return self.link.request(cmd, **fields)
            except BoardRestarted as exc:
                log.warning("analog board: %s; rebuilding %d layers from the host's mirror", exc, len(self.layers))
                self.recover()
                return self.link.request(cmd, **fields)

    def recover(self) -> None:
        """Load every layer again and restore its cells from the host mirror."""
        with self.link.lock:
            self.restarts += 1
            for cells in self.layers.values():
                self.link.request("load", layer=cells.layer, config=cells.config)
                self.link.request("restore", **cells.restore_payload())

    def add(self, op: Any, model: DeviceModel) -> BoardCells:
        """Give an attention op a layer on the board, loaded with its constants and its current window."""
        with self.link.lock:
            cells = BoardCells(self, self._next, op, model)
            self._next += 1
            self.call("load", layer=cells.layer, config=cells.config)
            self.layers[cells.layer] = cells
            self.sync(cells)
            return cells

    def sync(self, cells: BoardCells) -> None:
        """Put the host mirror of one layer on the board."""
        self.call("restore", **cells.restore_payload())

    def remove(self, cells: BoardCells) -> None:
        """Free a layer's cells on the board (best effort: a board that is gone holds nothing)."""
        with self.link.lock:
            self.layers.pop(cells.layer, None)
            try:
                self.link.request("unload", layer=cells.layer)
            except DeviceError as exc:
                log.info("analog board: unloading layer %d: %s", cells.layer, exc)


__all__ = ["BoardCells", "BoardClient", "layer_config"]
