"""Serving benchmark of issue 6: `edgesnn serve` stepping W1 against a bare gRPC echo server.

Both servers run in their own processes and get the same messages (a W1 input
step, 700 float32 spikes; or a chunk of 100 steps as uint8) on the same
DeviceService.Stream method; the echo server's handler only answers a prebuilt
response of the same size. Clients run closed loop: send a step, wait for its
answer, send the next. The two servers take turns (round trips of the single streams,
slices of the timed runs), so that other work on the machine weighs on both alike.
Prints one JSON document:

- closed loop, 1 stream, loopback TCP and a unix socket: p50/p99 round trip (median over
  repeats) of both servers, and the engine's own step time measured in this process;
  target edgesnn <= 1.3 x (echo + engine step);
- 8 concurrent streams (one client process each) for --duration s per server, in
  --slices turns: aggregate step rate of both, errors, edgesnn server RSS growth from
  before the first turn to after the last; targets within 1.3x of echo, zero errors,
  growth < 5 %;
- throughput mode (100 steps per message, 8 streams): target >= 50,000 steps/s.

    python tools/bench/serve.py [--quick] [--duration 60] [--slices 6] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import platform
import queue
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `tools.bench` and edgesnn importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import grpc
import numpy as np

from edgesnn._proto.edgesnn.v1 import device_pb2 as pb
from edgesnn._proto.edgesnn.v1 import device_pb2_grpc as pb_grpc
from edgesnn.cli import HelpFormatter

ROOT = Path(__file__).resolve().parents[2]
SEED = 2024
CHUNK = 100
TARGET_RATIO = 1.3
TARGET_RSS_GROWTH_PCT = 5.0
TARGET_THROUGHPUT = 50_000


# -- the echo server: same service, same messages, trivial handler ---------------------------
class EchoServicer(pb_grpc.DeviceServiceServicer):
    """Answers every Stream request with a prebuilt response the size of W1's output."""

    def __init__(self) -> None:
        self._responses: dict[bool, pb.StepResponse] = {
            False: pb.StepResponse(outputs=[pb.Tensor(name="out", datatype="FP32", shape=[1, 20], raw=bytes(80))]),
            True: pb.StepResponse(
                outputs=[pb.Tensor(name="out", datatype="FP32", shape=[CHUNK, 1, 20], raw=bytes(80 * CHUNK))]
            ),  # fmt: skip
        }

    def OpenSession(self, request: pb.OpenSessionRequest, context: grpc.ServicerContext) -> pb.SessionInfo:
        return pb.SessionInfo(session_id="echo")

    def Stream(self, request_iterator, context):
        responses = {}  # this stream's own copies: streams run in parallel threads
        for k, template in self._responses.items():
            responses[k] = pb.StepResponse()
            responses[k].CopyFrom(template)
        for req in request_iterator:
            resp = responses[req.sequence]
            resp.id = req.id
            yield resp


def run_echo_server(addresses: list[str]) -> None:
    """Serve the echo servicer until stdin closes; print the TCP port as JSON."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=24),
                         options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.so_reuseport", 0)])  # fmt: skip
    pb_grpc.add_DeviceServiceServicer_to_server(EchoServicer(), server)
    ports = [server.add_insecure_port(a) for a in addresses]
    server.start()
    print(json.dumps({"msg": "listening", "port": ports[0]}), flush=True)
    sys.stdin.read()
    server.stop(0)


# -- server processes --------------------------------------------------------------------------
class ServerProcess:
    """A server subprocess (echo or edgesnn) on loopback TCP and a unix socket."""

    def __init__(self, kind: str, workdir: Path, bundle: Path) -> None:
        self.unix = f"unix:{workdir / (kind + '.sock')}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        if kind == "echo":
            cmd = [sys.executable, str(Path(__file__).resolve()), "--echo-server", "127.0.0.1:0", self.unix]
        else:
            cmd = [sys.executable, "-m", "edgesnn.serve", "serve", "--model", str(bundle), "--port", "0",
                   "--unix", self.unix, "--max-sessions", "32", "--max-message-mb", "64"]  # fmt: skip
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)  # fmt: skip
        self.port = self._wait_port()
        self.tcp = f"127.0.0.1:{self.port}"

    def _wait_port(self) -> int:
        for line in self.proc.stdout:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("msg") == "listening" and entry.get("port"):
                # keep draining the log so the server never blocks on a full pipe
                import threading

                threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
                return int(entry["port"])
        raise RuntimeError(f"server exited with {self.proc.wait()} before listening")

    def rss_mib(self) -> float:
        """Resident set size of the server process now."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS line")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- clients ----------------------------------------------------------------------------------
