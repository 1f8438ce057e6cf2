"""Build a small recurrent SNN in Python, save it as a .esnn bundle, load it back and run it.

python examples/build_and_save.py out.esnn
"""

import sys

import numpy as np

import edgesnn
from edgesnn.bundle import write_bundle
from edgesnn.graph import LI, LIF, Graph, Input, Linear, Output
from edgesnn.model import Model

out_path = sys.argv[1] if len(sys.argv) > 1 else "rsnn.esnn"
rng = np.random.default_rng(0)
graph = Graph(
    nodes={
        "x": Input((40,), unit="spikes"),
        "fc": Linear(rng.normal(0, 0.5, (64, 40))),
        "lif": LIF.uniform(64, tau_mem_s=20e-3, r=20.0, v_threshold=1.0, reset_mode="subtract"),
        "rec": Linear(rng.normal(0, 0.2, (64, 64))),
        "ro": Linear(rng.normal(0, 0.3, (3, 64))),
        "li": LI.uniform(3, tau_mem_s=50e-3),
        "y": Output((3,)),
    },
    edges=[("x", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "ro"), ("ro", "li"), ("li", "y")],
)
model = Model(graph, dt_s=1e-3, labels=("a", "b", "c"))
write_bundle(model, out_path)

loaded = edgesnn.load(out_path)
xs = (rng.random((100, 1, 40)) < 0.1).astype(np.float32)
ys = loaded.session(batch=1).run(xs, outputs=["y", "lif"])
print(f"wrote {out_path}; mean firing rate {ys['lif'].mean():.3f}, final scores {ys['y'][-1, 0].round(3)}")
