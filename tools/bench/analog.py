"""Gain-cell attention figures (JSON): runtime tokens/s in float and gain-cell numerics, the board link round trip.

    nice .venv/bin/python tools/bench/analog.py [--tokens 128] [--repeats 5] [--out results/bench_analog.json]

The model is a decoder of the shape tools.train_lm trains by default for this bench
(d 64, 3 layers, 2 heads, window 96, context 128), random weights. Figures, each the
median of ``--repeats`` runs:

- ``runtime``: tokens/s of ``Session.step`` at batch 1 (streaming) and of ``Session.run``
  at batch 64 (evaluation, tokens of all streams counted), numerics float and gaincell;
- ``board``: the same model on the emulated board (AnalogDevice, emulator process on a pty,
  pyserial): tokens/s of ``step`` at batch 1 and ms per token, and the link's bare round
  trip (a ``caps`` request) and one layer's write + query;
ratios: gaincell over float in the runtime, board over runtime gaincell.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time
from typing import Any

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from edgesnn.graph.decoder import decoder_graph  # noqa: E402
from edgesnn.model import Model  # noqa: E402


def model(d: int = 64, layers: int = 3, heads: int = 2, window: int = 96, context: int = 128, vocab: int = 97) -> Model:
    """A random decoder LM (weights scaled so that activations stay O(1))."""
    rng = np.random.default_rng(0)

    def w(*shape: int, s: float = 0.2) -> np.ndarray:
        return (s * rng.standard_normal(shape)).astype(np.float32)

    blocks = [{"ln_1_w": np.ones(d, np.float32), "ln_1_b": w(d), "w_qkv": w(3 * d, d), "b_qkv": w(3 * d),
               "w_out": w(d, d), "b_out": w(d), "ln_2_w": np.ones(d, np.float32), "ln_2_b": w(d),
               "w_fc": w(4 * d, d), "b_fc": w(4 * d), "w_proj": w(d, 4 * d), "b_proj": w(d)}
              for _ in range(layers)]  # fmt: skip
    params = {"wte": w(vocab, d, s=1.0), "wpe": w(context, d), "ln_f_w": np.ones(d, np.float32), "ln_f_b": w(d),
              "blocks": blocks}  # fmt: skip
    scalers = {"q_scale": np.full(heads, 0.25), "q_offset": np.full(heads, 0.5), "k_scale": np.full(heads, 0.2),
               "v_scale": np.full(heads, 0.2)}  # fmt: skip
    return Model(decoder_graph(params, num_heads=heads, window=window, attention=[scalers] * layers), dt_s=1e-3)


def _median(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def runtime(m: Model, tokens: int, repeats: int) -> dict[str, Any]:
    """Tokens/s of step (batch 1) and run (batch 64) in both numerics."""
    rng = np.random.default_rng(1)
    one = rng.integers(0, 97, (tokens, 1, 1)).astype(np.float32)
    many = rng.integers(0, 97, (tokens, 64, 1)).astype(np.float32)
    out: dict[str, Any] = {}
    for numerics in ("float", "gaincell"):
        s = m.session(numerics=numerics)

        def stream(s: Any = s) -> None:
            s.reset()
            for t in range(tokens):
                s.step(one[t])

        big = m.session(batch=64, numerics=numerics)

        def evaluate(big: Any = big) -> None:
            big.reset()
            big.run(many)

        out[numerics] = {"step_batch1_tokens_per_s": tokens / _median(stream, repeats),
                         "run_batch64_tokens_per_s": 64 * tokens / _median(evaluate, repeats)}  # fmt: skip
    out["gaincell_over_float_step"] = (out["gaincell"]["step_batch1_tokens_per_s"]
                                       / out["float"]["step_batch1_tokens_per_s"])  # fmt: skip
    return out


def board(m: Model, tokens: int, repeats: int) -> dict[str, Any]:
    """The emulated board: tokens/s of step at batch 1, the link's round trips."""
    import io

    from edgesnn.bundle import write_bundle
    from firmware_bridges.analog.__main__ import start_emulator
    from firmware_bridges.analog.device import AnalogDevice
    from firmware_bridges.analog.link import BoardLink, open_port

    proc, url = start_emulator()
    try:
        dev = AnalogDevice(BoardLink(open_port(url), timeout_s=5.0))
        buf = io.BytesIO()
        write_bundle(m, buf)
        s = dev.open_session(dev.load_model(buf.getvalue()))
        one = np.random.default_rng(1).integers(0, 97, (tokens, 1, 1)).astype(np.float32)

        def stream() -> None:
            s.reset()
            for t in range(tokens):
                s.step(one[t])

        per_run = _median(stream, repeats)
        link = dev.client.link
        caps = _median(lambda: [link.request("caps") for _ in range(100)], repeats) / 100
        cells = s._cells[0]  # one layer's write + query, as a step does it
        op = cells.op
        q = np.zeros(op.keys.shape[:2] + op.keys.shape[3:], np.float32)

        def one_layer() -> None:
            for _ in range(50):
                cells.step(op, q, q, q)

        layer = _median(one_layer, repeats) / 50
        result = {"step_batch1_tokens_per_s": tokens / per_run, "ms_per_token": 1e3 * per_run / tokens,
                  "caps_round_trip_us": 1e6 * caps, "layer_write_query_us": 1e6 * layer,
                  "link_faults": dict(link.faults)}  # fmt: skip
        s.close()
        dev.close()
        return result
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    """Measure and print (and write) the JSON."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    m = model()
    doc: dict[str, Any] = {"model": {"d": 64, "layers": 3, "heads": 2, "window": 96}, "tokens": args.tokens,
                           "repeats": args.repeats, "runtime": runtime(m, args.tokens, args.repeats)}  # fmt: skip
    doc["board"] = board(m, args.tokens, args.repeats)
    doc["board_over_runtime_gaincell_step"] = (doc["board"]["step_batch1_tokens_per_s"]
                                               / doc["runtime"]["gaincell"]["step_batch1_tokens_per_s"])  # fmt: skip
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
