"""TornadoConnection: plugin discovery, constructor, custom and shared IOLoops, create_connection.

What every adapter does (channels, publish, consume, confirms, errors ...) is the conformance
kit's; here only what is tornado's: which IOLoop a connection runs on and how loops are shared.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl
import threading
import warnings
from collections.abc import Callable
from typing import Any

import pytest
from tornado.ioloop import IOLoop
from tornado_helpers import TornadoHarness

import amqp_core as pika
from amqp_adapter_tornado import TornadoConnection, TornadoEventLoop, default_ioloop
from amqp_core import plugins
from amqp_core.adapters.base_connection import BaseConnection
from amqp_core.io.contract import EventLoop, RunnableLoop

Params = Callable[..., pika.ConnectionParameters]


# ------------------------------------------------------------------ no broker needed


def test_discoverable_through_the_plugin_api() -> None:
    assert plugins.get_connection_class("tornado") is TornadoConnection
    description = plugins.get_adapter("tornado")
    assert description.name == "tornado"
    assert description.distribution == "amqp-adapter-tornado"
    assert description.native_loop == "tornado.ioloop.IOLoop"
    assert "tornado" in {info.name for info in plugins.installed_adapters()}


def test_is_the_shared_connection_class() -> None:
    assert issubclass(TornadoConnection, BaseConnection)
    import inspect

    names = list(inspect.signature(TornadoConnection).parameters)
    assert names == ["parameters", "on_open_callback", "on_open_error_callback",
                     "on_close_callback", "custom_ioloop", "internal_connection_workflow"]
    assert list(inspect.signature(TornadoConnection.create_connection).parameters) == [
        "connection_configs", "on_done", "custom_ioloop", "workflow"]


def test_event_loop_implements_the_contract() -> None:
    ioloop = IOLoop(make_current=False)
    try:
        loop = TornadoEventLoop(ioloop)
        assert isinstance(loop, EventLoop)
        runnable: RunnableLoop = loop
        assert loop.asyncio_loop is ioloop.asyncio_loop
        order: list[str] = []
        loop.call_soon(lambda: order.append("soon"))
        cancelled = loop.call_soon(lambda: order.append("cancelled"))
        cancelled.cancel()
        loop.call_later(-1, lambda: order.append("later"))
        timer = loop.call_later(0.01, lambda: order.append("removed"))
        ioloop.remove_timeout(timer)  # tornado's own API cancels our handles
        thread = threading.Thread(
            target=lambda: loop.call_soon_threadsafe(lambda: order.append("threadsafe")))
        thread.start()
        thread.join(5)
        loop.call_later(0.05, runnable.stop_soon)
        start = loop.time()
        runnable.run_until_stopped()
        assert loop.time() - start >= 0.04
        assert order[0] == "soon"
        assert sorted(order) == ["later", "soon", "threadsafe"]
    finally:
        ioloop.close()


def test_custom_ioloop_of_the_wrong_type() -> None:
    bare_asyncio_loop = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError, match="custom_ioloop"):
            TornadoConnection(custom_ioloop=bare_asyncio_loop)  # type: ignore[arg-type]
    finally:
        bare_asyncio_loop.close()
    with pytest.raises(TypeError, match="custom_ioloop"):
        TornadoConnection(custom_ioloop="loop")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_done"):
        TornadoConnection.create_connection([pika.ConnectionParameters()], "x")  # type: ignore
    with pytest.raises(TypeError, match="ioloop"):
        TornadoEventLoop(object())  # type: ignore[arg-type]


def test_closed_custom_ioloop() -> None:
    ioloop = IOLoop(make_current=False)
    ioloop.close()
    with pytest.raises(ValueError, match="custom_ioloop is closed"):
        TornadoConnection(custom_ioloop=ioloop)


def test_default_ioloop_without_a_loop_in_this_thread() -> None:
    found: dict[str, Any] = {}

    def worker() -> None:  # a fresh thread has no asyncio loop of its own
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ioloop = default_ioloop()
            found["first"] = ioloop
            found["again"] = default_ioloop()
            found["current"] = IOLoop.current()
        ioloop.close()
        asyncio.set_event_loop(None)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(10)
    assert isinstance(found["first"], IOLoop)
    assert found["again"] is found["first"] is found["current"]


def test_default_ioloop_inside_a_running_loop() -> None:
    async def main() -> tuple[IOLoop, IOLoop]:
        return default_ioloop(), IOLoop.current()

    ours, current = asyncio.run(main())
    assert ours is current


# ------------------------------------------------------------------ against the broker


def _round_trip(h: TornadoHarness, sender: TornadoConnection, receiver: TornadoConnection,
                queue: str, body: bytes) -> bytes:
    rx = h.channel(receiver)
    h.call(rx.queue_declare, queue, exclusive=True)
    got = h.fresh("msg")
    rx.basic_consume(queue, h.cb(got), auto_ack=True)
    tx = h.channel(sender)
    tx.basic_publish("", queue, body)
    _channel, _method, _properties, received = h.wait(got)
    return bytes(received)


def test_custom_ioloop(harness: TornadoHarness, params: Params, unique: Any) -> None:
    conn = harness.connect(params(), "custom")
    assert conn.ioloop is harness.ioloop
    assert isinstance(conn.event_loop, TornadoEventLoop)
    assert conn.event_loop.ioloop is harness.ioloop
    assert _round_trip(harness, conn, conn, unique("custom"), b"on my loop") == b"on my loop"
    harness.close_connection(conn)
    _conn, reason = harness.wait("custom.close")
    assert isinstance(reason, pika.exceptions.ConnectionClosedByClient)
    assert conn.event_loop.open_streams == 0
    assert conn.event_loop.watched_fds == 0


def test_another_connections_ioloop_reused(
    harness: TornadoHarness, params: Params, unique: Any
) -> None:
    first = harness.connect(params(), "first")
    second = harness.connect(params(), "second", ioloop=first.ioloop)
    third = harness.connect(params(), "third", ioloop=second.event_loop)  # the contract object
    assert first.ioloop is second.ioloop is third.ioloop is harness.ioloop
    assert _round_trip(harness, first, second, unique("shared"), b"across") == b"across"
    assert _round_trip(harness, third, first, unique("shared"), b"back") == b"back"
    harness.close_connection(second)
    assert first.is_open and third.is_open  # closing one leaves the others running
    assert _round_trip(harness, first, third, unique("shared"), b"still") == b"still"


def test_create_connection_on_a_custom_ioloop(
    harness: TornadoHarness, params: Params, unique: Any
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    configs = [params(port=dead_port, connection_attempts=1), params()]
    TornadoConnection.create_connection(configs, harness.cb("done"), custom_ioloop=harness.ioloop)
    (result,) = harness.wait("done")
    assert isinstance(result, TornadoConnection)
    harness.connections.append(result)
    assert result.is_open
    assert result.ioloop is harness.ioloop
    assert result.params.port == configs[1].port
    assert _round_trip(harness, result, result, unique("created"), b"made") == b"made"


def test_connection_refused_reports_open_error(harness: TornadoHarness, params: Params) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    conn = TornadoConnection(
        params(port=dead_port, connection_attempts=1),
        on_open_callback=harness.cb("open"),
        on_open_error_callback=harness.cb("open_error"),
        custom_ioloop=harness.ioloop,
    )
    harness.connections.append(conn)
    _conn, error = harness.wait("open_error")
    assert isinstance(error, pika.exceptions.AMQPConnectionError)
    assert not harness.calls.get("open")
    assert conn.event_loop.watched_fds == 0  # type: ignore[attr-defined]


def test_tls_with_a_large_message(
    harness: TornadoHarness, params: Params, private_broker: Any, unique: Any
) -> None:
    """TLS makes the stream ask for readability and writability in turn through add_handler."""
    context = ssl.create_default_context(cafile=str(private_broker.ca_path))
    conn = harness.connect(params(port=private_broker.tls_port,
                                  ssl_options=pika.SSLOptions(context, "localhost")))
    assert conn.ioloop is harness.ioloop
    body = bytes(range(256)) * 8192  # 2 MiB: many TLS records each way
    assert _round_trip(harness, conn, conn, unique("tls"), body) == body
    harness.close_connection(conn)
    assert conn.event_loop.watched_fds == 0  # type: ignore[attr-defined]


def test_loop_stopped_in_the_close_callback_can_be_closed_at_once(params: Params) -> None:
    """pika's usual pattern: ``ioloop.stop()`` in on_close, then close the IOLoop; no socket is
    left behind (a leaked one is a ResourceWarning, an error under this suite's filters)."""
    ioloop = IOLoop(make_current=False)
    seen: dict[str, Any] = {}

    def on_closed(connection: TornadoConnection, reason: BaseException) -> None:
        seen["reason"] = reason
        seen["watched"] = connection.event_loop.watched_fds  # type: ignore[attr-defined]
        ioloop.stop()

    conn = TornadoConnection(params(), on_open_callback=lambda c: c.close(),
                             on_close_callback=on_closed, custom_ioloop=ioloop)
    deadline = ioloop.call_later(15, ioloop.stop)
    ioloop.start()
    ioloop.remove_timeout(deadline)
    ioloop.close()
    del conn
    gc.collect()
    assert isinstance(seen["reason"], pika.exceptions.ConnectionClosedByClient)
    assert seen["watched"] == 0
