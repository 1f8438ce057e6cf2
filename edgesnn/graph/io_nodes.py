"""Graph boundary nodes: where a stream enters and where results leave."""

from __future__ import annotations

import dataclasses

from edgesnn.errors import NodeValidationError
from edgesnn.graph._node import Node, Shape, as_int_tuple, as_shape, check_text


@dataclasses.dataclass(frozen=True, eq=False)
class Input(Node):
    """A named input of the graph; ``shape`` excludes the batch dimension."""

    shape: Shape
    unit: str = ""

    def __post_init__(self) -> None:
        self._set("shape", as_shape(self.shape, "shape"))
        check_text(self.unit, "unit")

    def output_shape(self, input_shape: Shape) -> Shape:
        """An input produces its declared shape."""
        return self.shape


@dataclasses.dataclass(frozen=True, eq=False)
class Output(Node):
    """A named output of the graph; ``shape`` excludes the batch dimension."""

    shape: Shape
    unit: str = ""

    def __post_init__(self) -> None:
        self._set("shape", as_shape(self.shape, "shape"))
        check_text(self.unit, "unit")

    def output_shape(self, input_shape: Shape) -> Shape:
        """An output passes its input through, which must match its shape."""
        if tuple(input_shape) != self.shape:
            raise NodeValidationError(f"expected input {self.shape}, got {tuple(input_shape)}", path="shape")
        return self.shape


__all__ = ["Input", "Output", "as_int_tuple"]
