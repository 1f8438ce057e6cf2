"""The daemon under abuse (issue 15): latency with abandoned streams, memory after sessions close, SIGTERM time.

Starts `edgesnn serve` in its own process on loopback and prints one JSON document:

- ``abandoned``: health-check and Step round trips of a new client (median and p99 over
  --repeats x 50 calls), first with no other client, then with 200 streams opened by clients
  that went silent; target: both within 100 ms under the abandoned streams;
- ``memory``: the daemon's RSS idle, with 16 sessions of batch 1024 open (and stepped), and
  after closing them; target: back within 10 % of the idle level (also reported: the fraction
  of the sessions' growth still held);
- ``sigterm``: seconds from SIGTERM to exit with 24 hostile streams open (half silent, half
  whose first message cannot be decoded), --grace 2; target: within grace + 1 s.

    python tools/bench/serve_abuse.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tools.bench` and edgesnn importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from edgesnn._proto.edgesnn.v1 import device_pb2_grpc as pb_grpc
from edgesnn.cli import HelpFormatter
from edgesnn.devices import connect
from tests.conformance._models import bundle_bytes, small_model, spikes

ROOT = Path(__file__).resolve().parents[2]


def start(*args: str) -> tuple[subprocess.Popen, str]:
    """`edgesnn serve --port 0` in its own process; returns it and its address once it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "edgesnn.serve", "serve", "--port", "0", *args], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr], daemon=True).start()
    while True:
        entry = json.loads(lines.get(timeout=30))
        if entry["msg"] == "listening":
            return proc, f"127.0.0.1:{entry['port']}"


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (Linux)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def latencies(address: str, calls: int) -> dict[str, list[float]]:
    """Round trips of health checks and of Steps on a fresh session, in ms."""
    out: dict[str, list[float]] = {"health": [], "step": []}
    with grpc.insecure_channel(address) as channel, connect(address) as dev:
        health = health_pb2_grpc.HealthStub(channel)
        s = dev.open_session(dev.load_model(bundle_bytes(small_model())))
        x = spikes(1)[0]
        for _ in range(calls):
            t0 = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            out["health"].append((time.perf_counter() - t0) * 1e3)
            t0 = time.perf_counter()
            s.step(x)
            out["step"].append((time.perf_counter() - t0) * 1e3)
        s.close()
    return out


def summary(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    return {"p50_ms": statistics.median(samples), "p99_ms": samples[int(0.99 * (len(samples) - 1))]}


def abandoned(repeats: int) -> dict:
    proc, address = start()
    hang = threading.Event()

    def silent():
        hang.wait()
        yield from ()

    try:
        quiet = [latencies(address, 50) for _ in range(repeats)]
        channels = [grpc.insecure_channel(address) for _ in range(200)]
        calls = [pb_grpc.DeviceServiceStub(c).Stream(silent()) for c in channels]
        time.sleep(1.0)
        loaded = [latencies(address, 50) for _ in range(repeats)]
        refused = sum(c.done() and c.code() == grpc.StatusCode.RESOURCE_EXHAUSTED for c in calls)
        hang.set()
        for c in channels:
            c.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    result = {"streams_refused_at_once": refused}
    for name, runs in (("idle", quiet), ("with_200_abandoned_streams", loaded)):
        result[name] = {k: summary([v for r in runs for v in r[k]]) for k in ("health", "step")}
    worst = max(result["with_200_abandoned_streams"][k]["p99_ms"] for k in ("health", "step"))
    result["target_100ms_met"] = worst < 100.0
    return result


def memory() -> dict:
    proc, address = start("--max-sessions", "32")
    try:
        with connect(address) as dev:
            model_id = dev.load_model(bundle_bytes(small_model()))
            dev.open_session(model_id).close()
            time.sleep(0.5)
            idle = rss_bytes(proc.pid)
            sessions = [dev.open_session(model_id, batch=1024) for _ in range(16)]
            for s in sessions:
                s.step(spikes(1, batch=1024)[0])
            busy = rss_bytes(proc.pid)
            for s in sessions:
                s.close()
            time.sleep(0.5)
            after = rss_bytes(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    kept = (after - idle) / max(busy - idle, 1)
    return {"idle_rss_mb": idle / 2**20, "busy_rss_mb": busy / 2**20, "after_close_rss_mb": after / 2**20,
            "fraction_of_growth_kept": kept, "after_over_idle": after / idle,
            "target_within_10pct_of_idle_met": after <= 1.10 * idle}  # fmt: skip


def sigterm(repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        proc, address = start("--grace", "2s")
        hang = threading.Event()
        channels = []

        def garbage(hang=hang):
            yield b"\xff\xff\xff\xff\x0f"
            hang.wait()

        def silent(hang=hang):
            hang.wait()
            yield from ()

        for i in range(24):
            channel = grpc.insecure_channel(address)
            channels.append(channel)
            if i % 2:
                channel.stream_stream("/edgesnn.v1.DeviceService/Stream", request_serializer=lambda b: b,
                                      response_deserializer=lambda b: b)(garbage())  # fmt: skip
            else:
                pb_grpc.DeviceServiceStub(channel).Stream(silent())
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        times.append(time.monotonic() - t0)
        hang.set()
        for c in channels:
            c.close()
    return {"grace_s": 2.0, "exit_s_median": statistics.median(times), "exit_s_max": max(times),
            "target_grace_plus_1s_met": max(times) <= 3.0}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    result = {"abandoned": abandoned(args.repeats), "memory": memory(), "sigterm": sigterm(args.repeats),
              "cores": os.cpu_count(), "load_average": os.getloadavg()}  # fmt: skip
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
