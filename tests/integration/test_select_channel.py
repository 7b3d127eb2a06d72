"""Channel methods of the callback API against the real broker: exchanges, queues, bindings,
flow, transactions, closing, and argument checking.

Theory of operation: one connection is shared by the module (:class:`SharedConnection`); each
test gets a fresh channel.  Effects are checked by round trips (publish, then ``basic_get``), not
by trusting the ``...Ok`` replies alone.  Every reply must reach the callback given with its own
request: a bad call that left a callback behind would shift every later reply.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from select_helpers import Harness, SharedConnection, unique

import amqp_core as pika
from amqp_core import exceptions, frame, spec
from amqp_core.channel import Channel
from amqp_core.exchange_type import ExchangeType


@pytest.fixture(scope="module")
def shared(broker: Any) -> Iterator[SharedConnection]:
    connection = SharedConnection(broker)
    yield connection
    connection.close()


@pytest.fixture
def h(shared: SharedConnection) -> Harness:
    shared.h.calls.clear()  # recorder names are per test
    return shared.h


@pytest.fixture
def ch(shared: SharedConnection) -> Iterator[Channel]:
    yield from shared.channels()


def get_one(h: Harness, ch: Channel, queue: str) -> tuple[Any, ...] | None:
    """``basic_get`` with auto-ack; None when the queue is empty (pika calls back nothing)."""
    name = h.fresh("get")
    ch.basic_get(queue, h.cb(name), auto_ack=True)
    # a message answers with GetOk; GetEmpty calls nothing back, so follow with a sync request
    marker = h.fresh("marker")
    ch.basic_qos(prefetch_count=0, callback=h.cb(marker))
    h.wait(marker)
    return h.last(name) if h.count(name) else None


_confirming: weakref.WeakKeyDictionary[Channel, list[int]] = weakref.WeakKeyDictionary()


def publish(
    h: Harness,
    ch: Channel,
    exchange: str,
    routing_key: str,
    body: bytes | str,
    properties: spec.BasicProperties | None = None,
) -> None:
    """Publish and wait for the broker's confirm: then the message is in its queues (or was
    dropped as unroutable).  Without it a following ``basic_get`` or passive declare may not
    see the message yet: RabbitMQ enqueues asynchronously."""
    state = _confirming.get(ch)
    if state is None:
        state = _confirming[ch] = [0, 0]  # [published, highest confirmed]

        def on_confirm(reply: frame.Method) -> None:
            assert isinstance(reply.method, spec.Basic.Ack)
            state[1] = max(state[1], reply.method.delivery_tag)

        h.call(ch.confirm_delivery, on_confirm)
    ch.basic_publish(exchange, routing_key, body, properties)
    state[0] += 1
    wanted = state[0]
    h.wait(lambda: state[1] >= wanted)


def temp_queue(h: Harness, ch: Channel) -> str:
    reply = h.call(ch.queue_declare, "", exclusive=True)
    assert isinstance(reply, frame.Method)
    return str(reply.method.queue)


# ---------------------------------------------------------------- state


def test_channel_state_and_properties(h: Harness, ch: Channel, shared: SharedConnection) -> None:
    assert ch.is_open and not ch.is_closing and not ch.is_closed
    assert ch.connection is shared.conn
    assert isinstance(ch.channel_number, int) and ch.channel_number >= 1
    assert ch.consumer_tags == []
    ch.add_on_close_callback(h.cb("closed"))
    ch.close()
    assert ch.is_closing and not ch.is_open and not ch.is_closed
    closed_ch, reason = h.wait("closed")
    assert closed_ch is ch
    assert isinstance(reason, exceptions.ChannelClosedByClient)
    assert (reason.reply_code, reason.reply_text) == (0, "Normal shutdown")
    assert ch.is_closed and not ch.is_closing


def test_close_with_reply_and_wrong_state(h: Harness, ch: Channel) -> None:
    ch.add_on_close_callback(h.cb("closed"))
    ch.close(reply_code=200, reply_text="done here")
    with pytest.raises(exceptions.ChannelWrongStateError):
        ch.close()
    with pytest.raises(exceptions.ChannelWrongStateError):
        ch.basic_publish("", "q", b"late")
    _, reason = h.wait("closed")
    assert (reason.reply_code, reason.reply_text) == (200, "done here")
    with pytest.raises(exceptions.ChannelWrongStateError):
        ch.close()
    for call in (
        lambda: ch.queue_declare("q"),
        lambda: ch.basic_publish("", "q", b"x"),
        lambda: ch.basic_ack(1),
        lambda: ch.basic_qos(prefetch_count=1),
        lambda: ch.confirm_delivery(lambda f: None),
        lambda: ch.tx_select(),
        lambda: ch.flow(True),
    ):
        with pytest.raises(exceptions.ChannelWrongStateError):
            call()


def test_close_while_opening(h: Harness, shared: SharedConnection) -> None:
    channel = shared.conn.channel(on_open_callback=h.cb("opened"))
    channel.add_on_close_callback(h.cb("closed"))
    channel.close()
    _, reason = h.wait("closed")
    assert isinstance(reason, exceptions.ChannelClosedByClient)
    assert channel.is_closed
    assert h.count("opened") == 0
    assert shared.conn.is_open


def test_several_requests_in_flight_reply_in_order(h: Harness, ch: Channel) -> None:
    names = [unique("order") for _ in range(5)]
    for index, name in enumerate(names):
        ch.queue_declare(name, exclusive=True, callback=h.cb(f"declared{index}"))
    for index, name in enumerate(names):
        (reply,) = h.wait(f"declared{index}")
        assert reply.method.queue == name


def test_many_channels_opened_at_once(h: Harness, shared: SharedConnection) -> None:
    conn = shared.conn
    channels = [conn.channel(on_open_callback=h.cb("opened")) for _ in range(40)]
    assert len({c.channel_number for c in channels}) == 40
    h.wait("opened", count=40)
    for index, channel in enumerate(channels):
        channel.queue_declare(
            f"{unique('many')}-{index}", exclusive=True, callback=h.cb(f"d{index}")
        )
    for index, channel in enumerate(channels):
        (reply,) = h.wait(f"d{index}")
        assert reply.channel_number == channel.channel_number
        assert reply.method.queue.endswith(f"-{index}")
        channel.close()
    h.wait(lambda: all(c.is_closed for c in channels))


# ---------------------------------------------------------------- exchanges


@pytest.mark.parametrize(
    "exchange_type", ["direct", "fanout", "topic", "headers", ExchangeType.topic]
)
def test_exchange_declare_types_and_delete(h: Harness, ch: Channel, exchange_type: Any) -> None:
    name = unique("x")
    reply = h.call(ch.exchange_declare, name, exchange_type, auto_delete=False)
    assert isinstance(reply, frame.Method)
    assert reply.channel_number == ch.channel_number
    assert isinstance(reply.method, spec.Exchange.DeclareOk)
    # passive: exists
    assert isinstance(
        h.call(ch.exchange_declare, name, exchange_type, passive=True).method,
        spec.Exchange.DeclareOk,
    )
    reply = h.call(ch.exchange_delete, name, if_unused=True)
    assert isinstance(reply.method, spec.Exchange.DeleteOk)


def test_exchange_declare_with_arguments_and_internal(h: Harness, ch: Channel) -> None:
    alternate, main = unique("alt"), unique("main")
    h.call(ch.exchange_declare, alternate, "fanout", auto_delete=True)
    h.call(ch.exchange_declare, main, "direct", arguments={"alternate-exchange": alternate})
    queue = temp_queue(h, ch)
    h.call(ch.queue_bind, queue, alternate)
    publish(h, ch, main, "unbound-key", b"via alternate")
    got = get_one(h, ch, queue)
    assert got is not None and got[3] == b"via alternate"
    internal = unique("internal")
    h.call(ch.exchange_declare, internal, "fanout", internal=True, durable=False)
    for name in (main, internal):
        h.call(ch.exchange_delete, name)


def test_exchange_to_exchange_bind_and_unbind(h: Harness, ch: Channel) -> None:
    source, destination = unique("src"), unique("dst")
    h.call(ch.exchange_declare, source, "topic")
    h.call(ch.exchange_declare, destination, "fanout")
    queue = temp_queue(h, ch)
    h.call(ch.queue_bind, queue, destination)
    reply = h.call(ch.exchange_bind, destination, source, routing_key="a.*")
    assert isinstance(reply.method, spec.Exchange.BindOk)
    publish(h, ch, source, "a.b", b"routed")
    publish(h, ch, source, "z.b", b"not routed")
    got = get_one(h, ch, queue)
    assert got is not None and got[3] == b"routed"
    assert get_one(h, ch, queue) is None
    reply = h.call(ch.exchange_unbind, destination, source, routing_key="a.*")
    assert isinstance(reply.method, spec.Exchange.UnbindOk)
    publish(h, ch, source, "a.b", b"after unbind")
    assert get_one(h, ch, queue) is None
    for name in (source, destination):
        h.call(ch.exchange_delete, name)


# ---------------------------------------------------------------- queues


def test_queue_declare_reply_fields(h: Harness, ch: Channel) -> None:
    name = unique("q")
    reply = h.call(ch.queue_declare, name, durable=False, auto_delete=True)
    assert isinstance(reply.method, spec.Queue.DeclareOk)
    assert (reply.method.queue, reply.method.message_count, reply.method.consumer_count) == (
        name,
        0,
        0,
    )
    publish(h, ch, "", name, b"one")
    publish(h, ch, "", name, b"two")
    reply = h.call(ch.queue_declare, name, passive=True)
    assert reply.method.message_count == 2
    reply = h.call(ch.queue_delete, name)
    assert isinstance(reply.method, spec.Queue.DeleteOk)
    assert reply.method.message_count == 2


def test_server_named_and_argument_queues(h: Harness, ch: Channel) -> None:
    server_named = temp_queue(h, ch)
    assert server_named.startswith("amq.gen-")
    name = unique("ttl")
    h.call(ch.queue_declare, name, exclusive=True, arguments={"x-message-ttl": 60000})
    # same arguments: fine; the inconsistent case is in test_select_errors
    h.call(ch.queue_declare, name, exclusive=True, arguments={"x-message-ttl": 60000})


def test_queue_bind_unbind_purge(h: Harness, ch: Channel) -> None:
    exchange = unique("x")
    h.call(ch.exchange_declare, exchange, "direct", auto_delete=True)
    queue = temp_queue(h, ch)
    reply = h.call(ch.queue_bind, queue, exchange, routing_key="key")
    assert isinstance(reply.method, spec.Queue.BindOk)
    # routing_key=None binds with the queue's name, as in pika
    h.call(ch.queue_bind, queue, exchange)
    for key in ("key", queue, "other"):
        publish(h, ch, exchange, key, key.encode())
    reply = h.call(ch.queue_declare, queue, passive=True)
    assert reply.method.message_count == 2
    reply = h.call(ch.queue_purge, queue)
    assert isinstance(reply.method, spec.Queue.PurgeOk)
    assert reply.method.message_count == 2
    reply = h.call(ch.queue_unbind, queue, exchange, routing_key="key")
    assert isinstance(reply.method, spec.Queue.UnbindOk)
    publish(h, ch, exchange, "key", b"after unbind")
    publish(h, ch, exchange, queue, b"still bound")
    got = get_one(h, ch, queue)
    assert got is not None and got[3] == b"still bound"
    assert get_one(h, ch, queue) is None
    h.call(ch.exchange_delete, exchange)


def test_queue_delete_if_unused_and_if_empty_succeed_when_true(h: Harness, ch: Channel) -> None:
    name = unique("del")
    h.call(ch.queue_declare, name, exclusive=True)
    reply = h.call(ch.queue_delete, name, if_unused=True, if_empty=True)
    assert isinstance(reply.method, spec.Queue.DeleteOk)


def test_nowait_requests_without_callbacks(h: Harness, ch: Channel) -> None:
    """No callback means nowait (pika): the effects still happen, in order."""
    exchange, queue = unique("nw-x"), unique("nw-q")
    ch.exchange_declare(exchange, "fanout")
    ch.queue_declare(queue, exclusive=True)
    ch.queue_bind(queue, exchange)
    publish(h, ch, exchange, "", b"nowait")
    reply = h.call(ch.queue_declare, queue, passive=True)
    assert reply.method.message_count == 1
    ch.queue_purge(queue)
    ch.queue_unbind(queue, exchange)
    publish(h, ch, exchange, "", b"unbound now")
    reply = h.call(ch.queue_declare, queue, passive=True)
    assert reply.method.message_count == 0
    ch.exchange_delete(exchange)
    ch.queue_delete(queue)
    # the queue is gone: a passive declare closes the channel (404)
    ch.add_on_close_callback(h.cb("closed"))
    ch.queue_declare(queue, passive=True, callback=h.cb("never"))
    _, reason = h.wait("closed")
    assert isinstance(reason, exceptions.ChannelClosedByBroker)
    assert reason.reply_code == 404
    assert h.count("never") == 0


# ---------------------------------------------------------------- flow and transactions


def test_flow_active(h: Harness, ch: Channel) -> None:
    name = h.fresh("flow")
    ch.flow(True, callback=h.cb(name))
    (active,) = h.wait(name)
    assert active is True
    ch.add_on_flow_callback(h.cb("flow_from_broker"))  # RabbitMQ never sends it; accepted


def test_transactions(h: Harness, ch: Channel) -> None:
    queue = temp_queue(h, ch)
    reply = h.call(ch.tx_select)
    assert isinstance(reply.method, spec.Tx.SelectOk)
    ch.basic_publish("", queue, b"rolled back")
    reply = h.call(ch.tx_rollback)
    assert isinstance(reply.method, spec.Tx.RollbackOk)
    assert h.call(ch.queue_declare, queue, passive=True).method.message_count == 0
    ch.basic_publish("", queue, b"committed")
    reply = h.call(ch.tx_commit)
    assert isinstance(reply.method, spec.Tx.CommitOk)
    got = get_one(h, ch, queue)
    assert got is not None and got[3] == b"committed"
    h.call(ch.tx_commit)  # the get's auto-ack is transactional too


# ---------------------------------------------------------------- bad input


def test_channel_methods_reject_bad_arguments(h: Harness, ch: Channel) -> None:
    """Wrong types or values raise TypeError/ValueError naming the parameter, and send nothing."""
    cb = h.cb("must-never-run")
    # pika raises ShortStringTooLong (not a ValueError) for a string over 255 bytes
    ShortString = (ValueError, exceptions.ShortStringTooLong)
    cases: list[tuple[Any, Any, str]] = [
        (lambda: ch.queue_declare(123, callback=cb), TypeError, "queue"),
        (lambda: ch.queue_declare("q", arguments="x", callback=cb), TypeError, "arguments"),
        (lambda: ch.queue_declare("q", callback="not callable"), TypeError, "callback"),
        (lambda: ch.queue_bind("q", 5, callback=cb), TypeError, "exchange"),
        (lambda: ch.queue_bind("q", "x", routing_key=5, callback=cb), TypeError, "routing_key"),
        (lambda: ch.queue_unbind(None, "x", callback=cb), TypeError, "queue"),
        (lambda: ch.queue_purge(b"q", callback=cb), TypeError, "queue"),
        (lambda: ch.queue_delete(1.5, callback=cb), TypeError, "queue"),
        (lambda: ch.exchange_declare(None, callback=cb), TypeError, "exchange"),
        (
            lambda: ch.exchange_declare("x", exchange_type=7, callback=cb),
            TypeError,
            "exchange_type",
        ),
        (lambda: ch.exchange_bind("d", 3, callback=cb), TypeError, "source"),
        (lambda: ch.exchange_unbind(4, "s", callback=cb), TypeError, "destination"),
        (lambda: ch.exchange_delete(9, callback=cb), TypeError, "exchange"),
        (lambda: ch.basic_publish(1, "rk", b"x"), TypeError, "exchange"),
        (lambda: ch.basic_publish("", 2, b"x"), TypeError, "routing_key"),
        (lambda: ch.basic_publish("", "rk", 3), TypeError, "body"),
        (lambda: ch.basic_publish("", "rk", b"x", properties={"a": 1}), TypeError, "properties"),
        (lambda: ch.basic_publish("", "x" * 256, b"x"), ShortString, "routing_key"),
        (lambda: ch.basic_qos(prefetch_count=-1, callback=cb), ValueError, "prefetch_count"),
        (lambda: ch.basic_qos(prefetch_count="2", callback=cb), TypeError, "prefetch_count"),
        (lambda: ch.basic_qos(prefetch_size=-1, callback=cb), ValueError, "prefetch_size"),
        (lambda: ch.basic_consume("q", None), TypeError, "on_message_callback"),
        (lambda: ch.basic_consume(7, lambda *a: None), TypeError, "queue"),
        (lambda: ch.basic_consume("q", lambda *a: None, consumer_tag=5), TypeError, "consumer_tag"),
        (lambda: ch.basic_consume("q", lambda *a: None, callback=3), TypeError, "callback"),
        (lambda: ch.basic_cancel(5), TypeError, "consumer_tag"),
        (lambda: ch.basic_get("q", None), TypeError, "callback"),
        (lambda: ch.basic_get(None, cb), TypeError, "queue"),
        (lambda: ch.basic_ack("1"), TypeError, "delivery_tag"),
        (lambda: ch.basic_nack(-1), ValueError, "delivery_tag"),
        (lambda: ch.basic_reject(None), TypeError, "delivery_tag"),
        (lambda: ch.confirm_delivery(None), TypeError, "ack_nack_callback"),
        (lambda: ch.confirm_delivery(cb, callback=5), TypeError, "callback"),
        (lambda: ch.flow("yes"), TypeError, "active"),
        (lambda: ch.tx_select(callback=1), TypeError, "callback"),
        (lambda: ch.basic_recover(callback="x"), TypeError, "callback"),
        (lambda: ch.close(reply_code="0"), TypeError, "reply_code"),
        (lambda: ch.close(reply_text=None), TypeError, "reply_text"),
        (lambda: ch.add_on_close_callback(None), TypeError, "callback"),
        (lambda: ch.add_on_cancel_callback(1), TypeError, "callback"),
        (lambda: ch.add_on_return_callback("x"), TypeError, "callback"),
        (lambda: ch.add_on_flow_callback(b""), TypeError, "callback"),
    ]
    failures = []
    for call, error, name in cases:
        try:
            call()
        except error as raised:
            if name not in str(raised):
                failures.append(f"{name}: message does not name it: {raised}")
        except Exception as raised:
            failures.append(f"{name}: {type(raised).__name__}: {raised}")
        else:
            failures.append(f"{name}: nothing raised")
    assert not failures, "\n".join(failures)
    # nothing was sent or queued: the channel works and replies reach the right callbacks
    assert ch.is_open and not ch.is_closing
    queue = unique("after-bad")
    ch.queue_declare(queue, exclusive=True, callback=h.cb("good1"))
    ch.basic_qos(prefetch_count=3, callback=h.cb("good2"))
    (first,) = h.wait("good1")
    (second,) = h.wait("good2")
    assert isinstance(first.method, spec.Queue.DeclareOk) and first.method.queue == queue
    assert isinstance(second.method, spec.Basic.QosOk)
    assert h.count("must-never-run") == 0
    assert ch.consumer_tags == []


def test_publish_accepts_str_and_properties(h: Harness, ch: Channel) -> None:
    queue = temp_queue(h, ch)
    properties = pika.BasicProperties(
        content_type="application/json",
        delivery_mode=pika.DeliveryMode.Persistent,
        headers={"int": 1, "str": "x", "list": [1, "a"], "nested": {"b": True}},
        correlation_id="cid",
        priority=3,
    )
    publish(h, ch, "", queue, "héllo", properties)
    got = get_one(h, ch, queue)
    assert got is not None
    _, method, props, body = got
    assert body == "héllo".encode()
    assert isinstance(method, spec.Basic.GetOk)
    assert props.content_type == "application/json"
    assert props.delivery_mode == 2
    assert props.headers == {"int": 1, "str": "x", "list": [1, "a"], "nested": {"b": True}}
    assert (props.correlation_id, props.priority) == ("cid", 3)
