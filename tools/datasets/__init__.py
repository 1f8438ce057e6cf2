"""Dataset generators for offline training and evaluation (not part of the runtime).

``tools.datasets.keywords``: the spoken-keyword spike dataset (espeak-ng speech through a
cochlea model), with ``load_split`` and ``bin_spikes`` for any time step.
"""