def _requests(seed: int, chunk: bool) -> list[pb.StepRequest]:
    """64 distinct W1 inputs (700 spikes at 2 %): single steps as FP32, chunks of 100 as UINT8."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(64 if not chunk else 8):
        if chunk:
            x = (rng.random((CHUNK, 1, 700)) < 0.02).astype(np.uint8)
            t = pb.Tensor(name="in", datatype="UINT8", shape=x.shape, raw=x.tobytes())
        else:
            x = (rng.random((1, 700)) < 0.02).astype(np.float32)
            t = pb.Tensor(name="in", datatype="FP32", shape=x.shape, raw=x.tobytes())
        out.append(pb.StepRequest(inputs=[t], sequence=chunk))
    return out


class ClosedLoop:
    """One bidirectional stream driven closed loop: send a request, wait for its answer."""

    def __init__(self, address: str, seed: int, chunk: bool) -> None:
        self.channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20)])
        stub = pb_grpc.DeviceServiceStub(self.channel)
        self.stub = stub
        try:
            models = stub.ListModels(pb.ListModelsRequest()).models
        except grpc.RpcError:
            models = []  # the echo server has no models
        model_id = models[0].model_id if models else ""
        self.session_id = stub.OpenSession(pb.OpenSessionRequest(model_id=model_id)).session_id
        self.requests = _requests(seed, chunk)
        for r in self.requests:
            r.session_id = self.session_id
        self.outbox: queue.SimpleQueue = queue.SimpleQueue()
        self.responses = stub.Stream(iter(self.outbox.get, None))
        self.errors = 0
        self.sent = 0

    def step(self) -> int:
        """One round trip; returns its duration in ns."""
        req = self.requests[self.sent % len(self.requests)]
        req.id = self.sent
        t0 = time.perf_counter_ns()
        self.outbox.put(req)
        resp = next(self.responses)
        dt = time.perf_counter_ns() - t0
        if resp.HasField("error") or resp.id != self.sent:
            self.errors += 1
        self.sent += 1
        return dt

    def close(self) -> None:
        self.outbox.put(None)
        for _ in self.responses:
            pass
        try:
            self.stub.CloseSession(pb.CloseSessionRequest(session_id=self.session_id))
        except grpc.RpcError:
            pass  # the echo server has no sessions to close
        self.channel.close()


def _percentiles(ns: list[int]) -> dict[str, float]:
    a = np.asarray(ns, dtype=np.float64) / 1e3
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99)),
            "mean_us": float(a.mean())}  # fmt: skip


def one_stream(addresses: dict[str, str], steps: int, repeats: int) -> dict[str, dict[str, Any]]:
    """Closed-loop round trips on one stream per server: median over repeats of p50 and p99.

    The servers take turns round trip by round trip, so that the stalls other work on the
    machine causes (milliseconds, and what decides a p99 here) fall on both alike.
    """
    loops = {k: ClosedLoop(a, SEED, chunk=False) for k, a in addresses.items()}
    for loop in loops.values():
        for _ in range(300):
            loop.step()
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in loops}
    for _ in range(repeats):
        rtts: dict[str, list[int]] = {k: [] for k in loops}
        for _ in range(steps):
            for k, loop in loops.items():
                rtts[k].append(loop.step())
        for k, r in rtts.items():
            runs[k].append(_percentiles(r))
    result = {}
    for k, loop in loops.items():
        loop.close()
        out = {m: statistics.median(r[m] for r in runs[k]) for m in runs[k][0]}
        out["round_trips_per_s"] = 1e6 / out["mean_us"]
        out["errors"] = loop.errors
        result[k] = out
    return result


def _stream_client(conn: Any, seed: int) -> None:
    """A client process: one closed-loop stream per (address, mode), kept open between runs.

    Takes (address, chunk, start_at, duration) and answers messages, errors and p99 of the
    run; None closes the streams and ends the process.
    """
    loops: dict[tuple[str, bool], ClosedLoop] = {}
    while (cmd := conn.recv()) is not None:
        address, chunk, start_at, duration = cmd
        try:
            loop = loops.get((address, chunk))
            if loop is None:
                loop = loops[address, chunk] = ClosedLoop(address, seed, chunk)
            for _ in range(20):
                loop.step()
            sent, errors = loop.sent, loop.errors
            time.sleep(max(0.0, start_at - time.time()))
            end = time.time() + duration
            rtts = []
            while time.time() < end:
                rtts.append(loop.step())
            conn.send({"messages": loop.sent - sent, "errors": loop.errors - errors,
                       "p99_us": _percentiles(rtts)["p99_us"]})  # fmt: skip
        except Exception as exc:  # reported to the parent, which raises it
            conn.send(exc)
    for loop in loops.values():
        loop.close()
    conn.send(None)


class StreamClients:
    """``n`` client processes driving one closed-loop stream each; streams stay open between runs."""

    def __init__(self, n: int) -> None:
        ctx = mp.get_context("spawn")
        self._conns = []
        self._procs = []
        self._connected: set[tuple[str, bool]] = set()
        for i in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_stream_client, args=(child, SEED + i), daemon=True)
            proc.start()
            self._conns.append(parent)
            self._procs.append(proc)

    def run(self, address: str, duration: float, chunk: bool) -> dict[str, Any]:
        """Every stream on ``address``, started together, for ``duration`` s."""
        # time for every client to connect (the first time) and warm up
        start_at = time.time() + (1.0 if (address, chunk) in self._connected else 3.0)
        self._connected.add((address, chunk))
        for conn in self._conns:
            conn.send((address, chunk, start_at, duration))
        results = [conn.recv() for conn in self._conns]
        for r in results:
            if isinstance(r, Exception):
                raise r
        return {
            "messages": sum(r["messages"] for r in results),
            "errors": sum(r["errors"] for r in results),
            "worst_stream_p99_us": max(r["p99_us"] for r in results),
        }

    def close(self) -> None:
        """Close every stream and end the client processes."""
        for conn in self._conns:
            conn.send(None)
        for conn, proc in zip(self._conns, self._procs, strict=True):
            conn.recv()
            proc.join(10)


WARMUP_S = 10.0


def many_streams_interleaved(
    clients: StreamClients, addresses: dict[str, str], duration: float, slices: int, chunk: bool, between: Any = None
) -> dict[str, Any]:
    """Every client's stream on each server for ``duration`` s in all, in ``slices`` turns taken alternately.

    Other work on the machine comes and goes over a minute; alternating slices exposes
    both servers to it alike. ``between(i)`` runs before slice ``i`` of every server.
    """
    per = duration / slices
    parts: dict[str, list[dict[str, Any]]] = {k: [] for k in addresses}
    for i in range(slices):
        for k, address in addresses.items():
            if between is not None:
                between(i)
            parts[k].append(clients.run(address, per, chunk))
    per_message = CHUNK if chunk else 1
    out: dict[str, Any] = {}
    for k, ps in parts.items():
        messages = sum(p["messages"] for p in ps)
        out[k] = {
            "steps_per_s": messages * per_message / duration,
            "messages": messages,
            "errors": sum(p["errors"] for p in ps),
            "worst_stream_p99_us": max(p["worst_stream_p99_us"] for p in ps),
            "slice_steps_per_s": [round(p["messages"] * per_message / per, 1) for p in ps],
        }
    return out


# -- the engine alone -----------------------------------------------------------------------
def engine_step_us(model: Any, steps: int, repeats: int) -> dict[str, float]:
    """session.step time of W1 in this process (the engine's own cost per step)."""
    s = model.session()
    rng = np.random.default_rng(SEED)
    xs = (rng.random((steps, 1, 700)) < 0.02).astype(np.float32)
    for t in range(min(steps, 200)):
        s.step(xs[t])
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for t in range(steps):
            s.step(xs[t])
        times.append((time.perf_counter() - t0) / steps * 1e6)
    return {"median_us": statistics.median(times), "min_us": min(times), "max_us": max(times), "backend": s.backend}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print JSON."""
    ap = argparse.ArgumentParser(formatter_class=HelpFormatter, description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="5 s runs and fewer steps")
    ap.add_argument("--duration", type=float, help="seconds of the 8-stream run (default 60; 5 with --quick)")
    ap.add_argument("--throughput-duration", type=float, help="seconds of the throughput run (default 20; 5 quick)")
    ap.add_argument("--steps", type=int, help="closed-loop round trips per repeat (default 3000; 1000 quick)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--streams", type=int, default=8)
    ap.add_argument("--slices", type=int, help="turns each server takes in the timed runs (default 6; 2 quick)")
    ap.add_argument("--echo-server", nargs="+", metavar="ADDRESS", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.echo_server:
        run_echo_server(args.echo_server)
        return 0
    duration = args.duration or (5.0 if args.quick else 60.0)
    tput_duration = args.throughput_duration or (5.0 if args.quick else 20.0)
    steps = args.steps or (1000 if args.quick else 3000)
    args.slices = args.slices or (2 if args.quick else 6)

    from edgesnn.bundle import write_bundle
    from tools.bench.workloads import w1

    workload = w1(np.random.default_rng(SEED))
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
            "protobuf": __import__("google.protobuf").protobuf.__version__,
        },
        "workload": f"W1: {workload.description}",
        "engine_step": engine_step_us(workload.model, steps, args.repeats),
    }
    engine_us = report["engine_step"]["median_us"]
    with tempfile.TemporaryDirectory() as tmp:
        bundle = Path(tmp) / "w1.esnn"
        buf = io.BytesIO()
        write_bundle(workload.model, buf)
        bundle.write_bytes(buf.getvalue())
        servers = {k: ServerProcess(k, Path(tmp), bundle) for k in ("echo", "edgesnn")}
        try:
            closed: dict[str, Any] = {}
            for transport in ("tcp", "unix"):
                res: dict[str, Any] = one_stream({k: getattr(s, transport) for k, s in servers.items()},
                                                 steps, args.repeats)  # fmt: skip
                for p in ("p50", "p99"):
                    budget = res["echo"][f"{p}_us"] + engine_us
                    res[f"{p}_target_us"] = TARGET_RATIO * budget
                    res[f"{p}_ratio_to_echo_plus_engine"] = res["edgesnn"][f"{p}_us"] / budget
                res["pass"] = all(res[f"{p}_ratio_to_echo_plus_engine"] <= TARGET_RATIO for p in ("p50", "p99"))
                closed[transport] = res
            report["closed_loop_1_stream"] = closed

            tcp = {k: s.tcp for k, s in servers.items()}
            clients = StreamClients(args.streams)
            try:
                # Warm up at the measured load until allocator arenas and gRPC buffers exist, so
                # that the RSS growth below reflects what the run keeps, not start-up allocation.
                many_streams_interleaved(clients, tcp, WARMUP_S, 1, chunk=False)
                rss = [servers["edgesnn"].rss_mib()]
                multi: dict[str, Any] = many_streams_interleaved(
                    clients, tcp, duration, args.slices, chunk=False,
                    between=lambda i: rss.append(servers["edgesnn"].rss_mib()),
                )  # fmt: skip
                rss.append(servers["edgesnn"].rss_mib())
                multi.update(
                    duration_s=duration,
                    slices=args.slices,
                    streams=args.streams,
                    echo_over_edgesnn=multi["echo"]["steps_per_s"] / max(multi["edgesnn"]["steps_per_s"], 1e-9),
                    server_rss_mib={
                        "before": rss[0],
                        "after": rss[-1],
                        "growth_pct": 100 * (rss[-1] - rss[0]) / rss[0],
                        "during": [round(r, 1) for r in rss],
                    },  # fmt: skip
                )
                multi["pass"] = (multi["echo_over_edgesnn"] <= TARGET_RATIO and multi["edgesnn"]["errors"] == 0
                                 and multi["server_rss_mib"]["growth_pct"] < TARGET_RSS_GROWTH_PCT)  # fmt: skip
                report["streams_8"] = multi

                tput: dict[str, Any] = many_streams_interleaved(clients, tcp, tput_duration, args.slices,
                                                                chunk=True)  # fmt: skip
                tput.update(duration_s=tput_duration, steps_per_message=CHUNK, target_steps_per_s=TARGET_THROUGHPUT)
                tput["pass"] = tput["edgesnn"]["steps_per_s"] >= TARGET_THROUGHPUT and tput["edgesnn"]["errors"] == 0
                report["throughput"] = tput
            finally:
                clients.close()
        finally:
            for s in servers.values():
                s.close()
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
