"""Loihi 2 numerics: quantise a float model to Lava's fixed-point CUBA LIF and predict the chip.

>>> net = edgesnn.loihi.quantize(model)                    # doctest: +SKIP
>>> s = model.session(numerics="loihi")                    # steps the same integers as Lava's fixed_pt
>>> report = edgesnn.loihi.quantization_report(model, xs)  # what quantising cost

The integer update is Lava's bit-accurate CUBA LIF (``PyLifModelBitAcc``) and dense
synapse (``PyDenseModelBitAcc``); :mod:`edgesnn.loihi.fixed` writes it out.
"""

from edgesnn.loihi.network import Connection as Connection
from edgesnn.loihi.network import LoihiNetwork as LoihiNetwork
from edgesnn.loihi.network import NeuronLayer as NeuronLayer
from edgesnn.loihi.quantize import quantize as quantize
from edgesnn.loihi.report import QuantizationReport as QuantizationReport
from edgesnn.loihi.report import quantization_report as quantization_report

__all__ = ["Connection", "LoihiNetwork", "NeuronLayer", "QuantizationReport", "quantization_report", "quantize"]
