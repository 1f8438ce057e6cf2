"""One framework's side of tools/bench/train.py, run in that framework's own environment (torch, snnTorch, Norse).

Each network is written the way the framework's tutorials write it: snnTorch ``nn.Linear`` +
``snn.Leaky`` (``snn.RLeaky`` for the recurrent layer) stepped in a Python loop over time; Norse
``Linear`` and time-lifted ``LIFBoxCell`` (``LIFRecurrent`` for the recurrent layer) and ``LIBoxCell``
modules, each run over the whole sequence. The same LIF (tau 20 ms at 1 ms steps, threshold 1),
fast-sigmoid surrogate of slope 10 (Norse: SuperSpike, the same derivative), LI read-out (tau 20 ms),
cross-entropy of the read-out membrane's time mean and Adam (lr 1e-3) as the edgesnn side. Prints
one JSON line: training steps per second after warm-up.

    python tools/bench/train_peers.py FRAMEWORK WORKLOAD_JSON [--steps N] [--warmup N] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time

import torch

DT_S, TAU_S = 1e-3, 0.02
BETA = math.exp(-DT_S / TAU_S)


def snntorch_net(sizes: list[int], recurrent: bool) -> torch.nn.Module:
    """Linear + Leaky layers, stepped over time by the caller (snnTorch's tutorial style)."""
    import snntorch as snn
    from snntorch import surrogate

    grad = surrogate.fast_sigmoid(slope=10)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fcs = torch.nn.ModuleList(
                torch.nn.Linear(a, b, bias=False) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
            )
            hidden = len(sizes) - 2
            if recurrent:
                self.lifs = torch.nn.ModuleList(
                    snn.RLeaky(beta=BETA, linear_features=sizes[i + 1], spike_grad=grad, reset_mechanism="subtract",
                               all_to_all=True) for i in range(hidden))  # fmt: skip
            else:
                self.lifs = torch.nn.ModuleList(
                    snn.Leaky(beta=BETA, spike_grad=grad, reset_mechanism="subtract") for _ in range(hidden)
                )
            self.out = snn.Leaky(beta=BETA, reset_mechanism="none")

        def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (T, B, C)
            if recurrent:
                states = [lif.init_rleaky() for lif in self.lifs]
            else:
                states = [lif.init_leaky() for lif in self.lifs]
            mem_out = self.out.init_leaky()
            trace = []
            for t in range(x.shape[0]):
                h = x[t]
                for i, lif in enumerate(self.lifs):
                    if recurrent:
                        spk, mem = lif(self.fcs[i](h), *states[i])
                        states[i] = (spk, mem)
                    else:
                        spk, states[i] = lif(self.fcs[i](h), states[i])
                    h = spk
                _, mem_out = self.out(self.fcs[-1](h), mem_out)
                trace.append(mem_out)
            return torch.stack(trace)

    return Net()


def norse_net(sizes: list[int], recurrent: bool) -> torch.nn.Module:
    """Linear layers and lifted LIFBox cells (LIFRecurrent for the recurrent one) and an LI read-out.

    Norse's plain ``LIF`` is current-based (a synaptic state more than the others); ``LIFBoxCell``, lifted
    over time, is its LIF without one. Norse has no box variant of the recurrent layer, so the recurrent
    workload uses ``LIFRecurrent`` (with its synaptic current, tau 5 ms).
    """
    import norse.torch as norse

    alpha = torch.tensor(10.0)
    box = norse.LIFBoxParameters(tau_mem_inv=torch.tensor(1 / TAU_S), v_th=torch.tensor(1.0),
                                 v_reset=torch.tensor(0.0), method="super", alpha=alpha)  # fmt: skip
    cur = norse.LIFParameters(tau_mem_inv=torch.tensor(1 / TAU_S), v_th=torch.tensor(1.0), method="super", alpha=alpha)
    layers: list[torch.nn.Module] = []
    for a, b in zip(sizes[:-2], sizes[1:-1], strict=True):
        if recurrent:
            layers.append(norse.LIFRecurrent(a, b, p=cur, dt=DT_S))
        else:
            layers += [torch.nn.Linear(a, b, bias=False), norse.Lift(norse.LIFBoxCell(p=box, dt=DT_S))]
    li = norse.LIBoxCell(p=norse.LIBoxParameters(tau_mem_inv=torch.tensor(1 / TAU_S)), dt=DT_S)
    layers += [torch.nn.Linear(sizes[-2], sizes[-1], bias=False), norse.Lift(li)]

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            for layer in self.layers:  # Norse's stateful modules return (output, state)
                x = layer(x)
                x = x[0] if isinstance(x, tuple) else x
            return x

    return Net()


def main() -> int:
    """Time one framework on one workload; print a JSON line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("framework", choices=("snntorch", "norse"))
    ap.add_argument("workload", help='JSON: {"sizes": [700, 256, 20], "T": 100, "batch": 32, "recurrent": false}')
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    w = json.loads(args.workload)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = (snntorch_net if args.framework == "snntorch" else norse_net)(w["sizes"], w["recurrent"])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand((w["T"], w["batch"], w["sizes"][0]), generator=g) < w.get("rate", 0.02)).float()
    y = torch.randint(0, w["sizes"][-1], (w["batch"],), generator=g)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> float:
        opt.zero_grad()
        loss = loss_fn(net(x).mean(0), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    t0 = time.perf_counter()
    step()
    first_s = time.perf_counter() - t0
    for _ in range(args.warmup - 1):
        step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"framework": args.framework, "version": _version(args.framework), "torch": torch.__version__,
                      "steps_per_s": 1 / med, "sample_steps_per_s": w["batch"] * w["T"] / med,
                      "first_step_s": first_s, "peak_rss_mib": rss, "threads": args.threads}))  # fmt: skip
    return 0


def _version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


if __name__ == "__main__":
    sys.exit(main())
