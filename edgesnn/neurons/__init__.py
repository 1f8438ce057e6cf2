"""Neuron dynamics: discretisation of the continuous-time models for a step dt."""

from edgesnn.neurons.discretise import METHODS as METHODS
from edgesnn.neurons.discretise import NeuronCoefficients as NeuronCoefficients
from edgesnn.neurons.discretise import decay_and_gain as decay_and_gain
from edgesnn.neurons.discretise import discretise as discretise

__all__ = ["METHODS", "NeuronCoefficients", "decay_and_gain", "discretise"]
