"""The device conformance suite (tests/conformance) against the analog bridge process and its emulated board."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("serial")

from edgesnn.devices import Device  # noqa: E402
from tests.analog_helpers import analog_bridge  # noqa: E402
from tests.conformance._models import remote  # noqa: E402
from tests.conformance.test_device_contract import *  # noqa: E402, F403 - every contract test, run on this device


@pytest.fixture(scope="module")
def analog_address() -> Iterator[str]:
    with analog_bridge("--max-sessions", "64") as running:
        yield running.address


@pytest.fixture
def device(analog_address: str) -> Iterator[Device]:
    with remote(analog_address) as dev:
        yield dev
