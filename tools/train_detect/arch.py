"""The three detector variants as data: what the SNN front, the bridge and the ANN are made of.

- ``hybrid``: conv + parametric LIF front at 1/8 resolution, the attention bridge
  (:mod:`edgesnn.detect.bridge`), a small conv + ReLU ANN giving 1/8 and 1/16 feature maps, and
  YOLOX-style heads (3x3 conv + ReLU, then a 1x1 prediction).
- ``snn``: a deeper conv + LIF front; the bridge is the spike rate (mean over the bins) and the
  heads are linear 1x1 read-outs of the rate (1/16 level: 2x2 average pooling). Every
  non-linearity is a spiking neuron.
- ``ann``: no spiking neurons; the front only sum-pools each bin's histogram 2x2 (a stateless
  graph), and the ANN sees all bins stacked as channels (2T), then as ``hybrid``'s ANN and heads.

Bridge ablations (``hybrid``'s front, ANN and heads, a reduced bridge):

- ``hybrid-noattn``: no attention at all: the bridge is the mean of the spikes over the T bins
  (no spatial-context conv, no temporal attention, no event-rate gate; no bridge parameters).
- ``hybrid-nogate``: the spatial-aware temporal attention kept, the event-rate gate removed.

The bridge's time-wise "deformable" convolution is a plain (non-deformable) convolution in
every variant (:mod:`edgesnn.detect.bridge`).
"""

from __future__ import annotations

import dataclasses

from edgesnn.errors import OptionError

VARIANTS = ("hybrid", "hybrid-noattn", "hybrid-nogate", "snn", "ann")
#: Which bridge parts each hybrid-family variant has: (temporal attention, event-rate gate).
BRIDGE_PARTS = {"hybrid": (True, True), "hybrid-noattn": (False, False), "hybrid-nogate": (True, False)}


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """Sizes of one detector; every conv is 3x3 with padding 1 unless said otherwise."""

    variant: str = "hybrid"
    width: int = 304
    height: int = 240
    n_bins: int = 10
    bin_us: int = 5000
    n_classes: int = 2
    front_channels: tuple[int, ...] = (8, 16, 16)
    front_strides: tuple[int, ...] = (2, 2, 2)
    bridge_context: int = 16  # C_a
    bridge_dim: int = 8  # D
    bridge_kernel: int = 3
    stem_channels: tuple[int, ...] = (24, 32)  # ann variant: stride-2 convs on the stacked histograms
    ann_channels: tuple[int, int] = (32, 48)  # P3 (stride 1 conv), P4 (stride 2 conv)
    head_channels: int = 32
    count_cutoff: int | None = 8
    tau_init_steps: float = 2.0  # initial PLIF time constant, in bins

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise OptionError(f"expected one of {', '.join(VARIANTS)}, got {self.variant!r}", path="variant")
        if len(self.front_channels) != len(self.front_strides):
            raise OptionError("front_channels and front_strides differ in length", path="front_strides")

    @property
    def is_hybrid(self) -> bool:
        """``hybrid`` or one of its bridge ablations: hybrid front, ANN and heads."""
        return self.variant in BRIDGE_PARTS

    @property
    def bridge_attention(self) -> bool:
        """Whether the bridge has the spatial-aware temporal attention (else: mean over the bins)."""
        return BRIDGE_PARTS.get(self.variant, (False, False))[0]

    @property
    def bridge_gate(self) -> bool:
        """Whether the bridge has the event-rate spatial attention (the sigmoid gate)."""
        return BRIDGE_PARTS.get(self.variant, (False, False))[1]

    @property
    def dt_s(self) -> float:
        """SNN step: one bin."""
        return self.bin_us * 1e-6

    def front_shape(self) -> tuple[int, int, int]:
        """(C, h, w) the front hands to the ONNX part."""
        if self.variant == "ann":
            return (2, _down(self.height, 2), _down(self.width, 2))
        h, w = self.height, self.width
        for s in self.front_strides:
            h, w = _down(h, s), _down(w, s)
        return (self.front_channels[-1], h, w)

    def level_shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Grids of the two head levels (rows, cols)."""
        if self.variant == "ann":
            h, w = self.front_shape()[1:]
            for _ in self.stem_channels:
                h, w = _down(h, 2), _down(w, 2)
        else:
            h, w = self.front_shape()[1:]
        return (h, w), (_down(h, 2), _down(w, 2))

    def strides(self) -> tuple[int, int]:
        """Pixel strides of the two head levels."""
        return (self.height // self.level_shapes()[0][0], self.height // self.level_shapes()[1][0])


def _down(size: int, stride: int) -> int:
    """Output size of a 3x3, padding 1 convolution (or a 2x2 pooling for stride 2 on even sizes)."""
    return (size - 1) // stride + 1


def preset(variant: str) -> ArchSpec:
    """The sizes used for the comparison table."""
    if variant == "snn":
        return ArchSpec(variant="snn", front_channels=(8, 16, 32, 32), front_strides=(2, 2, 2, 1))
    return ArchSpec(variant=variant)
