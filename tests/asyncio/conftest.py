"""Fixtures for the asyncio adapter's tests: every test runs on the default loop and on uvloop.

Theory of operation: ``loop_factory`` is parametrized over the loop kinds (uvloop is skipped
when it is not installed).  ``run(coro_fn)`` runs one coroutine function on a fresh loop of that
kind through :class:`asyncio.Runner` (which cancels leftovers, shuts down async generators and
the default executor, and closes the loop), bounded by :func:`asyncio.wait_for`.  No pytest
plugin for asyncio is needed.

``params(**overrides)`` gives connection parameters for the session broker (guest/guest);
``unique(prefix)`` fresh names; ``thread_loop`` a loop running in another thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest

import amqp_core as pika

T = TypeVar("T")

#: Default bound on one test's coroutine, in seconds.
RUN_TIMEOUT = 30.0

LOOP_KINDS = ["asyncio", "uvloop"]


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A new event loop of ``kind`` (``"asyncio"`` or ``"uvloop"``)."""
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
        return loop
    return asyncio.new_event_loop()


@pytest.fixture(params=LOOP_KINDS)
def loop_kind(request: pytest.FixtureRequest) -> str:
    """The loop kind under test."""
    kind: str = request.param
    if kind == "uvloop":
        pytest.importorskip("uvloop")
    return kind


@pytest.fixture
def loop_factory(loop_kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """Makes new loops of the kind under test."""
    return lambda: new_loop(loop_kind)


Runner = Callable[..., Any]


@pytest.fixture
def run(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> Runner:
    """``run(coro_fn, *args, timeout=RUN_TIMEOUT)``: run ``coro_fn(*args)`` on a fresh loop."""

    def runner(
        coro_fn: Callable[..., Awaitable[T]], *args: Any, timeout: float = RUN_TIMEOUT
    ) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(coro_fn(*args), timeout)

        with asyncio.Runner(loop_factory=loop_factory) as asyncio_runner:
            return asyncio_runner.run(bounded())

    return runner


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
    """``unique(prefix)``: a queue/exchange name no other test uses."""
    return lambda prefix="t": f"aio-{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def thread_loop(loop_kind: str) -> Iterator[asyncio.AbstractEventLoop]:
    """A loop of the kind under test running ``run_forever`` in another thread.

    Afterwards its tasks are cancelled, the loop is stopped, the thread joined (bounded) and the
    loop closed.
    """
    loop = new_loop(loop_kind)
    thread = threading.Thread(target=loop.run_forever, name="aio-test-loop", daemon=True)
    thread.start()
    try:
        yield loop
    finally:

        async def cancel_leftovers() -> None:
            current = asyncio.current_task()
            others = [t for t in asyncio.all_tasks() if t is not current]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            await loop.shutdown_asyncgens()

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(cancel_leftovers(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        assert not thread.is_alive(), "the loop thread did not stop"
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()
