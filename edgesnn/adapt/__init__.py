"""Time-resolution adaptation: run a model at a step it was not trained at, without retraining."""

from edgesnn.adapt._maps import METHODS as METHODS
from edgesnn.adapt.retime import COUNT_UNITS as COUNT_UNITS
from edgesnn.adapt.retime import check_input_units as check_input_units
from edgesnn.adapt.retime import input_is_counts as input_is_counts
from edgesnn.adapt.retime import retime_model as retime_model
from edgesnn.adapt.retime import retime_node as retime_node

__all__ = ["COUNT_UNITS", "METHODS", "check_input_units", "input_is_counts", "retime_model", "retime_node"]
