"""create_server: a gRPC server for any Device, with health, reflection, limits and auth."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import threading
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from edgesnn import limits
from edgesnn._proto.edgesnn.v1 import device_pb2 as pb
from edgesnn.devices.base import Device
from edgesnn.errors import OptionError
from edgesnn.serve import wire
from edgesnn.serve.auth import TokenAuthInterceptor
from edgesnn.serve.policy import ModelPaths, StreamAdmission
from edgesnn.serve.servicer import DeviceServicer
from edgesnn.serve.sessions import SessionTable

log = logging.getLogger("edgesnn.serve")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DeviceService"].full_name
MIB = 1 << 20


@dataclasses.dataclass(frozen=True)
class TLSConfig:
    """Server certificate chain and private key (PEM bytes)."""

    cert_chain: bytes
    private_key: bytes

    @classmethod
    def from_files(cls, cert: str | Path, key: str | Path) -> TLSConfig:
        """Read PEM files."""
        return cls(Path(cert).read_bytes(), Path(key).read_bytes())


def is_local_address(address: str) -> bool:
    """True for unix sockets and loopback hosts (127.0.0.0/8, ::1, localhost)."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rsplit(":", 1)[0] if ":" in address else address
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


class DeviceServer:
    """A running server: the grpc.Server plus what shutting down gracefully needs."""

    def __init__(
        self, server: grpc.Server, health_servicer: health.HealthServicer, sessions: SessionTable,
        ports: dict[str, int] | None = None, *, streams: StreamAdmission | None = None,
        pool: futures.ThreadPoolExecutor | None = None,
    ) -> None:  # fmt: skip
        self.grpc_server = server
        self.health = health_servicer
        self.sessions = sessions
        self.ports = ports or {}  # bound port of each address served
        self.streams = streams or StreamAdmission()
        self._pool = pool

    def start(self) -> None:
        """Start serving (create_server already did)."""
        self.grpc_server.start()

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stop at once (or after ``grace`` seconds for calls in flight); closes every session.

        Returns within ``grace`` plus a fraction of a second whatever the calls in flight do:
        grpc cancels them at the deadline, and a handler that does not return then is left to
        its daemon-less thread rather than waited for.
        """
        self.health.enter_graceful_shutdown()
        self.streams.stop()
        event = self.grpc_server.stop(grace)
        if not event.wait((grace or 0.0) + 0.5):
            log.warning("calls still running after the grace period; stopping without them")
        self.sessions.close_all("server stopped")
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        return event

    def drain(self, grace_s: float) -> None:
        """Graceful shutdown: report NOT_SERVING, refuse new calls, answer calls in flight for up to ``grace_s``."""
        log.info("draining", extra={"grace_s": grace_s, "open_sessions": len(self.sessions)})
        self.stop(grace_s)
        log.info("stopped")

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stops."""
        return self.grpc_server.wait_for_termination(timeout)


def _start_all_workers(pool: futures.ThreadPoolExecutor, n: int) -> None:
    """Create every worker thread now, so the daemon's memory does not creep up under load later.

    ThreadPoolExecutor starts threads lazily, one per task that finds none idle; each new
    thread's stack and allocator arena then show up as RSS growth long after start-up.
    """
    barrier = threading.Barrier(n + 1)
    for _ in range(n):
        pool.submit(barrier.wait)  # each waits, so the next submit finds no idle thread
    barrier.wait()


def create_server(
    device: Device,
    address: str | Sequence[str] = "127.0.0.1:0",
    *,
    token: str | None = None,
    tls: TLSConfig | None = None,
    max_sessions: int = 16,
    max_message_mb: float = 16.0,
    max_model_mb: float = 512.0,
    idle_timeout_s: float = 300.0,
    workers: int | None = None,
    model_files: Sequence[str] = (),
    model_dirs: Sequence[str] = (),
) -> tuple[DeviceServer, int]:
    """Serve ``device`` on ``address`` ("host:port", port 0 picks one, or "unix:/path"); returns (server, port).

    ``address`` may also be several addresses (say TCP and a unix socket for co-located
    clients): one server then listens on all of them, with one session table and one
    session limit; ``port`` is the first address's and ``server.ports`` has each. The
    server is started. A non-loopback address needs a ``token``; calls then need
    ``authorization: Bearer <token>`` metadata (health checks excepted). Messages over
    ``max_message_mb`` are refused with RESOURCE_EXHAUSTED; so is a session beyond
    ``max_sessions`` (after closing sessions idle for more than ``idle_timeout_s``).
    LoadModel opens by path only ``model_files`` and files under ``model_dirs``.
    Each open stream holds one worker thread, so streams are bounded per client and in all
    (``edgesnn.limits``: streams_per_client, streams, stream_idle_s) and ``workers``
    defaults to that bound plus threads kept free for health checks and unary calls.
    """
    addresses = [address] if isinstance(address, str) else list(address)
    if not addresses:
        raise OptionError("expected at least one address to serve", path="address")
    for a in addresses:
        if not is_local_address(a) and not token:
            raise OptionError(f"binding the non-loopback address {a!r} needs a token (--token)", path="address")
    if max_sessions < 1:
        raise OptionError(f"expected an int >= 1, got {max_sessions!r}", path="max_sessions")
    if max_message_mb <= 0:
        raise OptionError(f"expected a positive size in MiB, got {max_message_mb!r}", path="max_message_mb")
    max_bytes = int(max_message_mb * MIB)
    options = [
        ("grpc.max_receive_message_length", max_bytes),
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.so_reuseport", 0),
    ]
    interceptors = [TokenAuthInterceptor(token)] if token else []
    n_workers = workers or limits.current().streams + max_sessions + 8
    pool = futures.ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="edgesnn-serve")
    _start_all_workers(pool, n_workers)
    server = grpc.server(
        pool,
        options=options,
        interceptors=interceptors,
    )
    sessions = SessionTable(device, max_sessions=max_sessions, idle_timeout_s=idle_timeout_s)
    streams = StreamAdmission()
    servicer = DeviceServicer(
        device, sessions, max_model_bytes=int(max_model_mb * MIB), max_message_bytes=max_bytes,
        model_paths=ModelPaths.of(model_files, model_dirs), streams=streams,
    )  # fmt: skip
    wire.add_servicer(servicer, server)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    ports = {a: _bind(server, a, tls, token) for a in addresses}
    server.start()
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    for a, port in ports.items():
        log.info("serving", extra={"address": a, "port": port, "tls": tls is not None, "auth": bool(token),
                                   "max_sessions": max_sessions, "max_message_bytes": max_bytes})  # fmt: skip
    return DeviceServer(server, health_servicer, sessions, ports, streams=streams, pool=pool), ports[addresses[0]]


def _bind(server: grpc.Server, address: str, tls: TLSConfig | None, token: str | None) -> int:
    """Add a listening port for ``address`` to ``server``; returns the port bound."""
    try:
        if tls is not None:
            return server.add_secure_port(address, grpc.ssl_server_credentials([(tls.private_key, tls.cert_chain)]))
        if token and not is_local_address(address):
            log.warning("token sent in clear text: serve with TLS (--tls-cert/--tls-key) off loopback")
        return server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc reports a failed bind this way
        raise OptionError(f"cannot bind {address!r}: in use, or not an address of this machine ({exc})",
                          path="address") from exc  # fmt: skip
