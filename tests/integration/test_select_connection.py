"""SelectConnection / Connection against the real broker: lifecycle, properties, callbacks, IOLoop.

Theory of operation: every test drives the select IOLoop through
:class:`select_helpers.Harness`, whose waits all have deadlines; callbacks only record their
arguments and the assertions run afterwards, outside the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from select_helpers import Harness, SharedConnection, params_for, unique

import amqp_core as pika
from amqp_core import exceptions, frame, spec
from amqp_core.adapters import select_connection
from amqp_core.adapters.select_connection import IOLoop, SelectConnection
from amqp_core.channel import Channel
from amqp_core.testing.fault_proxy import unused_port


@pytest.fixture(scope="module")
def shared(broker: Any) -> Iterator[SharedConnection]:
    connection = SharedConnection(broker)
    yield connection
    connection.close()


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


# ---------------------------------------------------------------- lifecycle and state


def test_open_state_properties_and_close(h: Harness, broker: Any) -> None:
    params = params_for(broker)
    conn = SelectConnection(
        params,
        on_open_callback=h.cb("open"),
        on_open_error_callback=h.cb("open_error"),
        on_close_callback=h.cb("close"),
        custom_ioloop=h.ioloop,
    )
    # nothing is open before the loop runs
    assert not conn.is_open and not conn.is_closing and not conn.is_closed
    assert conn.ioloop is h.ioloop
    assert conn.params is params
    (opened,) = h.wait("open")
    assert opened is conn
    assert conn.is_open and not conn.is_closing and not conn.is_closed

    props = conn.server_properties
    product = props["product"]
    assert (product.decode() if isinstance(product, bytes) else product) == "RabbitMQ"
    caps = conn.server_capabilities
    assert caps["publisher_confirms"] is True
    assert conn.publisher_confirms is True
    assert conn.basic_nack is True
    assert conn.consumer_cancel_notify is True
    assert conn.exchange_exchange_bindings is True

    conn.close(reply_code=200, reply_text="bye from test")
    assert conn.is_closing and not conn.is_open and not conn.is_closed
    connection, error = h.wait("close")
    assert connection is conn
    assert isinstance(error, exceptions.ConnectionClosedByClient)
    assert (error.reply_code, error.reply_text) == (200, "bye from test")
    assert (error.host, error.port) == (broker.host, broker.port)
    assert conn.is_closed and not conn.is_open and not conn.is_closing
    assert h.count("open_error") == 0
    assert h.count("close") == 1


def test_close_twice_and_on_closed_raise(h: Harness, broker: Any) -> None:
    conn = h.connect(params_for(broker))
    conn.close()
    with pytest.raises(exceptions.ConnectionWrongStateError):
        conn.close()
    h.wait(lambda: conn.is_closed)
    with pytest.raises(exceptions.ConnectionWrongStateError):
        conn.close()
    with pytest.raises(exceptions.ConnectionWrongStateError):
        conn.channel()
    with pytest.raises(exceptions.ConnectionWrongStateError):
        conn.update_secret("guest", "rotated")


def test_default_close_reply(h: Harness, broker: Any) -> None:
    conn = h.connect(params_for(broker), name="c")
    conn.close()
    _, error = h.wait("c.close")
    assert isinstance(error, exceptions.ConnectionClosedByClient)
    assert (error.reply_code, error.reply_text) == (200, "Normal shutdown")


def test_added_callbacks_all_run_in_order(h: Harness, broker: Any) -> None:
    order: list[str] = []
    conn = SelectConnection(params_for(broker), custom_ioloop=h.ioloop)
    conn.add_on_open_callback(lambda c: order.append("open1"))
    conn.add_on_open_callback(h.cb("open2"))
    conn.add_on_close_callback(lambda c, e: order.append("close1"))
    conn.add_on_close_callback(h.cb("close2"))
    (opened,) = h.wait("open2")
    assert opened is conn and order == ["open1"]
    conn.close()
    _, error = h.wait("close2")
    assert isinstance(error, exceptions.ConnectionClosedByClient)
    assert order == ["open1", "close1"]


def test_close_while_opening_reports_open_aborted(h: Harness, broker: Any) -> None:
    conn = SelectConnection(
        params_for(broker),
        h.cb("open"),
        h.cb("open_error"),
        h.cb("close"),
        custom_ioloop=h.ioloop,
    )
    conn.close()
    connection, error = h.wait("open_error")
    assert connection is conn
    assert isinstance(error, exceptions.ConnectionOpenAborted)
    h.run_for(0.3)  # nothing else arrives later (no open, no close callback)
    assert h.count("open") == 0 and h.count("close") == 0 and h.count("open_error") == 1
    assert conn.is_closed


def test_open_error_callback_replaces_or_adds(h: Harness) -> None:
    params = pika.ConnectionParameters(host="127.0.0.1", port=unused_port())
    conn = SelectConnection(params, on_open_error_callback=h.cb("ctor"), custom_ioloop=h.ioloop)
    conn.add_on_open_error_callback(h.cb("replacing"))  # remove_default=True drops "ctor"
    conn.add_on_open_error_callback(h.cb("added"), remove_default=False)
    _, error = h.wait("added")
    assert h.count("replacing") == 1 and h.count("ctor") == 0
    assert isinstance(error, exceptions.AMQPConnectionError)
    assert (error.host, error.port) == ("127.0.0.1", params.port)
    assert h.last("replacing")[1] is error


def test_channel_numbers_and_open_callback(shared: SharedConnection) -> None:
    h, conn = shared.h, shared.conn
    name = h.fresh("chopen")
    channel = conn.channel(channel_number=77, on_open_callback=h.cb(name))
    assert isinstance(channel, Channel)
    assert channel.channel_number == 77 and int(channel) == 77
    assert channel.is_opening if hasattr(channel, "is_opening") else not channel.is_open
    (opened,) = h.wait(name)
    assert opened is channel and channel.is_open
    with pytest.raises(exceptions.InvalidChannelNumber):
        conn.channel(channel_number=77)
    automatic = h.channel(conn)
    assert automatic.channel_number not in (0, 77)
    for ch in (channel, automatic):
        ch.add_on_close_callback(h.cb(f"closed{ch.channel_number}"))
        ch.close()
    h.wait(lambda: channel.is_closed and automatic.is_closed)
    # the number is free again once the channel closed
    again = h.channel(conn, channel_number=77)
    assert again.is_open
    again.close()
    h.wait(lambda: again.is_closed)


def test_update_secret(shared: SharedConnection) -> None:
    h, conn = shared.h, shared.conn
    name = h.fresh("secret")
    conn.update_secret("guest", "rotation test", callback=h.cb(name))
    (reply,) = h.wait(name)
    assert isinstance(reply, frame.Method)
    assert isinstance(reply.method, spec.Connection.UpdateSecretOk)
    assert conn.is_open


def test_connection_close_closes_channels_with_client_reason(h: Harness, broker: Any) -> None:
    conn = h.connect(params_for(broker), name="c")
    first, second = h.channel(conn), h.channel(conn)
    first.add_on_close_callback(h.cb("first"))
    second.add_on_close_callback(h.cb("second"))
    # an RPC still outstanding when the connection closes is simply never answered
    second.queue_declare(unique("pending"), exclusive=True, callback=h.cb("never-mind"))
    conn.close(reply_code=200, reply_text="closing all")
    assert first.is_closing and second.is_closing  # as in pika: channels close first
    with pytest.raises(exceptions.ChannelWrongStateError):
        first.basic_publish("", "q", b"too late")
    h.wait("c.close")
    for name, ch in (("first", first), ("second", second)):
        closed_ch, reason = h.last(name)
        assert closed_ch is ch and ch.is_closed
        assert isinstance(reason, exceptions.ChannelClosedByClient)
        assert (reason.reply_code, reason.reply_text) == (200, "closing all")


def test_close_from_a_consumer_stops_deliveries(
    h: Harness, broker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    conn = h.connect(params_for(broker), name="c")
    channel = h.channel(conn)
    queue = h.call(channel.queue_declare, "", exclusive=True).method.queue
    h.call(channel.confirm_delivery, h.cb("confirm"))
    for index in range(20):
        channel.basic_publish("", queue, b"%d" % index)
    h.wait(lambda: h.calls["confirm"] and h.calls["confirm"][-1][0].method.delivery_tag == 20)
    record = h.cb("msg")

    def close_on_first(ch: Channel, method: Any, properties: Any, body: bytes) -> None:
        record(ch, method, properties, body)
        ch.connection.close()

    with caplog.at_level(logging.WARNING):
        channel.basic_consume(queue, close_on_first)
        _, error = h.wait("c.close")
    assert isinstance(error, exceptions.ConnectionClosedByClient)
    assert h.count("msg") == 1  # the deliveries already in flight were not handed over
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_heartbeat_callable_gets_connection_and_broker_value(h: Harness, broker: Any) -> None:
    seen: list[tuple[Any, int]] = []

    def choose(connection: Any, server_value: int) -> int:
        seen.append((connection, server_value))
        return 0

    conn = h.connect(params_for(broker, heartbeat=choose))
    assert len(seen) == 1 and seen[0][0] is conn
    assert isinstance(seen[0][1], int) and seen[0][1] > 0  # RabbitMQ proposes 60


def test_url_parameters_and_erase_on_connect(h: Harness, broker: Any) -> None:
    params = pika.URLParameters(f"amqp://guest:guest@{broker.host}:{broker.port}/%2F?heartbeat=5")
    conn = h.connect(params)
    assert conn.params is params and params.heartbeat == 5
    credentials = pika.PlainCredentials("guest", "guest", erase_on_connect=True)
    conn = h.connect(params_for(broker, credentials=credentials))
    assert conn.is_open
    # the parameters hold a copy of the credentials (as in pika): that copy is erased
    erased = conn.params.credentials
    assert isinstance(erased, pika.PlainCredentials)
    assert erased.username is None and erased.password is None


def test_channel_max_is_enforced(h: Harness, broker: Any) -> None:
    conn = h.connect(params_for(broker, channel_max=2))
    first, second = h.channel(conn), h.channel(conn)
    assert {first.channel_number, second.channel_number} == {1, 2}
    with pytest.raises(exceptions.NoFreeChannels):
        conn.channel()
    with pytest.raises(exceptions.InvalidChannelNumber):
        conn.channel(channel_number=3)
    with pytest.raises(exceptions.InvalidChannelNumber):
        conn.channel(channel_number=0)
    first.close()
    h.wait(lambda: first.is_closed)
    assert h.channel(conn).channel_number == first.channel_number


# ---------------------------------------------------------------- IOLoop and SELECT_TYPE


def test_ioloop_call_later_order_and_remove_timeout() -> None:
    ioloop = IOLoop()
    fired: list[str] = []
    try:
        start = time.monotonic()
        ioloop.call_later(0.15, lambda: fired.append("late"))
        ioloop.call_later(0.05, lambda: fired.append("early"))
        removed = ioloop.call_later(0.1, lambda: fired.append("removed"))
        ioloop.remove_timeout(removed)
        ioloop.remove_timeout(removed)  # twice is harmless
        ioloop.call_later(0.2, ioloop.stop)
        guard = ioloop.call_later(5.0, ioloop.stop)
        ioloop.start()
        elapsed = time.monotonic() - start
        ioloop.remove_timeout(guard)
        assert fired == ["early", "late"]
        assert 0.18 <= elapsed < 2.0
    finally:
        ioloop.close()


def test_ioloop_add_callback_threadsafe_wakes_a_blocked_loop() -> None:
    ioloop = IOLoop()
    ran_on: list[int] = []
    try:
        guard = ioloop.call_later(5.0, ioloop.stop)

        def from_thread() -> None:
            time.sleep(0.1)
            ioloop.add_callback_threadsafe(lambda: ran_on.append(threading.get_ident()))
            ioloop.add_callback_threadsafe(ioloop.stop)

        worker = threading.Thread(target=from_thread)
        start = time.monotonic()
        worker.start()
        ioloop.start()  # blocks in select with only the 5 s guard timer pending
        elapsed = time.monotonic() - start
        worker.join(5.0)
        ioloop.remove_timeout(guard)
        assert ran_on == [threading.get_ident()]
        assert elapsed < 2.0
    finally:
        ioloop.close()


def test_ioloop_stop_before_start_and_close() -> None:
    ioloop = IOLoop()
    ioloop.stop()
    start = time.monotonic()
    ioloop.start()  # returns at once
    assert time.monotonic() - start < 1.0
    ioloop.close()
    ioloop.close()  # idempotent
    with pytest.raises(RuntimeError):
        ioloop.start()


def test_connection_add_callback_threadsafe(shared: SharedConnection) -> None:
    h, conn = shared.h, shared.conn
    name = h.fresh("threadsafe")
    caller = threading.Thread(target=lambda: conn.add_callback_threadsafe(h.cb(name)))
    caller.start()
    h.wait(name)
    caller.join(5.0)
    with pytest.raises(TypeError, match="callback"):
        conn.add_callback_threadsafe(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("select_type", [None, "select", "poll"])
def test_select_type(broker: Any, monkeypatch: pytest.MonkeyPatch, select_type: str | None) -> None:
    monkeypatch.setattr(select_connection, "SELECT_TYPE", select_type)
    events: list[Any] = []
    conn = SelectConnection(
        params_for(broker),
        on_open_callback=lambda c: events.append("open"),
        on_open_error_callback=lambda c, e: events.append(e),
        on_close_callback=lambda c, e: events.append(e),
    )
    ioloop = conn.ioloop
    assert isinstance(ioloop, IOLoop)
    if select_type is not None:
        assert ioloop.poller_type == select_type
    h = Harness(ioloop)
    try:
        h.wait(lambda: events)
        assert events == ["open"]
        channel = h.channel(conn)
        reply = h.call(channel.queue_declare, "", exclusive=True)
        assert reply.method.queue.startswith("amq.gen-")
        conn.close()
        h.wait(lambda: len(events) == 2)
        assert isinstance(events[1], exceptions.ConnectionClosedByClient)
    finally:
        h.close()


# ---------------------------------------------------------------- bad input


def test_constructor_rejects_bad_arguments(broker: Any) -> None:
    ioloop = IOLoop()
    try:
        params = params_for(broker)
        with pytest.raises(TypeError, match="parameters"):
            SelectConnection("amqp://guest:guest@127.0.0.1/", custom_ioloop=ioloop)  # type: ignore[arg-type]
        for name in ("on_open_callback", "on_open_error_callback", "on_close_callback"):
            with pytest.raises(TypeError, match=name):
                SelectConnection(params, custom_ioloop=ioloop, **{name: "not callable"})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="custom_ioloop"):
            SelectConnection(params, custom_ioloop=object())
        with pytest.raises(TypeError, match="internal_connection_workflow"):
            SelectConnection(
                params,
                custom_ioloop=ioloop,
                internal_connection_workflow="yes",  # type: ignore[arg-type]
            )
        with pytest.raises(TypeError, match="on_done"):
            SelectConnection.create_connection([params], "nope", custom_ioloop=ioloop)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="connection_configs"):
            SelectConnection.create_connection([], lambda r: None, custom_ioloop=ioloop)
        with pytest.raises(TypeError, match="connection_configs"):
            SelectConnection.create_connection(
                ["amqp://"],  # type: ignore[list-item]
                lambda r: None,
                custom_ioloop=ioloop,
            )
        # nothing was scheduled by the rejected calls: the loop has no work
        ioloop.call_later(0.05, ioloop.stop)
        ioloop.start()
    finally:
        ioloop.close()


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"port": "amqp"}, TypeError, "port"),
        ({"port": 70000}, ValueError, "port"),
        ({"host": 127}, TypeError, "host"),
        ({"heartbeat": "10"}, TypeError, "heartbeat"),
        ({"heartbeat": -1}, ValueError, "heartbeat"),
        ({"connection_attempts": 0}, ValueError, "connection_attempts"),
        ({"retry_delay": "1"}, TypeError, "retry_delay"),
        ({"socket_timeout": -1.0}, ValueError, "socket_timeout"),
        ({"stack_timeout": "2"}, TypeError, "stack_timeout"),
        ({"blocked_connection_timeout": -5}, ValueError, "blocked_connection_timeout"),
        ({"channel_max": "x"}, TypeError, "channel_max"),
        ({"frame_max": 100}, ValueError, "frame_max"),
        ({"credentials": ("guest", "guest")}, TypeError, "credentials"),
        ({"ssl_options": object()}, TypeError, "ssl_options"),
        ({"tcp_options": {"TCP_BOGUS": 1}}, ValueError, "TCP_BOGUS"),
        ({"tcp_options": "TCP_KEEPIDLE=1"}, TypeError, "tcp_options"),
        ({"virtual_host": 5}, TypeError, "virtual_host"),
        ({"client_properties": ["a"]}, TypeError, "client_properties"),
    ],
)
def test_parameters_reject_bad_values(
    kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        pika.ConnectionParameters(**kwargs)


def test_connection_methods_reject_bad_arguments(shared: SharedConnection) -> None:
    h, conn = shared.h, shared.conn
    with pytest.raises(TypeError, match="channel_number"):
        conn.channel(channel_number="2")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_open_callback"):
        conn.channel(on_open_callback="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reply_code"):
        conn.close(reply_code="200")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reply_text"):
        conn.close(reply_text=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="new_secret"):
        conn.update_secret(123, "why")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reason"):
        conn.update_secret("guest", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="callback"):
        conn.update_secret("guest", "why", callback="x")  # type: ignore[arg-type]
    for method in (
        conn.add_on_close_callback,
        conn.add_on_open_callback,
        conn.add_on_open_error_callback,
        conn.add_on_connection_blocked_callback,
        conn.add_on_connection_unblocked_callback,
    ):
        with pytest.raises(TypeError, match="callback"):
            method("not callable")  # type: ignore[arg-type]
    # none of that was sent or half-done: the connection still works and is not closing
    assert conn.is_open and not conn.is_closing
    channel = h.channel(conn)
    reply = h.call(channel.queue_declare, "", exclusive=True)
    assert isinstance(reply.method, spec.Queue.DeclareOk)
    channel.close()
    h.wait(lambda: channel.is_closed)


def test_ioloop_rejects_bad_arguments() -> None:
    ioloop = IOLoop()
    try:
        with pytest.raises(TypeError, match="delay"):
            ioloop.call_later("1", lambda: None)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="delay"):
            ioloop.call_later(-1, lambda: None)
        with pytest.raises(TypeError, match="callback"):
            ioloop.call_later(1, None)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="callback"):
            ioloop.add_callback_threadsafe("x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="timeout_handle"):
            ioloop.remove_timeout(object())  # type: ignore[arg-type]
        with pytest.raises((TypeError, ValueError), match="poller_type"):
            IOLoop("kpoll")
    finally:
        ioloop.close()
