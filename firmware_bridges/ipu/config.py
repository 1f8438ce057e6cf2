"""Every constant of the IPU model in one frozen config, each with where its value comes from.

The figures are for a Mk2 Colossus GC200. Sources are tagged as in the research notes
(``../shared/research/round2.md`` section 1, ``papers_a.md`` section 3): READ (the vendor's own
page), CODE (public code: Graphcore's poplibs, the paper's ``jrfinkbeiner/graphcore_snn``), 2nd (a
third-party summary), INF (inferred, not verified) and ASSUMED (no public figure was found; the
value is this project's choice and only hardware can check it). :data:`SOURCES` holds the tag and
source of every field; ``tests/test_ipu_compiler.py`` checks that none is missing.
"""

from __future__ import annotations

import dataclasses

from edgesnn.errors import OptionError

KIB = 1024


@dataclasses.dataclass(frozen=True)
class IPUConfig:
    """The chip, its exchange, its memory and the instruction costs of the SNN vertices."""

    # -- chip ---------------------------------------------------------------------------------
    tiles_per_ipu: int = 1472
    reserved_tiles_first_ipu: int = 1
    workers_per_tile: int = 6
    tile_memory_bytes: int = 624 * KIB
    clock_hz: float = 1.33e9
    max_ipus: int = 16
    # -- placement ----------------------------------------------------------------------------
    min_neurons_per_tile: int = 2
    max_neurons_per_tile: int = 32
    code_bytes_per_tile: int = 24 * KIB
    vertex_state_bytes: int = 64
    exchange_code_bytes_per_source: int = 16
    # -- data types ---------------------------------------------------------------------------
    value_bytes: int = 4
    spike_id_bytes: int = 4
    count_bytes: int = 4
    # -- compute: instructions of one worker thread (a tile issues one per cycle, round robin) --
    accumulate_instructions_per_synapse: float = 1.0
    instructions_per_received_spike: float = 4.0
    dense_instructions_per_mac: float = 0.5
    neuron_instructions_per_op: float = 1.0
    select_instructions_per_neuron: float = 3.0
    vertex_launch_cycles: int = 11
    # -- training -----------------------------------------------------------------------------
    optimizer_words_per_weight: int = 2
    optimizer_instructions_per_weight: float = 8.0
    backward_forward_ratio: float = 2.0
    # -- exchange and sync --------------------------------------------------------------------
    exchange_bytes_per_cycle: int = 4
    exchange_setup_cycles: int = 30
    sync_cycles: int = 600
    ipu_link_bytes_per_s: float = 320e9
    ipu_link_latency_s: float = 1.0e-6
    # -- off chip -----------------------------------------------------------------------------
    host_link_bytes_per_s: float = 64e9
    streaming_memory_bytes_per_s: float = 20e9
    streaming_memory_bytes_per_ipu: float = 112e9

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise OptionError(f"expected a number >= 0, got {value!r}", path=f"ipu/{f.name}")
        for name in ("tiles_per_ipu", "workers_per_tile", "tile_memory_bytes", "clock_hz", "max_ipus",
                     "max_neurons_per_tile", "exchange_bytes_per_cycle"):  # fmt: skip
            if not getattr(self, name) > 0:
                raise OptionError(f"expected a number > 0, got {getattr(self, name)!r}", path=f"ipu/{name}")
        if self.reserved_tiles_first_ipu >= self.tiles_per_ipu:
            raise OptionError("the first IPU would have no tile left", path="ipu/reserved_tiles_first_ipu")

    def usable_tiles(self, ipu: int) -> int:
        """Tiles the program may use on IPU number ``ipu`` (the first keeps one for the host's streams)."""
        return self.tiles_per_ipu - (self.reserved_tiles_first_ipu if ipu == 0 else 0)

    @property
    def data_bytes_per_tile(self) -> int:
        """Tile memory left for weights, states and buffers once code and its fixed vertex state are placed."""
        return self.tile_memory_bytes - self.code_bytes_per_tile

    def seconds(self, cycles: float) -> float:
        """Cycles at the tile clock, in seconds."""
        return cycles / self.clock_hz


R2 = "../shared/research/round2.md section 1.1"
GSNN = "jrfinkbeiner/graphcore_snn@0d81a25"

