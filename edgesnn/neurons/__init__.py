"""Neuron dynamics: discretisation of the continuous-time models for a step dt."""

from edgesnn.neurons.discretise import CASCADE_OF as CASCADE_OF
from edgesnn.neurons.discretise import METHODS as METHODS
from edgesnn.neurons.discretise import NeuronCoefficients as NeuronCoefficients
from edgesnn.neurons.discretise import decay_and_gain as decay_and_gain
from edgesnn.neurons.discretise import discretise as discretise
from edgesnn.neurons.discretise import legacy_method as legacy_method
from edgesnn.neurons.discretise import method_token as method_token

__all__ = ["CASCADE_OF", "METHODS", "NeuronCoefficients", "decay_and_gain", "discretise", "legacy_method",
           "method_token"]  # fmt: skip
