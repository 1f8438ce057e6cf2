"""Time-resolution adaptation: run a model at a step it was not trained at, without retraining."""

from edgesnn.adapt._maps import METHODS as METHODS
from edgesnn.adapt.retime import input_is_counts as input_is_counts
from edgesnn.adapt.retime import retime_model as retime_model
from edgesnn.adapt.retime import retime_node as retime_node

__all__ = ["METHODS", "input_is_counts", "retime_model", "retime_node"]
