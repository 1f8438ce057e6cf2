"""Inference plans of a model on IPU tiles: the program, a table and a JSON document of it, a PNG map of tile memory."""

from __future__ import annotations

import os
import tempfile
from typing import Any

from edgesnn.engine.plan import compile_plan
from edgesnn.model import Model
from firmware_bridges.ipu.compiler import CATEGORIES, CompileOptions, Program, compile_program
from firmware_bridges.ipu.config import IPUConfig
from firmware_bridges.ipu.cycles import assumed_work, step_cycles
from firmware_bridges.ipu.netspec import from_plan

KIB = 1024
#: Tiles of one chip drawn as a grid of this many columns in the PNG map.
MAP_COLUMNS = 46


def inference_program(model: Model, options: CompileOptions | None = None, config: IPUConfig | None = None) -> Program:
    """The program a session of ``model`` at its own step runs (``options.batch`` streams)."""
    opt = options or CompileOptions()
    plan = compile_plan(model.graph, model.dt_s, model.method, opt.batch)
    return compile_program(from_plan(plan), opt, config)


def program_dict(program: Program, activity: float) -> dict[str, Any]:
    """The program as JSON-ready data, with the cycle model's step at ``activity``."""
    cyc = step_cycles(program, assumed_work(program, activity))
    mem = program.memory
    pops = []
    for pop, place in zip(program.spec.populations, program.placements, strict=True):
        k = place.first_tile
        pops.append({
            "population": pop.name, "neurons": pop.size, "first_tile": k, "tiles": place.tiles,
            "ipu": k // program.config.tiles_per_ipu, "neurons_per_tile": place.neurons_per_tile,
            "capacity": place.capacity, "tile_bytes": {c: int(mem[c][k]) for c in mem},
            "received_bytes_per_step": sum(e.bytes_per_sample for e in program.exchanges
                                           if e.destination == pop.name) * program.options.batch,
        })  # fmt: skip
    return {
        "ipus": program.ipus, "tiles_used": program.tiles_used, "tile_bytes_max": program.max_tile_bytes,
        "tile_bytes_mean": round(program.mean_tile_bytes, 1), "tile_memory_bytes": program.config.tile_memory_bytes,
        "batch": program.options.batch, "exchange": program.options.exchange,
        "max_activity": program.options.max_activity, "input_capacity": program.input_capacity,
        "assumed_activity": activity, "predicted_step_s": float(cyc.seconds_per_step[0]),
        "cycles_per_step": float(cyc.per_step[0]), "breakdown": cyc.breakdown(), "populations": pops,
        "supersteps": list(cyc.names), "link_crossings": sum(e.link_crossings for e in program.exchanges),
    }  # fmt: skip


def program_table(doc: dict[str, Any]) -> str:
    """The text table of a :func:`program_dict` document."""
    head = (f"{doc['ipus']} IPU(s), {doc['tiles_used']:,} tiles used, tile memory max"
            f" {doc['tile_bytes_max'] / KIB:,.1f} KiB, mean {doc['tile_bytes_mean'] / KIB:,.1f} KiB of"
            f" {doc['tile_memory_bytes'] / KIB:,.0f} KiB; batch {doc['batch']}, {doc['exchange']} exchange;"
            f" predicted {doc['predicted_step_s'] * 1e6:,.2f} us per step at {100 * doc['assumed_activity']:g} %"
            f" activity ({doc['cycles_per_step']:,.0f} cycles)")  # fmt: skip
    cats = list(doc["populations"][0]["tile_bytes"]) if doc["populations"] else list(CATEGORIES)
    cols = ("population", "neurons", "tiles", "ipu", "per tile", "capacity", *(f"{c} B" for c in cats),
            "in B/step")  # fmt: skip
    rows = [cols]
    for p in doc["populations"]:
        b = p["tile_bytes"]
        rows.append((p["population"], f"{p['neurons']:,}", f"{p['first_tile']}-{p['first_tile'] + p['tiles'] - 1}",
                     str(p["ipu"]), str(p["neurons_per_tile"]), str(p["capacity"] or "values"),
                     *(f"{b[c]:,}" for c in cats), f"{p['received_bytes_per_step']:,}"))  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = [head, ""]
    for r in rows:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))
    return "\n".join(lines)


def write_tile_map(program: Program, path: str | os.PathLike[str]) -> None:
    """A PNG of every tile's memory (rows of MAP_COLUMNS tiles per chip, colour = share of the tile used)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cfg = program.config
    per_chip = cfg.tiles_per_ipu
    rows = -(-per_chip // MAP_COLUMNS)
    fig, axes = plt.subplots(1, program.ipus, figsize=(4.2 * program.ipus + 1.2, 4.2), squeeze=False)
    share = program.tile_bytes / cfg.tile_memory_bytes
    image = None
    for k, ax in enumerate(axes[0]):
        grid = np.full(rows * MAP_COLUMNS, np.nan)
        grid[:per_chip] = share[k * per_chip : (k + 1) * per_chip]
        grid[:per_chip][share[k * per_chip : (k + 1) * per_chip] == 0] = np.nan
        image = ax.imshow(grid.reshape(rows, MAP_COLUMNS), vmin=0, vmax=1, cmap="viridis", interpolation="nearest")
        ax.set_title(f"IPU {k}: {int((share[k * per_chip : (k + 1) * per_chip] > 0).sum()):,} tiles used", fontsize=9)
        ax.set_facecolor("0.85")  # tiles the program leaves empty
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=axes[0].tolist(), label=f"share of {cfg.tile_memory_bytes // KIB} KiB used")
    fig.suptitle(f"tile memory: max {program.max_tile_bytes / KIB:,.1f} KiB, mean {program.mean_tile_bytes / KIB:,.1f}"
                 " KiB", fontsize=10)  # fmt: skip
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
