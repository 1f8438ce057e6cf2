"""Character-level decoder-only LMs for gain-cell attention: pre-training, hardware-aware adaptation, export (JAX).

The text is the running Python's own standard library source (present wherever Python
is), split by file into train / val / test (:mod:`tools.train_lm.data`). GPT-2's weights
cannot be fetched here (only package registries are reachable), so the "pre-trained"
model is one trained from scratch on that text, then adapted to the gain-cell device
model as Leroux et al. adapt GPT-2: calibration of per-head affine scalers, fine-tuning
of the linear intermediate hardware model, calibration again, fine-tuning of the
nonlinear one with the linear surrogate in the backward pass.
"""
