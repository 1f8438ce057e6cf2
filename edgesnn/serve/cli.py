"""The ``serve`` and ``devices`` commands; ``add_serve_commands`` hooks them into a CLI parser."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Any

from edgesnn.errors import DeviceError, OptionError
from edgesnn.units import parse_duration_s

log = logging.getLogger("edgesnn.serve")

DEFAULT_PORT = 50051
#: Where ``edgesnn devices`` looks when given no address.
DEFAULT_ADDRESSES = (f"127.0.0.1:{DEFAULT_PORT}",)


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve a LocalDevice (or forward to a bridge) until SIGTERM/SIGINT, then drain and exit 0."""
    from edgesnn.devices import LocalDevice, RemoteDevice
    from edgesnn.serve.logs import configure_json_logging
    from edgesnn.serve.server import TLSConfig, create_server

    configure_json_logging(logging.DEBUG if getattr(args, "debug", False) else logging.INFO)
    apply_limits(args.limit or [])
    grace_s = parse_duration_s(args.grace, name="--grace")  # refused before serving, not at shutdown
    token = read_token(args.token, args.token_file)
    if bool(args.tls_cert) != bool(args.tls_key):
        raise OptionError("give both --tls-cert and --tls-key, or neither", path="tls")
    tls = TLSConfig.from_files(args.tls_cert, args.tls_key) if args.tls_cert else None
    if args.forward:
        device: Any = RemoteDevice(args.forward, token=args.forward_token)
        device.wait_ready()
    else:
        device = LocalDevice(store=args.store)
    addresses = [args.unix if args.unix.startswith("unix:") else f"unix:{args.unix}"] if args.unix else []
    if args.unix is None or args.port is not None:
        addresses.insert(0, f"{args.host}:{DEFAULT_PORT if args.port is None else args.port}")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    server = None
    try:
        for model in args.model or ():
            model_id = device.load_model(model)
            log.info("model preloaded", extra={"model": model_id, "path": model})
        # one server on every address: one session table, one --max-sessions, one set of threads
        server, _ = create_server(
            device, addresses, token=token, tls=tls, max_sessions=args.max_sessions,
            max_message_mb=args.max_message_mb, model_files=args.model or (), model_dirs=args.models_dir or (),
        )  # fmt: skip
        for address, port in server.ports.items():
            log.info("listening", extra={"address": address, "port": port})
        stop.wait()
        log.info("shutdown requested")
    finally:
        if server is not None:
            server.drain(grace_s)
        device.close()  # closes sessions; stores were written before every acknowledgement
        log.info("exited")
    return 0


#: Environment variable holding the token, so that it need not appear in the process list.
TOKEN_ENV = "EDGESNN_TOKEN"


def read_token(given: str | None, path: str | None) -> str | None:
    """The token from ``--token``, else ``--token-file`` (first line), else $EDGESNN_TOKEN."""
    if given and path:
        raise OptionError("give --token or --token-file, not both", path="token")
    if path:
        with open(path, encoding="utf-8") as f:
            token = f.readline().strip()
        if not token:
            raise OptionError(f"{path} holds no token on its first line", path="token_file")
        return token
    return given or os.environ.get(TOKEN_ENV) or None


def apply_limits(pairs: list[str]) -> None:
    """``--limit name=value`` flags into :func:`edgesnn.limits.configure`."""
    import dataclasses

    from edgesnn import limits

    kinds = {f.name: f.type for f in dataclasses.fields(limits.Limits)}
    changes: dict[str, float] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        try:
            changes[name] = int(value) if kinds.get(name) == "int" else float(value)
        except ValueError:
            raise OptionError(f"expected NAME=NUMBER (e.g. batch=64), got {pair!r}", path="limit") from None
    try:
        limits.configure(**changes)
    except ValueError as exc:
        raise OptionError(str(exc), path="limit") from exc


#: Labels ``edgesnn devices`` prints per model before saying how many more there are.
SHOWN_LABELS = 8


def describe_model(info: Any) -> dict[str, Any]:
    """A loaded model as ``edgesnn devices --json`` gives it: id, name, producer, specs, step, labels."""

    def specs(items: Any) -> list[dict[str, Any]]:
        return [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype, "unit": s.unit} for s in items]

    return {
        "model_id": info.model_id, "name": info.name, "producer": info.producer_name,
        "inputs": specs(info.inputs), "outputs": specs(info.outputs), "dt_s": info.dt_s, "method": info.method,
        "labels": list(info.labels), "learning": info.learning,
    }  # fmt: skip


def model_line(m: dict[str, Any]) -> str:
    """One model in ``edgesnn devices``: name and short id, shapes in and out, step, labels."""

    def ports(specs: list[dict[str, Any]]) -> str:
        return ", ".join(f"{s['name']} {tuple(s['shape'])}" + (f" {s['unit']}" if s["unit"] else "") for s in specs)

    name = m["name"] or "(unnamed)"
    by = f" by {m['producer']}" if m["producer"] else ""
    labels = m["labels"][:SHOWN_LABELS]
    more = f" +{len(m['labels']) - len(labels)} more" if len(m["labels"]) > len(labels) else ""
    named = f", {len(m['labels'])} labels: {', '.join(labels)}{more}" if labels else ""
    learns = ", learns" if m["learning"] else ""
    return (f"  model {name} [{m['model_id'][:12]}]{by}: {ports(m['inputs'])} -> {ports(m['outputs'])},"
            f" dt {m['dt_s'] * 1e3:g} ms{named}{learns}")  # fmt: skip


