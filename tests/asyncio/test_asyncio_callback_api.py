"""pika's callback API on ``AsyncioConnection``, against the real broker, on asyncio and uvloop.

Covers the cross-adapter behaviour: open, channel, declare, publish, consume + ack, get,
confirms, returns, close, a broker-forced close (320), a wrong password, TLS, the connection
workflow, and a loop running in a thread other than the main one.  Callbacks only resolve
futures; assertions are made in the coroutine, every wait bounded by ``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

import amqp_core as pika
from amqp_adapter_asyncio import AsyncioConnection
from amqp_core import exceptions, spec
from amqp_core.testing.fault_proxy import unused_port

WAIT = 10.0


def callback_future() -> tuple[asyncio.Future[Any], Callable[..., None]]:
    """A future and a callback that resolves it with its argument(s)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def callback(*args: Any) -> None:
        if not future.done():
            future.set_result(args[0] if len(args) == 1 else args)

    return future, callback


async def wait(future: asyncio.Future[Any], timeout: float = WAIT) -> Any:
    return await asyncio.wait_for(future, timeout)


class Opened:
    """An open connection plus the future its close callback resolves."""

    def __init__(self, connection: AsyncioConnection, closed: asyncio.Future[Any]) -> None:
        self.connection = connection
        self.closed = closed

    async def channel(self) -> Any:
        future, callback = callback_future()
        self.connection.channel(on_open_callback=callback)
        return await wait(future)

    async def close(self) -> BaseException:
        if not self.connection.is_closed and not self.connection.is_closing:
            self.connection.close()
        error: BaseException = await wait(self.closed)
        await self.connection.wait_stream_closed()  # the transport finishes closing after
        return error


async def open_connection(parameters: pika.ConnectionParameters, **kwargs: Any) -> Opened:
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[Any] = loop.create_future()
    closed: asyncio.Future[Any] = loop.create_future()

    def on_error(_connection: Any, error: BaseException) -> None:
        if not opened.done():
            opened.set_exception(error)

    connection = AsyncioConnection(
        parameters,
        on_open_callback=lambda c: opened.set_result(c),
        on_open_error_callback=on_error,
        on_close_callback=lambda _c, error: closed.set_result(error),
        **kwargs,
    )
    await wait(opened)
    return Opened(connection, closed)


# ---------------------------------------------------------------------------- basics


def test_open_declare_publish_get_close(run: Any, params: Any, unique: Any) -> None:
    queue = unique("get")

    async def scenario() -> None:
        opened = await open_connection(params())
        connection = opened.connection
        assert connection.ioloop is asyncio.get_running_loop()
        assert connection.is_open
        channel = await opened.channel()
        assert channel.is_open

        declared, callback = callback_future()
        channel.queue_declare(queue, auto_delete=False, callback=callback)
        frame = await wait(declared)
        assert isinstance(frame.method, spec.Queue.DeclareOk)
        assert frame.method.queue == queue

        properties = pika.BasicProperties(content_type="text/plain", headers={"k": "v"})
        channel.basic_publish("", queue, b"hello asyncio", properties)
        got, on_get = callback_future()
        channel.basic_get(queue, on_get, auto_ack=True)
        _channel, method, got_properties, body = await wait(got)
        assert isinstance(method, spec.Basic.GetOk)
        assert body == b"hello asyncio"
        assert got_properties.content_type == "text/plain"
        assert got_properties.headers == {"k": "v"}

        deleted, callback = callback_future()
        channel.queue_delete(queue, callback=callback)
        await wait(deleted)
        error = await opened.close()
        assert isinstance(error, exceptions.ConnectionClosedByClient)
        assert error.reply_code == 200
        assert connection.is_closed

    run(scenario)


def test_consume_and_ack(run: Any, params: Any, unique: Any) -> None:
    queue = unique("consume")

    async def scenario() -> None:
        opened = await open_connection(params())
        channel = await opened.channel()
        declared, callback = callback_future()
        channel.queue_declare(queue, callback=callback)  # not auto-delete: checked after cancel
        await wait(declared)
        for index in range(3):
            channel.basic_publish("", queue, f"m{index}".encode())

        bodies: list[bytes] = []
        all_in = asyncio.get_running_loop().create_future()

        def on_message(ch: Any, method: Any, _properties: Any, body: bytes) -> None:
            bodies.append(body)
            ch.basic_ack(method.delivery_tag)
            if len(bodies) == 3 and not all_in.done():
                all_in.set_result(None)

        consume_ok, callback = callback_future()
        tag = channel.basic_consume(queue, on_message, callback=callback)
        frame = await wait(consume_ok)
        assert frame.method.consumer_tag == tag
        await wait(all_in)
        assert bodies == [b"m0", b"m1", b"m2"]

        cancel_ok, callback = callback_future()
        channel.basic_cancel(tag, callback=callback)
        await wait(cancel_ok)
        passive, callback = callback_future()
        channel.queue_declare(queue, passive=True, callback=callback)
        frame = await wait(passive)
        assert frame.method.message_count == 0  # the acks reached the broker
        assert frame.method.consumer_count == 0
        deleted, callback = callback_future()
        channel.queue_delete(queue, callback=callback)
        await wait(deleted)
        await opened.close()

    run(scenario)


