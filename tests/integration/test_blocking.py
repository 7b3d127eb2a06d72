"""``BlockingConnection`` / ``BlockingChannel`` against the real broker: pika's API and results.

Theory of operation: each test opens its own connection (closed at teardown) and uses its own
uniquely named queues and exchanges.  Waiting is done by the library's own bounded calls
(``process_data_events`` with a time limit, ``sleep``) inside loops that have deadlines, so a
broken feature fails the test instead of hanging it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from blocking_helpers import params_for, unique

import amqp_core as pika
from amqp_core import exceptions, frame, spec
from amqp_core.adapters.blocking_connection import BlockingChannel, BlockingConnection
from amqp_core.exchange_type import ExchangeType

DEADLINE = 10.0


@pytest.fixture
def conn(broker: Any) -> Iterator[BlockingConnection]:
    connection = pika.BlockingConnection(params_for(broker))
    yield connection
    if connection.is_open:
        connection.close()


@pytest.fixture
def ch(conn: BlockingConnection) -> BlockingChannel:
    return conn.channel()


def pump_until(conn: BlockingConnection, condition: Any, timeout: float = DEADLINE) -> None:
    """Call process_data_events until ``condition()`` holds (bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        left = deadline - time.monotonic()
        assert left > 0, "condition not reached in time"
        conn.process_data_events(time_limit=min(left, 0.2))


def temp_queue(ch: BlockingChannel, **arguments: Any) -> str:
    name = unique("q")
    ch.queue_declare(name, auto_delete=False, arguments=arguments or None)
    return name


def message_count(ch: BlockingChannel, queue: str) -> int:
    return int(ch.queue_declare(queue, passive=True).method.message_count)


def assert_count(ch: BlockingChannel, queue: str, expected: int) -> None:
    """The broker counts routed messages a little later than it confirms the publish."""
    deadline = time.monotonic() + DEADLINE
    while (count := message_count(ch, queue)) != expected:
        assert time.monotonic() < deadline, f"{queue} holds {count}, not {expected}"
        ch.connection.sleep(0.01)


# ------------------------------------------------------------------ connection


def test_connection_properties_and_context_manager(broker: Any) -> None:
    with pika.BlockingConnection(params_for(broker)) as connection:
        assert connection.is_open and not connection.is_closed
        assert connection.server_properties["product"] in (b"RabbitMQ", "RabbitMQ")
        for name in ("basic_nack", "consumer_cancel_notify", "exchange_exchange_bindings",
                     "publisher_confirms"):
            assert getattr(connection, name) is True
            assert getattr(connection, f"{name}_supported") is True
        assert "OPEN" in repr(connection)
    assert connection.is_closed and not connection.is_open
    with pytest.raises(exceptions.ConnectionWrongStateError):
        connection.close()
    with pytest.raises(exceptions.ConnectionWrongStateError):
        connection.process_data_events()
    with pytest.raises(exceptions.ConnectionWrongStateError):
        connection.channel()
    with pytest.raises(exceptions.ConnectionWrongStateError):
        connection.add_callback_threadsafe(lambda: None)


def test_default_and_url_parameters(broker: Any) -> None:
    with pika.BlockingConnection(pika.URLParameters(broker.url)) as connection:
        assert connection.is_open
    with pika.BlockingConnection([pika.URLParameters(broker.url)]) as connection:
        assert connection.is_open


def test_bad_parameters_are_type_errors() -> None:
    with pytest.raises(TypeError, match="parameters"):
        pika.BlockingConnection("amqp://localhost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-empty"):
        pika.BlockingConnection([])
    with pytest.raises(TypeError, match="Parameters"):
        pika.BlockingConnection([object()])


def test_channel_numbers(conn: BlockingConnection) -> None:
    first = conn.channel()
    chosen = conn.channel(channel_number=42)
    assert chosen.channel_number == 42 and int(chosen) == 42
    assert first.channel_number != 42
    with pytest.raises(exceptions.InvalidChannelNumber):
        conn.channel(channel_number=42)
    assert first.connection is conn
    assert "OPEN" in repr(first)


def test_update_secret(conn: BlockingConnection) -> None:
    conn.update_secret("guest", "token refreshed")
    assert conn.is_open


# ------------------------------------------------------------------ declare & co


def test_queue_and_exchange_methods_return_method_frames(ch: BlockingChannel) -> None:
    declared = ch.queue_declare("", exclusive=True)
    assert isinstance(declared, frame.Method)
    assert isinstance(declared.method, spec.Queue.DeclareOk)
    server_named = declared.method.queue
    assert server_named.startswith("amq.gen-")

    source, destination = unique("src"), unique("dst")
    assert isinstance(ch.exchange_declare(source, "fanout").method, spec.Exchange.DeclareOk)
    assert isinstance(
        ch.exchange_declare(destination, ExchangeType.topic).method,
        spec.Exchange.DeclareOk,
    )
    assert isinstance(ch.exchange_bind(destination, source, "k").method, spec.Exchange.BindOk)
    assert isinstance(ch.queue_bind(server_named, destination, "#").method, spec.Queue.BindOk)
    for number in range(3):
        ch.basic_publish(source, "k", f"m{number}")
    assert_count(ch, server_named, 3)
    purged = ch.queue_purge(server_named)
    assert isinstance(purged.method, spec.Queue.PurgeOk) and purged.method.message_count == 3
    assert isinstance(ch.queue_unbind(server_named, destination, "#").method, spec.Queue.UnbindOk)
    unbound = ch.exchange_unbind(destination, source, "k")
    assert isinstance(unbound.method, spec.Exchange.UnbindOk)
    assert isinstance(ch.exchange_delete(destination).method, spec.Exchange.DeleteOk)
    assert isinstance(ch.exchange_delete(source, if_unused=False).method, spec.Exchange.DeleteOk)
    ch.basic_publish("", server_named, b"left")
    deleted = ch.queue_delete(server_named)
    assert isinstance(deleted.method, spec.Queue.DeleteOk) and deleted.method.message_count == 1


def test_argument_validation(ch: BlockingChannel) -> None:
    with pytest.raises(TypeError, match="queue"):
        ch.queue_declare(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="arguments"):
        ch.queue_declare("x", arguments=[1])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="prefetch_count"):
        ch.basic_qos(prefetch_count="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefetch_count"):
        ch.basic_qos(prefetch_count=70000)
    with pytest.raises(TypeError, match="body"):
        ch.basic_publish("", "q", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="exchange"):
        ch.basic_publish(None, "q", b"")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_message_callback"):
        ch.basic_consume("q", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="active"):
        ch.flow(1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="inactivity_timeout"):
        next(ch.consume("q", inactivity_timeout=-1))
    assert ch.is_open


