"""The graph IR: node types (neurons, synapses, ONNX parts) and the graph itself."""

from edgesnn.graph._node import Node as Node
from edgesnn.graph.attention import SlidingWindowAttention as SlidingWindowAttention
from edgesnn.graph.conv import AvgPool2d as AvgPool2d
from edgesnn.graph.conv import Conv1d as Conv1d
from edgesnn.graph.conv import Conv2d as Conv2d
from edgesnn.graph.conv import Flatten as Flatten
from edgesnn.graph.conv import SumPool2d as SumPool2d
from edgesnn.graph.graph import Graph as Graph
from edgesnn.graph.io_nodes import Input as Input
from edgesnn.graph.io_nodes import Output as Output
from edgesnn.graph.neurons import IF as IF
from edgesnn.graph.neurons import LI as LI
from edgesnn.graph.neurons import LIF as LIF
from edgesnn.graph.neurons import RESET_MODES as RESET_MODES
from edgesnn.graph.neurons import RESET_TIMINGS as RESET_TIMINGS
from edgesnn.graph.neurons import AdaptiveLIF as AdaptiveLIF
from edgesnn.graph.neurons import CubaLI as CubaLI
from edgesnn.graph.neurons import CubaLIF as CubaLIF
from edgesnn.graph.neurons import Integrator as Integrator
from edgesnn.graph.onnx_node import Onnx as Onnx
from edgesnn.graph.plastic_attention import PlasticAttention as PlasticAttention
from edgesnn.graph.synapses import Affine as Affine
from edgesnn.graph.synapses import Delay as Delay
from edgesnn.graph.synapses import Linear as Linear
from edgesnn.graph.synapses import Scale as Scale
from edgesnn.graph.synapses import Threshold as Threshold
from edgesnn.graph.transformer import GELU as GELU
from edgesnn.graph.transformer import LayerNorm as LayerNorm
from edgesnn.graph.transformer import PositionEmbedding as PositionEmbedding
from edgesnn.graph.transformer import ReLU as ReLU
from edgesnn.graph.transformer import TokenEmbedding as TokenEmbedding
from edgesnn.graph.units import ThresholdUnit as ThresholdUnit

#: Every node type by its serialised ``type`` tag.
NODE_TYPES: dict[str, type[Node]] = {
    cls.type_name(): cls
    for cls in (
        Input, Output, Affine, Linear, Scale, Threshold, Delay, Conv1d, Conv2d, SumPool2d, AvgPool2d, Flatten,
        Integrator, IF, LI, LIF, CubaLI, CubaLIF, AdaptiveLIF, Onnx, ThresholdUnit,
        TokenEmbedding, PositionEmbedding, LayerNorm, GELU, ReLU, SlidingWindowAttention, PlasticAttention,
    )
}  # fmt: skip

__all__ = [
    "Node", "Graph", "NODE_TYPES", "Input", "Output", "Affine", "Linear", "Scale", "Threshold", "Delay",
    "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "Integrator", "IF", "LI", "LIF", "CubaLI",
    "CubaLIF", "AdaptiveLIF", "Onnx", "ThresholdUnit", "TokenEmbedding", "PositionEmbedding", "LayerNorm", "GELU",
    "ReLU", "SlidingWindowAttention", "PlasticAttention", "RESET_MODES", "RESET_TIMINGS",
]  # fmt: skip
