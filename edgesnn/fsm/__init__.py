"""Finite-state machines compiled into attractor networks of threshold units (vector-symbolic architectures).

``spec = load_spec("door.json"); net = compile_fsm(spec, CompileOptions(neurons=2000, seed=1))``
draws the network (Cotteret et al., Neural Computation 36(4), 2024); :func:`simulate` is the
reference run of its update rule; :func:`to_model` makes it an edgesnn model that any session,
bundle or device runs, and :func:`run_symbols` walks that model through a list of input symbols.
"""

from edgesnn.fsm.compile import WEIGHTS as WEIGHTS
from edgesnn.fsm.compile import CompileOptions as CompileOptions
from edgesnn.fsm.compile import FSMNetwork as FSMNetwork
from edgesnn.fsm.compile import compile_fsm as compile_fsm
from edgesnn.fsm.model import feed as feed
from edgesnn.fsm.model import fsm_info as fsm_info
from edgesnn.fsm.model import run_symbols as run_symbols
from edgesnn.fsm.model import to_model as to_model
from edgesnn.fsm.simulate import Hop as Hop
from edgesnn.fsm.simulate import Trajectory as Trajectory
from edgesnn.fsm.simulate import decode as decode
from edgesnn.fsm.simulate import hops as hops
from edgesnn.fsm.simulate import schedule as schedule
from edgesnn.fsm.simulate import simulate as simulate
from edgesnn.fsm.spec import FSMSpec as FSMSpec
from edgesnn.fsm.spec import Transition as Transition
from edgesnn.fsm.spec import load_spec as load_spec

__all__ = [
    "WEIGHTS", "CompileOptions", "FSMNetwork", "FSMSpec", "Hop", "Trajectory", "Transition", "compile_fsm",
    "decode", "feed", "fsm_info", "hops", "load_spec", "run_symbols", "schedule", "simulate", "to_model",
]  # fmt: skip
