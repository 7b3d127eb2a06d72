"""Fixtures for the tornado adapter's tests (the harness itself is in ``tornado_helpers``)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tornado_helpers import TornadoHarness

import amqp_core as pika


@pytest.fixture
def harness() -> Iterator[TornadoHarness]:
    """A fresh harness; its connections and IOLoop are closed afterwards."""
    h = TornadoHarness()
    yield h
    h.close()


@pytest.fixture
def params(broker: Any) -> Callable[..., pika.ConnectionParameters]:
    """``params(**overrides)``: parameters for the session broker (guest/guest on ``/``)."""

    def make(**overrides: Any) -> pika.ConnectionParameters:
        settings: dict[str, Any] = {
            "host": broker.host,
            "port": broker.port,
            "credentials": pika.PlainCredentials("guest", "guest"),
        }
        settings.update(overrides)
        return pika.ConnectionParameters(**settings)

    return make


@pytest.fixture
def unique() -> Callable[[str], str]:
    """``unique(prefix)``: a queue name no other test uses."""

    def make(prefix: str = "t") -> str:
        return f"tornado-{prefix}-{uuid.uuid4().hex[:12]}"

    return make
