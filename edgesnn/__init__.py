"""edgesnn: run spiking and hybrid SNN-ANN models on a stream, fast, on edge devices."""

__version__ = "0.1.0"
