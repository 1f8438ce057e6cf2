"""Loihi 2 numerics: integer networks in Lava's own terms, quantisation of float models, and the prediction of the chip.

>>> net = edgesnn.loihi.quantize(model)                    # doctest: +SKIP
>>> s = model.session(numerics="loihi")                    # steps the same integers as Lava's fixed_pt
>>> report = edgesnn.loihi.quantization_report(model, xs)  # what quantising cost, what it chose

A network built from a Lava network's own parameters (``du``, ``dv``, ``vth``,
``bias_mant``, ``bias_exp``, ``weights``, ``weight_exp``, ``num_weight_bits``,
``sign_mode``) runs as it is:

>>> model = edgesnn.loihi.to_model(LoihiNetwork(...))      # doctest: +SKIP
>>> model.session(numerics="loihi").run(xs, outputs=["lif/u", "lif/v"])  # doctest: +SKIP

The integer update is Lava's bit-accurate CUBA LIF (``PyLifModelBitAcc``) and dense
synapse (``PyDenseModelBitAcc``); :mod:`edgesnn.loihi.fixed` writes it out.
"""

from edgesnn.loihi._float import to_model as to_model
from edgesnn.loihi.network import Connection as Connection
from edgesnn.loihi.network import LoihiNetwork as LoihiNetwork
from edgesnn.loihi.network import NeuronLayer as NeuronLayer
from edgesnn.loihi.quantize import cascade_method as cascade_method
from edgesnn.loihi.quantize import network_for as network_for
from edgesnn.loihi.quantize import quantize as quantize
from edgesnn.loihi.report import LayerError as LayerError
from edgesnn.loihi.report import QuantizationReport as QuantizationReport
from edgesnn.loihi.report import quantization_report as quantization_report

__all__ = ["Connection", "LayerError", "LoihiNetwork", "NeuronLayer", "QuantizationReport", "cascade_method",
           "network_for", "quantization_report", "quantize", "to_model"]  # fmt: skip