#: field -> (tag, where the value comes from).
SOURCES: dict[str, tuple[str, str]] = {
    "tiles_per_ipu": (
        "READ",
        "Graphcore, Hot Chips 2021 post on the Colossus Mk2: 1,472 processing cores (" + R2 + ")",
    ),
    "reserved_tiles_first_ipu": (
        "CODE",
        GSNN + " benchmarking/keras_train_util_ipu.py: TILE_OFFSET = [1] + [0]*(n-1)"
        " (1,471 tiles on the first IPU, 1,472 on the others)",
    ),
    "workers_per_tile": ("2nd", "6 hardware worker threads per tile, 8,832 per chip (" + R2 + ")"),
    "tile_memory_bytes": (
        "INF",
        "624 KiB per tile: 1,472 x 624 KiB = 897 MiB, the '900 MiB' of the Hot Chips post"
        " [READ]; the per-tile figure is recalled, not verified (" + R2 + ")",
    ),
    "clock_hz": (
        "INF",
        "about 1.33 GHz: 4 B/cycle x 1,472 tiles x 1.33 GHz = 7.8 TB/s, the quoted 8 TB/s exchange;"
        " no primary source found (" + R2 + ")",
    ),
    "max_ipus": ("CODE", GSNN + " benchmarking/runfile_multi_ipu.sh: runs on 1, 2, 4, 8 and 16 IPUs"),
    "min_neurons_per_tile": (
        "CODE",
        GSNN + " keras_train_util_ipu.py: min_neurons_per_tile=2 with transposed weights;"
        " a population whose tile holds only one neuron gets one",
    ),
    "max_neurons_per_tile": ("CODE", GSNN + " benchmarking_script.py: 2-32 neurons per tile (papers_a.md section 3)"),
    "code_bytes_per_tile": (
        "ASSUMED",
        "code of the LIF, selection and gather vertices plus Poplar's runtime on a"
        " tile; no public figure (PopVision reports it per program)",
    ),
    "vertex_state_bytes": ("ASSUMED", "one vertex's fields (pointers, sizes) per compute set on a tile"),
    "exchange_code_bytes_per_source": ("ASSUMED", "exchange instructions a tile holds per source it receives from"),
    "value_bytes": ("CODE", GSNN + ": float32 weights, states and gradients (FPType float)"),
    "spike_id_bytes": ("CODE", GSNN + " custom_lif_layer_baseline/custom_codelet.cpp: spike ids as unsigned"),
    "count_bytes": ("CODE", GSNN + ": one unsigned spike count per (step, sample) buffer"),
    "accumulate_instructions_per_synapse": (
        "ASSUMED",
        "one float32 add per gathered weight, loads paired (the"
        " row gather-accumulate of dyn_dense_binary_sparse_matmul)",
    ),
    "instructions_per_received_spike": ("ASSUMED", "read the id, form the row address, loop overhead"),
    "dense_instructions_per_mac": ("ASSUMED", "f32v2 multiply-accumulate: two MACs per instruction"),
    "neuron_instructions_per_op": ("ASSUMED", "one instruction per float32 operation of the neuron update"),
    "select_instructions_per_neuron": ("ASSUMED", "two threshold compares and a conditional append per neuron"),
    "vertex_launch_cycles": ("CODE", "supervisor launch 11 cycles, an IPU21 cost model (" + R2 + ", approximate)"),
    "optimizer_words_per_weight": (
        "CODE",
        GSNN + " benchmarking_script.py: Adam for the multi-layer runs (two"
        " moments per weight, beside the float32 gradient)",
    ),  # fmt: skip
    "optimizer_instructions_per_weight": ("ASSUMED", "Adam's update of one weight: moments, bias correction, step"),
    "backward_forward_ratio": (
        "ASSUMED",
        "one step's backward pass costs two forward passes (tools.train.memplan's backward_cost, the usual estimate)",
    ),  # fmt: skip
    "exchange_bytes_per_cycle": (
        "CODE",
        "Target::getExchangeBytesPerCycle() = 4, graphcore/poplibs lib/poplin/ExchangeEstimator.hpp (" + R2 + ")",
    ),
    "exchange_setup_cycles": ("ASSUMED", "fixed cost of one exchange phase beyond its bytes"),
    "sync_cycles": ("CODE", "getGlobalSyncCycles = 600, an IPU21 cost model (" + R2 + ", approximate)"),
    "ipu_link_bytes_per_s": ("2nd", "10 IPU-Links, 320 GB/s chip to chip (" + R2 + ")"),
    "ipu_link_latency_s": ("ASSUMED", "one crossing of an IPU-Link and the sync between chips"),
    "host_link_bytes_per_s": ("2nd", "PCIe Gen4 x16, 64 GB/s (" + R2 + ")"),
    "streaming_memory_bytes_per_s": (
        "ASSUMED",
        "Streaming Memory bandwidth per IPU: not found in public sources;"
        " DDR4 gives tens of GB/s (" + R2 + ", a parameter by design)",
    ),
    "streaming_memory_bytes_per_ipu": ("2nd", "up to 448 GB per IPU-M2000 of 4 IPUs (" + R2 + ")"),
}
