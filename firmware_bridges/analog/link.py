"""The host's end of the board link over pyserial: requests with sequence numbers, retries, timeouts, reset detection.

``BoardLink(url).request(cmd, **fields)`` sends one frame and waits for the reply with
the same ``seq``. A reply that is lost, corrupted (CRC) or refused by the board as
corrupted (a NAK) is asked for again with the same seq, which the board answers from
its last reply without running the command twice; replies to older requests are
dropped. Every reply names the board's boot id: a new one means the board restarted
and lost its cells, reported as :class:`BoardRestarted` so the caller can rebuild
them. A board that stays silent through every try is a :class:`~edgesnn.errors.DeviceError`.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from typing import Any

from edgesnn.errors import CapacityError, DeviceError, MissingDependencyError
from firmware_bridges.analog.frames import FrameError, FrameReader, FrameTimeout, encode

log = logging.getLogger("edgesnn.analog")


class BoardRestarted(DeviceError):
    """The board's boot id changed: it restarted and every cell and layer on it is gone."""


def open_port(url: str, *, baudrate: int = 2_000_000, poll_s: float = 0.02) -> Any:
    """A pyserial port for ``url`` (a device path, or pyserial URLs such as ``socket://host:port``)."""
    try:
        import serial
    except ImportError as exc:
        raise MissingDependencyError("the analog bridge needs pyserial (pip install pyserial)", path="serial") from exc
    try:
        return serial.serial_for_url(url, baudrate=baudrate, timeout=poll_s, write_timeout=2.0)
    except (serial.SerialException, ValueError, OSError) as exc:
        raise DeviceError(f"cannot open the board's serial port {url!r}: {exc}", path="board") from exc


class BoardLink:
    """Requests to one board over one serial port; thread-safe (one request at a time)."""

    def __init__(self, port: Any, *, timeout_s: float = 0.5, tries: int = 4) -> None:
        self._port = port
        self._reader = FrameReader(port.read)
        self.timeout_s = timeout_s
        self.tries = tries
        self.lock = threading.RLock()
        # A random start: a board that kept its last reply across a host restart must not take
        # the new host's first request for a repeat of the old host's last one.
        self._seq = secrets.randbits(40)
        self.boot: int | None = None
        #: Counts of what went wrong and was recovered: "timeout", "crc", "length", "payload", "nak", "stale".
        self.faults: dict[str, int] = {}

    def close(self) -> None:
        """Close the serial port."""
        self._port.close()

    def _count(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send ``cmd`` and return the board's reply; retried on loss or corruption."""
        with self.lock:
            self._seq += 1
            seq = self._seq
            try:
                frame = encode({"seq": seq, "cmd": cmd, **fields})
            except FrameError as exc:
                raise CapacityError(f"{cmd} does not fit the board link: {exc}", path="board") from exc
            problem = "no reply"
            for attempt in range(self.tries):
                if attempt:
                    log.info("board link: %s (seq %d): %s; asking again (try %d of %d)", cmd, seq, problem,
                             attempt + 1, self.tries)  # fmt: skip
                try:
                    self._port.write(frame)
                    reply = self._reply(seq, time.monotonic() + self.timeout_s)
                except FrameTimeout:
                    self._count("timeout")
                    problem = f"no reply within {self.timeout_s:g} s"
                    continue
                except FrameError as exc:
                    self._count(exc.kind)
                    problem = str(exc)
                    continue
                except OSError as exc:  # serial.SerialException is an OSError
                    raise DeviceError(f"the board's serial port failed: {exc}", path="board") from exc
                if reply.get("nak"):
                    self._count("nak")
                    problem = f"the board refused the request frame ({reply['nak']})"
                    continue
                return self._checked(cmd, reply)
            raise DeviceError(
                f"the board did not answer {cmd} (seq {seq}) after {self.tries} tries: {problem}", path="board"
            )

    def _reply(self, seq: int, deadline: float) -> dict[str, Any]:
        while True:
            reply = self._reader.next(deadline)
            if reply["seq"] == seq or reply.get("nak"):
                return reply
            self._count("stale")  # a late reply to a request already answered or given up on

    def _checked(self, cmd: str, reply: dict[str, Any]) -> dict[str, Any]:
        boot = reply.get("boot")
        if self.boot is not None and boot != self.boot:
            self.boot = boot
            raise BoardRestarted(f"the board restarted (boot id changed) before answering {cmd}", path="board")
        self.boot = boot
        if reply.get("ok"):
            return reply
        code, message = reply.get("code"), reply.get("error", "refused")
        if code == "capacity":
            raise CapacityError(f"the board is out of cells: {message}", path="board")
        if code == "not_loaded":
            raise BoardRestarted(f"the board no longer holds the layer: {message}", path="board")
        raise DeviceError(f"the board refused {cmd}: {message}", path="board")


__all__ = ["BoardLink", "BoardRestarted", "open_port"]
