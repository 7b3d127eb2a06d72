"""Helpers of the reactor-driven Twisted suite: drive the global reactor until a Deferred fires.

Theory of operation: the global reactor is never started with ``reactor.run()``; :func:`wait`
drives it with :meth:`amqp_adapter_twisted.TwistedEventLoop.run_until_stopped` until the
Deferred has fired or its time is up, so every test runs on the same reactor, on the main
thread, bounded in time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, reactor
from twisted.python.failure import Failure

import amqp_core as pika
from amqp_adapter_twisted import TwistedEventLoop

#: Default bound on one ``wait``, in seconds.
RUN_TIMEOUT = 30.0

#: The contract loop over the global reactor, shared by every test.
LOOP = TwistedEventLoop(reactor)


def as_deferred(function: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
    """Call ``function``: a coroutine becomes a Deferred, a plain value a fired one."""
    try:
        result = function(*args)
    except Exception:
        return defer.fail()
    if inspect.iscoroutine(result):
        return defer.ensureDeferred(result)
    if isinstance(result, defer.Deferred):
        return result
    return defer.succeed(result)


def wait(deferred: defer.Deferred[Any], timeout: float = RUN_TIMEOUT) -> Any:
    """Drive the reactor until ``deferred`` fires; return its result or raise its error.

    :raises TimeoutError: it did not fire within ``timeout`` seconds (it is cancelled)
    """
    outcome: list[Any] = []

    def done(result: Any) -> None:
        outcome.append(result)
        LOOP.stop_soon()

    deferred.addBoth(done)
    timer = reactor.callLater(timeout, LOOP.stop_soon)  # type: ignore[attr-defined]
    try:
        while not outcome:
            LOOP.run_until_stopped()
            if not outcome and not timer.active():
                deferred.cancel()
                raise TimeoutError(f"the Deferred did not fire within {timeout} s")
    finally:
        if timer.active():
            timer.cancel()
    result = outcome[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


def spin(seconds: float) -> None:
    """Drive the reactor for ``seconds``."""
    d: defer.Deferred[None] = defer.Deferred()
    reactor.callLater(seconds, d.callback, None)  # type: ignore[attr-defined]
    wait(d, seconds + 5)


def params_for(broker: Any, **overrides: Any) -> pika.ConnectionParameters:
    """Parameters for ``broker`` (guest/guest on ``/``)."""
    settings: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "credentials": pika.PlainCredentials("guest", "guest"),
    }
    settings.update(overrides)
    return pika.ConnectionParameters(**settings)
