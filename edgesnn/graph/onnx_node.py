"""An ANN subgraph carried as ONNX bytes and run by onnxruntime."""

from __future__ import annotations

import dataclasses
import hashlib

from edgesnn.errors import NodeValidationError
from edgesnn.graph._node import Node, Shape, as_shape, check_text


@dataclasses.dataclass(frozen=True, eq=False)
class Onnx(Node):
    """A stateless ANN part: ``y = f(x)`` with ``f`` an ONNX model.

    The model takes one input named ``input_name`` of shape (batch, *input_shape)
    and its output ``output_name`` has shape (batch, *out_shape). The batch
    dimension must be dynamic or match the session's batch size.
    """

    model: bytes
    input_shape: Shape
    out_shape: Shape
    input_name: str = ""
    output_name: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.model, (bytes, bytearray)) or not self.model:
            raise NodeValidationError("expected non-empty ONNX model bytes", path="model")
        self._set("model", bytes(self.model))
        for name in ("input_shape", "out_shape"):
            self._set(name, as_shape(getattr(self, name), name))
        for name in ("input_name", "output_name"):
            check_text(getattr(self, name), name, what="a tensor name")

    def output_shape(self, input_shape: Shape) -> Shape:
        """The declared output shape, after checking the declared input shape."""
        if tuple(input_shape) != self.input_shape:
            raise NodeValidationError(f"expected input {self.input_shape}, got {tuple(input_shape)}", path="input")
        return self.out_shape

    @property
    def sha256(self) -> str:
        """Hash of the ONNX bytes (recorded in the bundle manifest)."""
        return hashlib.sha256(self.model).hexdigest()
