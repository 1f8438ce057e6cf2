"""Embed edgesnn in a sensor loop: load a bundle, step it on each new input, act on the output.

    python examples/stream_spikes.py [model.esnn]

Uses the demo bundle shipped with edgesnn when no model is given, and feeds it
random spikes as a stand-in for a sensor.
"""

import sys
from importlib import resources

import numpy as np

import edgesnn

path = sys.argv[1] if len(sys.argv) > 1 else str(resources.files("edgesnn") / "data" / "demo.esnn")
model = edgesnn.load(path)
spec = model.inputs[0]
print(f"{path}: input {spec.name} {spec.shape}, outputs {[o.name for o in model.outputs]}, labels {model.labels}")

session = model.session()  # one stream, stepping at the model's training dt
rng = np.random.default_rng(0)
for t in range(200):
    x = (rng.random((1, *spec.shape)) < 0.05).astype(np.float32)  # a sensor would hand this over
    out = session.step(x)[model.outputs[0].name][0]
    if t % 50 == 49:
        best = int(np.argmax(out))
        label = model.labels[best] if model.labels else str(best)
        print(f"t={t + 1:4d} steps: top output {label} ({out[best]:.2f})")

snapshot = session.state()  # bytes: keep it to resume the stream later
session.reset()
session.load_state(snapshot)
print(f"state snapshot: {len(snapshot)} bytes")