def test_confirms_and_returns(run: Any, params: Any, unique: Any) -> None:
    queue = unique("confirm")

    async def scenario() -> None:
        opened = await open_connection(params())
        channel = await opened.channel()
        declared, callback = callback_future()
        channel.queue_declare(queue, auto_delete=True, callback=callback)
        await wait(declared)

        events: list[Any] = []
        confirmed: set[int] = set()
        acked = asyncio.get_running_loop().create_future()

        def on_ack_nack(frame: Any) -> None:
            method = frame.method
            events.append(method)
            if method.multiple:
                confirmed.update(range(1, method.delivery_tag + 1))
            else:
                confirmed.add(method.delivery_tag)
            if confirmed == {1, 2} and not acked.done():
                acked.set_result(None)

        def on_return(_ch: Any, method: Any, _properties: Any, body: bytes) -> None:
            events.append((method, body))

        channel.add_on_return_callback(on_return)
        select_ok, callback = callback_future()
        channel.confirm_delivery(on_ack_nack, callback=callback)
        frame = await wait(select_ok)
        assert isinstance(frame.method, spec.Confirm.SelectOk)

        channel.basic_publish("", queue, b"routed")
        channel.basic_publish("", unique("nowhere"), b"unroutable", mandatory=True)
        await wait(acked)
        returns = [index for index, event in enumerate(events) if isinstance(event, tuple)]
        assert len(returns) == 1
        method, body = events[returns[0]]
        assert isinstance(method, spec.Basic.Return)
        assert method.reply_code == 312 and body == b"unroutable"
        acks = [event for event in events if not isinstance(event, tuple)]
        assert all(isinstance(ack, spec.Basic.Ack) for ack in acks)
        # the Return precedes the Ack confirming the same publish (tag 2); the Ack of tag 1
        # may come before or after both (it waits for the queue)
        ack_of_2 = next(i for i, e in enumerate(events) if not isinstance(e, tuple)
                        and e.delivery_tag == 2)
        assert returns[0] < ack_of_2
        await opened.close()

    run(scenario)


# ---------------------------------------------------------------------------- failures


def test_broker_forced_close_is_320(run: Any, params: Any, private_broker: Any,
                                    unique: Any) -> None:
    name = unique("forced")

    async def scenario() -> None:
        opened = await open_connection(params(client_properties={"connection_name": name}))
        channel = await opened.channel()
        channel_closed, on_channel_close = callback_future()
        channel.add_on_close_callback(on_channel_close)

        def close_it() -> None:
            rows = private_broker.list_connections()
            mine = [row for row in rows if name in row["client_properties"]]
            assert len(mine) == 1, rows
            private_broker.close_connection(mine[0]["pid"], "forced by test")

        await asyncio.wait_for(asyncio.to_thread(close_it), 30)
        error = await wait(opened.closed, 15)
        assert isinstance(error, exceptions.ConnectionClosedByBroker)
        assert error.reply_code == 320
        _channel, channel_error = await wait(channel_closed)
        assert isinstance(channel_error, exceptions.ConnectionClosedByBroker)
        assert opened.connection.is_closed and channel.is_closed
        await opened.connection.wait_stream_closed()

    run(scenario, timeout=60)


def test_wrong_password(run: Any, params: Any) -> None:
    async def scenario() -> None:
        with pytest.raises(exceptions.ProbableAuthenticationError):
            await open_connection(params(credentials=pika.PlainCredentials("guest", "nope")))

    run(scenario)


def test_refused_connection(run: Any, params: Any) -> None:
    async def scenario() -> None:
        with pytest.raises(exceptions.AMQPConnectionError):
            await open_connection(params(port=unused_port(), connection_attempts=1))

    run(scenario)


def test_tls(run: Any, params: Any, private_broker: Any) -> None:
    async def scenario() -> None:
        context = private_broker.client_ssl_context()
        opened = await open_connection(params(
            port=private_broker.tls_port, ssl_options=pika.SSLOptions(context, "localhost"),
        ))
        transport = opened.connection._driver.transport  # the asyncio transport, for inspection
        assert transport.get_extra_info("ssl_object") is not None
        channel = await opened.channel()
        declared, callback = callback_future()
        channel.queue_declare("", exclusive=True, callback=callback)
        assert (await wait(declared)).method.queue.startswith("amq.gen-")
        await opened.close()

    run(scenario)


