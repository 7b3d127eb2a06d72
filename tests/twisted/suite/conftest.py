"""Fixtures of the reactor-driven Twisted suite (collected only in its own process).

Theory of operation
-------------------
The global reactor is never started with ``reactor.run()``: :func:`wait` drives it with
:meth:`amqp_adapter_twisted.TwistedEventLoop.run_until_stopped` (one ``runUntilCurrent`` +
``doIteration`` at a time) until the Deferred under test has fired or its time is up, so every
test runs on the same reactor, on the main thread, bounded in time.  ``run(fn, *args)`` accepts
an ``async def`` (run with ``ensureDeferred``) or anything returning a Deferred.

After each test the connections made through ``connect`` are closed, and the reactor must hold
no socket (only its waker), no writer and no pending timed call: a leak fails the test that
caused it and is cleaned up so that it cannot break the next one.

The broker: the main test process passes its private node in ``AMQP_TWISTED_BROKER`` (the JSON
of ``PrivateBroker.to_state()``; this process neither starts nor stops it), else ``AMQP_URL``
names an external one, else a private node is started here (when this suite is run by hand).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import reactor
from twisted.internet.protocol import ClientCreator
from twisted.python.failure import Failure
from twisted_helpers import RUN_TIMEOUT, as_deferred, params_for, spin, wait

import amqp_core as pika
from amqp_adapter_twisted import TwistedProtocolConnection
from amqp_core.testing.broker import ExternalBroker, PrivateBroker, ensure_installed

#: The JSON description of the main process's private broker.
BROKER_ENV = "AMQP_TWISTED_BROKER"

# helpers shared with the other integration tests (FakeServer ...)
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "integration"))


@pytest.fixture(scope="session")
def broker() -> Iterator[Any]:
    """The broker: the main process's private node, ``AMQP_URL``'s, or one started here."""
    raw = os.environ.get(BROKER_ENV)
    if raw:
        node = PrivateBroker.from_state(json.loads(raw))
        atexit.unregister(node.stop)  # the main process owns it
        yield node
        return
    url = os.environ.get("AMQP_URL")
    if url:
        yield ExternalBroker.from_url(url)
        return
    ensure_installed()
    with PrivateBroker() as node:
        yield node


Runner = Callable[..., Any]


@pytest.fixture
def run() -> Runner:
    """``run(fn, *args, timeout=RUN_TIMEOUT)``: drive the reactor until ``fn(*args)`` is done."""

    def runner(function: Callable[..., Any], *args: Any, timeout: float = RUN_TIMEOUT) -> Any:
        return wait(as_deferred(function, *args), timeout)

    return runner


@pytest.fixture
def params(broker: Any) -> Callable[..., pika.ConnectionParameters]:
    """``params(**overrides)``: parameters for the session broker."""
    return lambda **overrides: params_for(broker, **overrides)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """``unique(prefix)``: a queue/exchange name no other test uses."""
    return lambda prefix="t": f"tw-{prefix}-{uuid.uuid4().hex[:12]}"


Connector = Callable[..., Any]


@pytest.fixture
def connect(broker: Any) -> Iterator[Connector]:
    """``await connect(params=None, port=None)``: a TwistedProtocolConnection through
    ``ClientCreator``, ready; closed after the test."""
    made: list[TwistedProtocolConnection] = []

    async def connect_(
        parameters: pika.ConnectionParameters | None = None, port: int | None = None,
    ) -> TwistedProtocolConnection:
        creator = ClientCreator(
            reactor, TwistedProtocolConnection, parameters or params_for(broker)
        )
        protocol = await creator.connectTCP(broker.host, port or broker.port)
        made.append(protocol)
        await protocol.ready
        return protocol

    yield connect_
    for protocol in made:
        if not protocol.is_closed:
            try:
                wait(protocol.close(), 10)
            except Exception:  # the test's business; the leak check below still runs
                transport: Any = protocol.transport
                if transport is not None:
                    transport.abortConnection()


def _leftovers() -> tuple[list[Any], list[Any], list[Any]]:
    readers = [r for r in reactor.getReaders() if "Waker" not in type(r).__name__]  # type: ignore[attr-defined]
    writers = list(reactor.getWriters())  # type: ignore[attr-defined]
    calls = [c for c in reactor.getDelayedCalls() if c.active()]  # type: ignore[attr-defined]
    return readers, writers, calls


@pytest.fixture(autouse=True)
def reactor_is_clean(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test that leaves sockets or timed calls on the reactor (then clean them up)."""
    yield
    deadline = time.monotonic() + 5.0
    readers, writers, calls = _leftovers()
    while (readers or writers or calls) and time.monotonic() < deadline:
        spin(0.05)
        readers, writers, calls = _leftovers()
    if readers or writers or calls:
        for selectable in {*readers, *writers}:
            selectable.connectionLost(Failure(ConnectionAbortedError("leaked by a test")))
            reactor.removeReader(selectable)  # type: ignore[attr-defined]
            reactor.removeWriter(selectable)  # type: ignore[attr-defined]
        for call in calls:
            call.cancel()
        pytest.fail(
            f"{request.node.name} left on the reactor: readers={readers} writers={writers} "
            f"calls={calls}"
        )
