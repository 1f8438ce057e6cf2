"""What every bridge process does the same way: its server flags, and serving a device until a signal."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from edgesnn.errors import EdgeSNNError

if TYPE_CHECKING:
    from edgesnn.devices.base import Device


def add_server_flags(p: argparse.ArgumentParser, *, port: int, max_sessions: int) -> None:
    """--host, --port, --token and --max-sessions, with this bridge's defaults."""
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=port)
    p.add_argument("--token", default=None, help="bearer token clients must send (required off loopback)")
    p.add_argument("--max-sessions", type=int, default=max_sessions)


def preload(device: Device, paths: list[str] | None) -> Device:
    """Load the bundles given with --model; the device is closed again if one cannot be loaded."""
    try:
        for path in paths or ():
            device.load_model(path)
    except BaseException:
        device.close()
        raise
    return device


def serve_until_signal(
    bridge: str, make_device: Callable[[], Device], args: argparse.Namespace, cleanup: Callable[[], None] | None = None
) -> int:
    """Build the device, serve it; print ``listening <port>``; drain and close on SIGTERM/SIGINT.

    A failure to start (a bad model, a port in use, a board that does not answer) is one
    line on stderr, ``<bridge> bridge: <error>``, and exit code 2. ``cleanup`` runs last
    either way (an emulator to stop).
    """
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    from edgesnn.serve import create_server

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: stop.set())
    device = None
    try:
        device = make_device()
        server, port = create_server(device, f"{args.host}:{args.port}", token=args.token,
                                     max_sessions=args.max_sessions)  # fmt: skip
    except (EdgeSNNError, OSError) as exc:
        print(f"{bridge} bridge: {exc}", file=sys.stderr)
        if device is not None:
            device.close()
        if cleanup is not None:
            cleanup()
        return 2
    print(f"listening {port}", flush=True)
    try:
        stop.wait()
    finally:
        server.drain(2.0)
        device.close()
        if cleanup is not None:
            cleanup()
    return 0