def probe(address: str, token: str | None, timeout_s: float) -> dict[str, Any]:
    """Capabilities and loaded models of the device at ``address``, or why it is unreachable."""
    import dataclasses

    from edgesnn.devices import RemoteDevice

    device = RemoteDevice(address, token=token, timeout_s=timeout_s)
    try:
        device.wait_ready(timeout_s)
        caps = dataclasses.asdict(device.capabilities())
        models = [describe_model(m) for m in device.models()]
        return {"address": address, "reachable": True, "capabilities": caps, "models": models}
    except DeviceError as exc:
        return {"address": address, "reachable": False, "error": str(exc)}
    finally:
        device.close()


def cmd_devices(args: argparse.Namespace) -> int:
    """List reachable devices with their capabilities (JSON with --json); exit 7 (device error) if none is reachable."""
    token = args.token or os.environ.get(TOKEN_ENV) or None
    timeout_s = parse_duration_s(args.timeout, name="--timeout")
    found = [probe(a, token, timeout_s) for a in (args.address or DEFAULT_ADDRESSES)]
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        for d in found:
            if not d["reachable"]:
                print(f"{d['address']}: unreachable ({d['error']})")
                continue
            c = d["capabilities"]
            sim = " (simulated)" if c["simulated"] else ""
            print(f"{d['address']}: {c['device_kind']}{sim} {c['device_name']}, edgesnn {c['version']},"
                  f" {c['numerics']}, learning {'yes' if c['learning'] else 'no'},"
                  f" {len(d['models'])} model(s) loaded")  # fmt: skip
            print(f"  neuron models: {', '.join(c['neuron_models'])}")
            print(f"  adaptation: {', '.join(c['adaptation_methods'])}")
            for m in d["models"]:
                print(model_line(m))
    return 0 if any(d["reachable"] for d in found) else 7  # the exit code of a DeviceError (edgesnn.cli)


def add_serve_commands(subparsers: Any) -> None:
    """Add ``serve`` and ``devices`` to an argparse subparsers object."""
    p = subparsers.add_parser("serve", help="serve a device over gRPC (edgesnn.v1.DeviceService)")
    p.add_argument("--model", action="append", help="bundle to preload (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=int, help=f"TCP port (default {DEFAULT_PORT}; 0 picks a free one)")
    p.add_argument("--unix", metavar="PATH", help="also (or, without --port, only) serve on a unix socket")
    p.add_argument("--token", help="require 'authorization: Bearer TOKEN' on every call (visible in the process"
                   f" list: prefer --token-file or ${TOKEN_ENV})")  # fmt: skip
    p.add_argument("--token-file", help="read the token from the first line of this file")
    p.add_argument(
        "--models-dir",
        action="append",
        help="directory whose bundles clients may load by path (repeatable; besides the --model files)",
    )
    p.add_argument(
        "--limit",
        action="append",
        metavar="NAME=VALUE",
        help="change a bound of edgesnn.limits, e.g. batch=64 or stream_idle_s=30 (repeatable)",
    )
    p.add_argument("--tls-cert", help="PEM certificate chain")
    p.add_argument("--tls-key", help="PEM private key")
    p.add_argument("--max-sessions", type=int, default=16)
    p.add_argument("--max-message-mb", type=float, default=16.0)
    p.add_argument("--store", help="directory of learned classes (kept across restarts)")
    p.add_argument("--forward", metavar="ADDRESS", help="serve the device at ADDRESS (a bridge) instead of this CPU")
    p.add_argument("--forward-token", help="token for --forward")
    p.add_argument("--grace", default="5s", help="time to finish calls in flight on SIGTERM, with a unit: 5s, 500ms")
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("devices", help="list reachable devices and their capabilities")
    p.add_argument("address", nargs="*", help=f"host:port or unix:/path (default {', '.join(DEFAULT_ADDRESSES)})")
    p.add_argument("--token", help=f"token for the devices (default: ${TOKEN_ENV})")
    p.add_argument("--timeout", default="2s", help="how long to wait for each device, with a unit: 2s, 500ms")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_devices)


def main(argv: list[str] | None = None) -> int:
    """``python -m edgesnn.serve``: the serve and devices commands without the rest of the CLI."""
    from edgesnn.cli import exit_code_for

    parser = argparse.ArgumentParser(prog="python -m edgesnn.serve")
    parser.add_argument("--debug", action="store_true")
    add_serve_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # user errors end as one line and an exit code, as in edgesnn.cli
        if args.debug:
            raise
        print(f"edgesnn {args.command}: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
              file=sys.stderr)  # fmt: skip
        return exit_code_for(exc)