# ---------------------------------------------------------------------------- loops and workflow


def test_create_connection_tries_configs_in_turn(run: Any, params: Any) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        done, on_done = callback_future()
        configs = [params(port=unused_port(), connection_attempts=1), params()]
        AsyncioConnection.create_connection(configs, on_done, custom_ioloop=loop)
        connection = await wait(done)
        assert isinstance(connection, AsyncioConnection)
        assert connection.is_open and connection.ioloop is loop
        closed, callback = callback_future()
        connection.add_on_close_callback(callback)
        connection.close()
        await wait(closed)
        await connection.wait_stream_closed()

    run(scenario)


def test_custom_ioloop_is_checked() -> None:
    with pytest.raises(TypeError, match="custom_ioloop"):
        AsyncioConnection(custom_ioloop=object())  # type: ignore[arg-type]
    loop = asyncio.new_event_loop()
    loop.close()
    with pytest.raises(ValueError, match="closed"):
        AsyncioConnection(custom_ioloop=loop)


def test_default_ioloop_outside_a_running_loop(loop_kind: str, params: Any) -> None:
    """Without a running loop the thread gets a current loop; no DeprecationWarning (pytest
    turns warnings into errors)."""
    outcome: dict[str, Any] = {}

    def in_thread() -> None:
        try:
            if loop_kind == "uvloop":
                import uvloop

                asyncio.set_event_loop(uvloop.new_event_loop())
            opened: list[Any] = []
            connection = AsyncioConnection(
                params(),
                on_open_callback=lambda c: (opened.append(c), c.close()),
                on_open_error_callback=lambda _c, e: (opened.append(e), loop.stop()),
                on_close_callback=lambda _c, _e: loop.stop(),
            )
            loop = connection.ioloop
            outcome["current"] = asyncio.get_event_loop() is loop
            stopper = loop.call_later(WAIT, loop.stop)
            loop.run_forever()
            stopper.cancel()
            outcome["opened"] = opened
            outcome["closed"] = connection.is_closed
            loop.run_until_complete(asyncio.sleep(0.05))  # let the transport finish closing
            loop.close()
            asyncio.set_event_loop(None)
        except BaseException as error:  # reported to the main thread
            outcome["error"] = error

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(WAIT + 5)
    assert not thread.is_alive()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["current"] is True
    assert len(outcome["opened"]) == 1 and isinstance(outcome["opened"][0], AsyncioConnection)
    assert outcome["closed"] is True


def test_loop_in_another_thread(thread_loop: asyncio.AbstractEventLoop, params: Any,
                                unique: Any) -> None:
    """The loop runs in a worker thread; the main thread drives it with add_callback_threadsafe."""
    queue = unique("thread")
    opened = threading.Event()
    got = threading.Event()
    closed = threading.Event()
    state: dict[str, Any] = {}

    def create() -> None:
        assert threading.current_thread() is not threading.main_thread()
        state["connection"] = AsyncioConnection(
            params(), on_open_callback=lambda _c: opened.set(),
            on_close_callback=lambda _c, error: (state.__setitem__("error", error), closed.set()),
            custom_ioloop=thread_loop,
        )

    thread_loop.call_soon_threadsafe(create)
    assert opened.wait(WAIT)
    connection: AsyncioConnection = state["connection"]

    def on_message(ch: Any, method: Any, _properties: Any, body: bytes) -> None:
        state["body"] = body
        state["thread"] = threading.current_thread()
        ch.basic_ack(method.delivery_tag)
        got.set()

    def on_channel(channel: Any) -> None:
        channel.queue_declare(queue, auto_delete=True, callback=lambda _f: (
            channel.basic_consume(queue, on_message),
            channel.basic_publish("", queue, b"across threads"),
        ))

    # the only thread-safe entry point, called from the main thread
    connection.add_callback_threadsafe(lambda: connection.channel(on_open_callback=on_channel))
    assert got.wait(WAIT)
    assert state["body"] == b"across threads"
    assert state["thread"] is not threading.main_thread()
    connection.add_callback_threadsafe(connection.close)
    assert closed.wait(WAIT)
    assert isinstance(state["error"], exceptions.ConnectionClosedByClient)


def test_add_callback_threadsafe_checks_its_argument(run: Any, params: Any) -> None:
    async def scenario() -> None:
        opened = await open_connection(params())
        with pytest.raises(TypeError, match="callback"):
            opened.connection.add_callback_threadsafe(None)  # type: ignore[arg-type]
        await opened.close()

    run(scenario)