def test_qos_recover_flow_and_transactions(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    assert ch.basic_qos(prefetch_count=10) is None
    assert ch.basic_qos(prefetch_size=0, prefetch_count=5, global_qos=True) is None
    assert ch.basic_recover(requeue=True) is None
    assert ch.flow(True) is True
    assert isinstance(ch.tx_select().method, spec.Tx.SelectOk)
    ch.basic_publish("", queue, b"rolled back")
    assert isinstance(ch.tx_rollback().method, spec.Tx.RollbackOk)
    assert_count(ch, queue, 0)
    ch.basic_publish("", queue, b"committed")
    assert isinstance(ch.tx_commit().method, spec.Tx.CommitOk)
    assert_count(ch, queue, 1)
    ch.queue_delete(queue)


# ------------------------------------------------------------------ publish & get


def test_basic_get_properties_and_acks(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    assert ch.basic_get(queue) == (None, None, None)
    properties = pika.BasicProperties(
        content_type="text/plain", headers={"n": 1, "s": "x"}, delivery_mode=2,
        correlation_id="c-1",
    )
    ch.basic_publish("", queue, "héllo", properties)
    method, got, body = ch.basic_get(queue)
    assert isinstance(method, spec.Basic.GetOk)
    assert body == "héllo".encode()
    assert got is not None
    assert got.content_type == "text/plain" and got.correlation_id == "c-1"
    assert got.headers == {"n": 1, "s": "x"} and got.delivery_mode == 2
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, _, _ = ch.basic_get(queue)
    assert method.redelivered is True
    ch.basic_reject(method.delivery_tag, requeue=False)
    ch.basic_publish("", queue, b"ack me")
    method, _, body = ch.basic_get(queue)
    ch.basic_ack(method.delivery_tag)
    assert ch.basic_get(queue) == (None, None, None)
    ch.basic_publish("", queue, b"auto")
    method, _, body = ch.basic_get(queue, auto_ack=True)
    assert body == b"auto" and message_count(ch, queue) == 0
    ch.queue_delete(queue)


def test_large_and_many_messages(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    big = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4: several body frames
    ch.basic_publish("", queue, big)
    for number in range(2000):  # well past the 64 KiB write threshold
        ch.basic_publish("", queue, b"%d" % number)
    _, _, body = ch.basic_get(queue, auto_ack=True)
    assert body == big
    assert_count(ch, queue, 2000)
    ch.queue_delete(queue)


def test_coalesced_publishes_are_written_before_process_data_events_returns(
    broker: Any, conn: BlockingConnection, ch: BlockingChannel
) -> None:
    queue = temp_queue(ch)
    for number in range(10):
        ch.basic_publish("", queue, b"%d" % number)
    conn.process_data_events()
    with pika.BlockingConnection(params_for(broker)) as other:
        reader = other.channel()
        deadline = time.monotonic() + DEADLINE
        while message_count(reader, queue) < 10:
            assert time.monotonic() < deadline
            other.sleep(0.02)
    ch.queue_delete(queue)


# ------------------------------------------------------------------ consumers


def test_consumer_callbacks_run_only_from_process_data_events(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    queue = temp_queue(ch)
    received: list[tuple[Any, Any, Any, bytes]] = []

    def on_message(channel: Any, method: Any, properties: Any, body: bytes) -> None:
        received.append((channel, method, properties, body))
        channel.basic_ack(method.delivery_tag)

    tag = ch.basic_consume(queue, on_message)
    assert ch.consumer_tags == [tag]
    for number in range(5):
        ch.basic_publish("", queue, b"%d" % number)
    ch.queue_declare(queue, passive=True)  # a round trip: deliveries arrive, are not dispatched
    ch.basic_qos(prefetch_count=100)
    ch.confirm_delivery()
    ch.basic_publish("", queue, b"5")  # waits for its confirm: still no dispatch
    assert received == []
    pump_until(conn, lambda: len(received) == 6)
    assert [item[3] for item in received] == [b"0", b"1", b"2", b"3", b"4", b"5"]
    channel, method, properties, _ = received[0]
    assert channel is ch
    assert isinstance(method, spec.Basic.Deliver) and method.consumer_tag == tag
    assert isinstance(properties, spec.BasicProperties)
    assert ch.basic_cancel(tag) == []
    assert ch.consumer_tags == []
    assert ch.basic_cancel(tag) == []  # unknown now: warning, empty list
    ch.queue_delete(queue)


def test_start_consuming_until_stop_consuming(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    for number in range(20):
        ch.basic_publish("", queue, b"%d" % number)
    bodies: list[bytes] = []
    errors: list[BaseException] = []

    def on_message(channel: BlockingChannel, method: Any, _props: Any, body: bytes) -> None:
        bodies.append(body)
        channel.basic_ack(method.delivery_tag)
        if len(bodies) == 1:
            try:
                channel.start_consuming()
            except exceptions.ReentrancyError as error:
                errors.append(error)
        if len(bodies) == 20:
            channel.stop_consuming()

    ch.basic_qos(prefetch_count=5)
    ch.basic_consume(queue, on_message)
    ch.connection.call_later(DEADLINE, ch.stop_consuming)  # safety net
    ch.start_consuming()
    assert bodies == [b"%d" % number for number in range(20)]
    assert len(errors) == 1
    assert ch.consumer_tags == []
    assert_count(ch, queue, 0)
    ch.queue_delete(queue)


def test_basic_cancel_returns_pending_auto_ack_messages(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    for number in range(3):
        ch.basic_publish("", queue, b"%d" % number)
    assert_count(ch, queue, 3)
    tag = ch.basic_consume(queue, lambda *args: None, auto_ack=True)
    deadline = time.monotonic() + DEADLINE
    pending: list[Any] = []
    while message_count(ch, queue) and time.monotonic() < deadline:
        pass  # each passive declare is a round trip that reads deliveries without dispatching
    message_count(ch, queue)
    pending = ch.basic_cancel(tag)
    assert [body for _method, _props, body in pending] == [b"0", b"1", b"2"]
    assert isinstance(pending[0][0], spec.Basic.Deliver)
    ch.queue_delete(queue)


def test_basic_cancel_requeues_pending_ack_mode_messages(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    for number in range(3):
        ch.basic_publish("", queue, b"%d" % number)
    assert_count(ch, queue, 3)
    tag = ch.basic_consume(queue, lambda *args: None)
    deadline = time.monotonic() + DEADLINE
    while message_count(ch, queue) and time.monotonic() < deadline:
        pass
    message_count(ch, queue)
    assert ch.basic_cancel(tag) == []
    assert_count(ch, queue, 3)
    ch.queue_delete(queue)


def test_consume_generator(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    for number in range(5):
        ch.basic_publish("", queue, b"%d" % number)
    ch.basic_qos(prefetch_count=10)
    bodies = []
    for method, properties, body in ch.consume(queue, inactivity_timeout=DEADLINE):
        assert method is not None, "inactivity before the messages arrived"
        assert isinstance(properties, spec.BasicProperties)
        bodies.append(body)
        ch.basic_ack(method.delivery_tag)
        if len(bodies) == 2:
            break
    assert bodies == [b"0", b"1"]
    assert ch.consumer_tags, "the generator's consumer stays active until cancel()"
    deadline = time.monotonic() + DEADLINE
    while ch.get_waiting_message_count() < 3:
        assert time.monotonic() < deadline
        ch.connection.process_data_events(0.05)
    with pytest.raises(ValueError, match="different params"):
        next(ch.consume(queue, auto_ack=True))
    # the same parameters resume the same consumer
    method, _, body = next(ch.consume(queue))
    assert body == b"2"
    assert ch.get_waiting_message_count() == 2
    assert ch.cancel() == 2  # the two held, not yielded, are requeued
    assert ch.consumer_tags == [] and ch.get_waiting_message_count() == 0
    assert ch.cancel() == 0
    assert_count(ch, queue, 2)
    ch.basic_reject(method.delivery_tag)
    assert_count(ch, queue, 3)
    ch.queue_delete(queue)


def test_consume_generator_inactivity_and_auto_ack(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    started = time.monotonic()
    items = ch.consume(queue, auto_ack=True, inactivity_timeout=0.2)
    assert next(items) == (None, None, None)
    assert 0.15 <= time.monotonic() - started < 5
    ch.basic_publish("", queue, b"late")
    method, _, body = next(items)
    assert body == b"late" and isinstance(method, spec.Basic.Deliver)
    assert ch.cancel() == 0
    with pytest.raises(StopIteration):
        next(items)
    ch.queue_delete(queue)


def test_consume_generator_ends_when_broker_cancels(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    queue = temp_queue(ch)
    other = conn.channel()
    items = ch.consume(queue, inactivity_timeout=0.1)
    assert next(items) == (None, None, None)
    other.queue_delete(queue)
    rest = list(_bounded(items, DEADLINE))
    assert all(item == (None, None, None) for item in rest)
    assert ch.consumer_tags == []


def _bounded(items: Iterator[Any], timeout: float) -> Iterator[Any]:
    deadline = time.monotonic() + timeout
    for item in items:
        assert time.monotonic() < deadline, "generator did not end"
        yield item


def test_broker_cancel_calls_on_cancel_callback(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    queue = temp_queue(ch)
    cancelled: list[Any] = []
    ch.add_on_cancel_callback(cancelled.append)
    tag = ch.basic_consume(queue, lambda *args: None)
    conn.channel().queue_delete(queue)
    assert ch.consumer_tags == [tag]  # not until the cancellation is dispatched
    pump_until(conn, lambda: bool(cancelled))
    assert isinstance(cancelled[0], frame.Method)
    assert isinstance(cancelled[0].method, spec.Basic.Cancel)
    assert cancelled[0].method.consumer_tag == tag
    assert ch.consumer_tags == []


def test_start_consuming_ends_when_broker_cancels(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    queue = temp_queue(ch)
    ch.basic_consume(queue, lambda *args: None)
    conn.channel().queue_delete(queue)
    conn.call_later(DEADLINE, lambda: pytest.fail("start_consuming did not end"))
    ch.start_consuming()
    assert ch.consumer_tags == []


def test_duplicate_consumer_tag(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    ch.basic_consume(queue, lambda *args: None, consumer_tag="mine")
    with pytest.raises(exceptions.DuplicateConsumerTag):
        ch.basic_consume(queue, lambda *args: None, consumer_tag="mine")
    ch.stop_consuming("mine")
    assert ch.consumer_tags == []
    ch.queue_delete(queue)


# ------------------------------------------------------------------ confirms


def test_per_message_confirms(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    ch.confirm_delivery()
    ch.confirm_delivery()  # a second call is logged and ignored, as in pika
    assert ch.basic_publish("", queue, b"confirmed") is None
    assert ch.basic_publish("", queue, b"mandatory, routed", mandatory=True) is None
    with pytest.raises(exceptions.UnroutableError) as caught:
        ch.basic_publish("", unique("nowhere"), b"lost", mandatory=True)
    (returned,) = caught.value.messages
    assert isinstance(returned.method, spec.Basic.Return)
    assert returned.method.reply_code == 312 and returned.body == b"lost"
    assert_count(ch, queue, 2)
    full = temp_queue(ch, **{"x-max-length": 0, "x-overflow": "reject-publish"})
    with pytest.raises(exceptions.NackError):
        ch.basic_publish("", full, b"rejected")
    assert ch.is_open
    ch.wait_for_confirms()  # nothing outstanding in per-message mode
    ch.queue_delete(queue)
    ch.queue_delete(full)


def test_return_callback_without_confirms(conn: BlockingConnection, ch: BlockingChannel) -> None:
    returned: list[Any] = []
    ch.add_on_return_callback(lambda *args: returned.append(args))
    ch.basic_publish("", unique("nowhere"), b"bounce", mandatory=True)
    pump_until(conn, lambda: bool(returned))
    channel, method, properties, body = returned[0]
    assert channel is ch and isinstance(method, spec.Basic.Return) and body == b"bounce"
    assert isinstance(properties, spec.BasicProperties)


def test_confirm_window_publishes_and_waits_for_all(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    with ch.confirm_window(max_outstanding=100) as same:
        assert same is ch
        for number in range(3000):
            ch.basic_publish("", queue, b"%d" % number)
        ch.wait_for_confirms(timeout=DEADLINE)  # a checkpoint inside the window
        for number in range(500):
            ch.basic_publish("", queue, b"%d" % number)
    assert_count(ch, queue, 3500)
    # back to per-message confirms after the window
    with pytest.raises(exceptions.UnroutableError):
        ch.basic_publish("", unique("nowhere"), b"x", mandatory=True)
    ch.queue_delete(queue)


def test_confirm_window_reports_nacks_and_returns(ch: BlockingChannel) -> None:
    full = temp_queue(ch, **{"x-max-length": 0, "x-overflow": "reject-publish"})
    ok = temp_queue(ch)
    properties = pika.BasicProperties(message_id="m-7")
    with pytest.raises(exceptions.NackError) as caught:
        with ch.confirm_window(max_outstanding=10):
            for number in range(20):
                ch.basic_publish("", ok, b"%d" % number)
            ch.basic_publish("", full, b"nacked", properties)
            ch.basic_publish("", unique("nowhere"), b"returned", mandatory=True)
    messages = caught.value.messages
    assert len(messages) == 2
    nacked, returned = messages
    assert isinstance(nacked.method, spec.Basic.Publish)
    assert nacked.method.routing_key == full and nacked.body == b"nacked"
    assert nacked.properties.message_id == "m-7"
    assert isinstance(returned.method, spec.Basic.Return) and returned.body == b"returned"
    with pytest.raises(exceptions.UnroutableError) as unroutable:
        with ch.confirm_window():
            ch.basic_publish("", unique("nowhere"), "text", mandatory=True)
    assert [message.body for message in unroutable.value.messages] == [b"text"]
    ch.wait_for_confirms()  # failures are reported once
    assert_count(ch, ok, 20)
    ch.queue_delete(full)
    ch.queue_delete(ok)


def test_confirm_window_misuse(ch: BlockingChannel) -> None:
    with pytest.raises(ValueError, match="max_outstanding"):
        ch.confirm_window(max_outstanding=0)
    with pytest.raises(TypeError, match="max_outstanding"):
        ch.confirm_window(max_outstanding=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        ch.wait_for_confirms(timeout=-1)
    with ch.confirm_window():
        with pytest.raises(RuntimeError, match="already open"):
            ch.confirm_window().__enter__()


def test_confirm_window_left_by_exception_reports_later(ch: BlockingChannel) -> None:
    full = temp_queue(ch, **{"x-max-length": 0, "x-overflow": "reject-publish"})
    with pytest.raises(KeyError):
        with ch.confirm_window():
            ch.basic_publish("", full, b"nacked later")
            raise KeyError("application error")
    with pytest.raises(exceptions.NackError) as caught:
        ch.wait_for_confirms(timeout=DEADLINE)
    assert [message.body for message in caught.value.messages] == [b"nacked later"]
    ch.queue_delete(full)


# ------------------------------------------------------------------ closing channels


def test_channel_closed_by_broker(conn: BlockingConnection, ch: BlockingChannel) -> None:
    with pytest.raises(exceptions.ChannelClosedByBroker) as caught:
        ch.queue_declare(unique("missing"), passive=True)
    assert caught.value.reply_code == 404 and "NOT_FOUND" in caught.value.reply_text
    assert ch.is_closed
    with pytest.raises(exceptions.ChannelWrongStateError):
        ch.queue_declare(unique("q"))
    with pytest.raises(exceptions.ChannelWrongStateError):
        ch.close()
    assert conn.is_open
    again = conn.channel()
    again.basic_publish(unique("no-exchange"), "rk", b"x")  # the broker closes the channel
    with pytest.raises(exceptions.ChannelClosedByBroker) as caught:
        again.queue_declare("", exclusive=True)
    assert caught.value.reply_code == 404


def test_broker_close_seen_elsewhere_is_raised_by_the_next_call(conn: BlockingConnection) -> None:
    doomed = conn.channel()
    other = conn.channel()
    doomed.basic_publish(unique("no-exchange"), "rk", b"x")
    other.queue_declare("", exclusive=True)  # writes doomed's publish too
    pump_until(conn, lambda: doomed.is_closed)
    with pytest.raises(exceptions.ChannelClosedByBroker):
        doomed.basic_publish("", "q", b"y")
    with pytest.raises(exceptions.ChannelWrongStateError):
        doomed.basic_publish("", "q", b"y")


def test_start_consuming_raises_channel_closed_by_broker(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    queue = temp_queue(ch)
    ch.basic_publish("", queue, b"x")

    def on_message(channel: BlockingChannel, method: Any, _p: Any, _b: bytes) -> None:
        channel.basic_ack(method.delivery_tag + 1000)  # unknown tag: 406 PRECONDITION_FAILED

    ch.basic_consume(queue, on_message)
    conn.call_later(DEADLINE, lambda: pytest.fail("start_consuming did not end"))
    with pytest.raises(exceptions.ChannelClosedByBroker) as caught:
        ch.start_consuming()
    assert caught.value.reply_code == 406
    conn.channel().queue_delete(queue)


def test_channel_close_and_context_manager(conn: BlockingConnection) -> None:
    with conn.channel() as channel:
        queue = temp_queue(channel)
        channel.basic_consume(queue, lambda *args: None)
    assert channel.is_closed and not channel.is_open
    with pytest.raises(exceptions.ChannelWrongStateError):
        channel.close()
    with pytest.raises(exceptions.ChannelWrongStateError):
        channel.basic_publish("", queue, b"x")
    closing = conn.channel()
    closing.close(reply_code=0, reply_text="bye")
    assert closing.is_closed
    conn.channel().queue_delete(queue)


def test_connection_close_closes_open_channels(broker: Any) -> None:
    connection = pika.BlockingConnection(params_for(broker))
    channels = [connection.channel() for _ in range(3)]
    queue = temp_queue(channels[0])
    channels[1].basic_consume(queue, lambda *args: None)
    channels[2].confirm_delivery()
    connection.close()
    assert all(channel.is_closed for channel in channels)
    with pytest.raises(exceptions.ChannelWrongStateError):
        channels[0].basic_publish("", queue, b"x")
    with pika.BlockingConnection(params_for(broker)) as cleanup:
        cleanup.channel().queue_delete(queue)


# ------------------------------------------------------------------ timers and threads


def test_call_later_remove_timeout_and_sleep(conn: BlockingConnection, ch: BlockingChannel) -> None:
    calls: list[str] = []
    conn.call_later(0.05, lambda: calls.append("first"))
    removed = conn.call_later(0.05, lambda: calls.append("removed"))
    conn.call_later(0, lambda: calls.append("zero"))
    conn.remove_timeout(removed)
    time.sleep(0.1)
    ch.queue_declare("", exclusive=True)  # I/O outside process_data_events: no dispatch
    assert calls == []
    conn.sleep(0.1)
    assert sorted(calls) == ["first", "zero"]
    conn.remove_timeout(removed)  # harmless again
    with pytest.raises(TypeError):
        conn.call_later(0, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="delay"):
        conn.call_later(-1, lambda: None)
    with pytest.raises(ValueError, match="duration"):
        conn.sleep(-1)
    with pytest.raises(TypeError, match="time_limit"):
        conn.process_data_events("1")  # type: ignore[arg-type]


def test_process_data_events_time_limits(conn: BlockingConnection) -> None:
    started = time.monotonic()
    conn.process_data_events(0)
    conn.process_data_events(0.2)
    elapsed = time.monotonic() - started
    assert 0.18 <= elapsed < 2
    fired: list[int] = []
    conn.call_later(0.1, lambda: fired.append(1))
    started = time.monotonic()
    conn.process_data_events(time_limit=None)  # returns once the timer has been dispatched
    assert fired == [1] and time.monotonic() - started < 2
    # a long limit returns early when something is dispatched
    conn.call_later(0.05, lambda: fired.append(2))
    started = time.monotonic()
    conn.process_data_events(time_limit=5)
    assert fired == [1, 2] and time.monotonic() - started < 2


def test_add_callback_threadsafe_wakes_a_waiting_connection(conn: BlockingConnection) -> None:
    called = threading.Event()
    on_thread: list[str] = []

    def from_thread() -> None:
        time.sleep(0.2)
        conn.add_callback_threadsafe(
            lambda: (on_thread.append(threading.current_thread().name), called.set())
        )

    worker = threading.Thread(target=from_thread, name="requester")
    worker.start()
    started = time.monotonic()
    conn.process_data_events(time_limit=DEADLINE)
    elapsed = time.monotonic() - started
    worker.join(timeout=5)
    assert called.is_set()
    assert on_thread == [threading.current_thread().name]
    assert elapsed < 2
    with pytest.raises(TypeError):
        conn.add_callback_threadsafe("nope")  # type: ignore[arg-type]


def test_add_callback_threadsafe_wakes_start_consuming(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    queue = temp_queue(ch)
    ch.basic_consume(queue, lambda *args: None)
    timer = threading.Timer(0.2, lambda: conn.add_callback_threadsafe(ch.stop_consuming))
    timer.start()
    started = time.monotonic()
    conn.call_later(DEADLINE, lambda: pytest.fail("not woken"))
    ch.start_consuming()
    timer.join(timeout=5)
    assert time.monotonic() - started < 2
    ch.queue_delete(queue)


def test_nested_process_data_events_does_not_dispatch(
    conn: BlockingConnection, ch: BlockingChannel
) -> None:
    queue = temp_queue(ch)
    order: list[str] = []

    def on_message(channel: BlockingChannel, method: Any, _p: Any, body: bytes) -> None:
        order.append(f"start {body.decode()}")
        channel.connection.process_data_events(0.05)  # must not dispatch the next message
        order.append(f"end {body.decode()}")
        channel.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_message)
    ch.basic_publish("", queue, b"1")
    ch.basic_publish("", queue, b"2")
    pump_until(conn, lambda: len(order) == 4)
    assert order == ["start 1", "end 1", "start 2", "end 2"]
    ch.queue_delete(queue)


def test_blocked_and_unblocked_callbacks_are_registered(conn: BlockingConnection) -> None:
    with pytest.raises(TypeError):
        conn.add_on_connection_blocked_callback(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        conn.add_on_connection_unblocked_callback(None)  # type: ignore[arg-type]
    conn.add_on_connection_blocked_callback(lambda *args: None)
    conn.add_on_connection_unblocked_callback(lambda *args: None)


def test_connection_close_from_a_callback_ends_start_consuming(broker: Any) -> None:
    connection = pika.BlockingConnection(params_for(broker))
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.basic_publish("", queue, b"last")

    def on_message(ch: BlockingChannel, method: Any, _p: Any, _b: bytes) -> None:
        ch.basic_ack(method.delivery_tag)
        ch.connection.close()

    channel.basic_consume(queue, on_message)
    connection.call_later(DEADLINE, lambda: pytest.fail("start_consuming did not end"))
    channel.start_consuming()  # returns normally: our own close is not an error
    assert connection.is_closed and channel.is_closed
    with pytest.raises(exceptions.ConnectionWrongStateError):
        connection.process_data_events()


def test_basic_cancel_of_the_generator_consumer_ends_the_generator(ch: BlockingChannel) -> None:
    queue = temp_queue(ch)
    items = ch.consume(queue, inactivity_timeout=0.05)
    assert next(items) == (None, None, None)
    (tag,) = ch.consumer_tags
    assert ch.basic_cancel(tag) == []
    assert list(_bounded(items, DEADLINE)) == []
    assert ch.get_waiting_message_count() == 0
    ch.queue_delete(queue)


@pytest.mark.parametrize("windowed", [False, True])
def test_confirmed_publish_to_missing_exchange_raises_channel_closed(
    conn: BlockingConnection, windowed: bool
) -> None:
    channel = conn.channel()
    channel.confirm_delivery()
    missing = unique("no-such-exchange")
    with pytest.raises(exceptions.ChannelClosedByBroker) as raised:
        if windowed:
            with channel.confirm_window(max_outstanding=10):
                channel.basic_publish(missing, "rk", b"x")
        else:
            channel.basic_publish(missing, "rk", b"x")
    assert raised.value.reply_code == 404
    assert channel.is_closed
    assert conn.is_open
