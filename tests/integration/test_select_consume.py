"""Consumers, basic_get, acknowledgements, publisher confirms, returns and broker cancels.

Theory of operation: one connection per module, a fresh channel per test.  Consumer callbacks
record ``(channel, method, properties, body)`` and may act on the channel from inside the callback
(ack, publish, cancel, close): the driver runs user callbacks only after a frame was parsed, so
that is legal and must not disturb the connection.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from select_helpers import Harness, SharedConnection, unique, wait_message_count

import amqp_core as pika
from amqp_core import exceptions, frame, spec
from amqp_core.channel import Channel


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
def ch(shared: SharedConnection, h: Harness) -> Iterator[Channel]:
    yield from shared.channels()


def temp_queue(h: Harness, ch: Channel, **arguments: Any) -> str:
    reply = h.call(ch.queue_declare, "", exclusive=True, arguments=arguments or None)
    return str(reply.method.queue)


def bodies(h: Harness, name: str) -> list[bytes]:
    return [call[3] for call in h.calls.get(name, [])]


# ---------------------------------------------------------------- consuming


def test_consume_delivery_shape_and_cancel(h: Harness, ch: Channel) -> None:
    queue = temp_queue(h, ch)
    reply = h.call(ch.basic_consume, queue, h.cb("msg"), consumer_tag="my-tag")
    assert isinstance(reply, frame.Method)
    assert isinstance(reply.method, spec.Basic.ConsumeOk)
    assert reply.method.consumer_tag == "my-tag"
    assert ch.consumer_tags == ["my-tag"]
    properties = pika.BasicProperties(content_type="text/plain", headers={"n": 1})
    ch.basic_publish("", queue, b"first", properties)
    channel, method, props, body = h.wait("msg")
    assert channel is ch
    assert isinstance(method, spec.Basic.Deliver)
    assert (method.consumer_tag, method.routing_key, method.redelivered) == (
        "my-tag",
        queue,
        False,
    )
    assert isinstance(props, spec.BasicProperties)
    assert props.content_type == "text/plain" and props.headers == {"n": 1}
    assert body == b"first"
    ch.basic_ack(method.delivery_tag)

    reply = h.call(ch.basic_cancel, "my-tag")
    assert isinstance(reply.method, spec.Basic.CancelOk)
    assert reply.method.consumer_tag == "my-tag"
    assert ch.consumer_tags == []
    ch.basic_publish("", queue, b"after cancel")
    reply = h.call(ch.queue_declare, queue, passive=True)
    h.run_for(0.1)
    assert bodies(h, "msg") == [b"first"]


def test_generated_consumer_tag_and_duplicate(h: Harness, ch: Channel) -> None:
    queue = temp_queue(h, ch)
    name = h.fresh("consumeok")
    tag = ch.basic_consume(queue, h.cb("msg"), callback=h.cb(name))
    assert isinstance(tag, str) and tag
    (reply,) = h.wait(name)
    assert reply.method.consumer_tag == tag
    with pytest.raises(exceptions.DuplicateConsumerTag):
        ch.basic_consume(queue, h.cb("msg"), consumer_tag=tag)
    assert ch.consumer_tags == [tag]


def test_auto_ack_consumer_and_nowait_cancel(h: Harness, ch: Channel) -> None:
    queue = temp_queue(h, ch)
    tag = h.call(ch.basic_consume, queue, h.cb("msg"), auto_ack=True).method.consumer_tag
    for index in range(3):
        ch.basic_publish("", queue, b"%d" % index)
    h.wait("msg", count=3)
    assert bodies(h, "msg") == [b"0", b"1", b"2"]
    ch.basic_cancel(tag)  # no callback: nowait, forgotten at once
    assert ch.consumer_tags == []
    # nothing was left unacknowledged: the queue is empty
    h.run_for(0.1)
    assert h.call(ch.queue_declare, queue, passive=True).method.message_count == 0


def test_deliveries_after_a_nowait_cancel_are_requeued(
    h: Harness, ch: Channel, caplog: pytest.LogCaptureFixture
) -> None:
    """Messages the broker pushed before it saw the cancel go back to the queue (as in pika)."""
    queue = temp_queue(h, ch)
    h.call(ch.confirm_delivery, h.cb("confirm"))
    total = 50
    for index in range(total):
        ch.basic_publish("", queue, b"%d" % index)
    h.wait(lambda: h.calls["confirm"] and h.calls["confirm"][-1][0].method.delivery_tag == total)
    record = h.cb("msg")

    def first_only(channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        record(channel, method, properties, body)
        channel.basic_ack(method.delivery_tag)
        channel.basic_cancel(method.consumer_tag)  # nowait: in-flight deliveries follow

    with caplog.at_level(logging.WARNING):
        h.call(ch.basic_consume, queue, first_only)
        h.wait("msg")
        # the channel stays open; the rest must become ready again, not stay unacked
        wait_message_count(h, ch, queue, total - 1)
    assert h.count("msg") == 1
    assert ch.consumer_tags == []
    assert not [r for r in caplog.records if "Unexpected delivery" in r.getMessage()]


def test_consumer_that_raises_is_logged_and_consuming_goes_on(
    h: Harness, ch: Channel, shared: SharedConnection, caplog: pytest.LogCaptureFixture
) -> None:
    queue = temp_queue(h, ch)
    record = h.cb("msg")

    def consumer(channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        record(channel, method, properties, body)
        channel.basic_ack(method.delivery_tag)
        if body.startswith(b"boom"):
            raise RuntimeError(f"consumer failure on {body!r}")

    h.call(ch.basic_consume, queue, consumer)
    with caplog.at_level(logging.ERROR):
        for body in (b"a", b"boom-1", b"b", b"boom-2", b"c"):
            ch.basic_publish("", queue, body)
        h.wait("msg", count=5)
    assert bodies(h, "msg") == [b"a", b"boom-1", b"b", b"boom-2", b"c"]
    failures = [
        r for r in caplog.records if r.exc_info and "consumer failure" in str(r.exc_info[1])
    ]
    assert len(failures) == 2
    # the connection and the channel are intact and usable
    assert shared.conn.is_open and ch.is_open
    ch.basic_publish("", queue, b"later")
    h.wait("msg", count=6)
    assert h.call(ch.queue_declare, queue, passive=True).method.message_count == 0


def test_rpc_callback_that_raises_does_not_shift_replies(
    h: Harness, ch: Channel, caplog: pytest.LogCaptureFixture
) -> None:
    def bad(reply: Any) -> None:
        raise ValueError("completion callback failure")

    with caplog.at_level(logging.ERROR):
        ch.queue_declare("", exclusive=True, callback=bad)
        second = h.call(ch.queue_declare, unique("after"), exclusive=True)
    assert isinstance(second.method, spec.Queue.DeclareOk)
    assert any(
        r.exc_info and "completion callback failure" in str(r.exc_info[1]) for r in caplog.records
    )
    assert ch.is_open


def test_commands_from_inside_a_consumer(h: Harness, ch: Channel, shared: SharedConnection) -> None:
    """Publishing, acking, cancelling and closing from a consumer callback."""
    source = temp_queue(h, ch)
    watcher = h.channel(shared.conn)
    sink = temp_queue(h, watcher)
    h.call(watcher.basic_consume, sink, h.cb("sink"), auto_ack=True)
    ch.add_on_close_callback(h.cb("closed"))

    def relay(channel: Channel, method: Any, properties: Any, body: bytes) -> None:
        channel.basic_publish("", sink, b"relayed " + body)
        channel.basic_ack(method.delivery_tag)
        if body == b"last":
            channel.basic_cancel(method.consumer_tag, callback=h.cb("cancelled"))
            channel.close()

    h.call(ch.basic_consume, source, relay)
    for body in (b"one", b"two", b"last"):
        ch.basic_publish("", source, body)
    h.wait("closed")
    h.wait("sink", count=3)
    assert bodies(h, "sink") == [b"relayed one", b"relayed two", b"relayed last"]
    assert h.count("cancelled") == 1
    _, reason = h.last("closed")
    assert isinstance(reason, exceptions.ChannelClosedByClient)
    watcher.close()
    h.wait(lambda: watcher.is_closed)


def test_qos_prefetch_limits_unacked_deliveries(h: Harness, ch: Channel) -> None:
    queue = temp_queue(h, ch)
    reply = h.call(ch.basic_qos, prefetch_count=2)
    assert isinstance(reply.method, spec.Basic.QosOk)
    for index in range(5):
        ch.basic_publish("", queue, b"%d" % index)
    h.call(ch.basic_consume, queue, h.cb("msg"))
    h.wait("msg", count=2)
    h.run_for(0.2)
    assert h.count("msg") == 2  # no more until something is acked
    ch.basic_ack(h.calls["msg"][1][1].delivery_tag, multiple=True)
    h.wait("msg", count=4)
    h.run_for(0.1)
    assert h.count("msg") == 4
    ch.basic_ack(0, multiple=True)  # 0 + multiple: everything outstanding
    h.wait("msg", count=5)
    assert bodies(h, "msg") == [b"0", b"1", b"2", b"3", b"4"]


def test_reject_nack_recover_redeliver(h: Harness, ch: Channel) -> None:
    queue = temp_queue(h, ch)
    for body in (b"r", b"n1", b"n2", b"gone"):
        ch.basic_publish("", queue, body)
    h.call(ch.basic_consume, queue, h.cb("msg"))
    h.wait("msg", count=4)
    tags = {call[3]: call[1].delivery_tag for call in h.calls["msg"]}
    ch.basic_reject(tags[b"gone"], requeue=False)
    ch.basic_reject(tags[b"r"], requeue=True)
    ch.basic_nack(tags[b"n2"], multiple=True, requeue=True)  # n1 and n2 (r already rejected)
    h.wait("msg", count=7)
    redelivered = h.calls["msg"][4:]
    assert sorted(call[3] for call in redelivered) == [b"n1", b"n2", b"r"]
    assert all(call[1].redelivered for call in redelivered)
    reply = h.call(ch.basic_recover, requeue=True)
    assert isinstance(reply.method, spec.Basic.RecoverOk)
    h.wait("msg", count=10)
    assert sorted(call[3] for call in h.calls["msg"][7:]) == [b"n1", b"n2", b"r"]
    ch.basic_ack(0, multiple=True)


def test_basic_get_message_and_empty(h: Harness, ch: Channel) -> None:
    queue = temp_queue(h, ch)
    ch.basic_get(queue, h.cb("empty"))
    # GetEmpty calls nothing back (as in pika) but frees the slot for the next get
    h.call(ch.basic_qos, prefetch_count=0)
    assert h.count("empty") == 0
    ch.basic_publish("", queue, b"one", pika.BasicProperties(message_id="m1"))
    ch.basic_publish("", queue, b"two")
    wait_message_count(h, ch, queue, 2)
    ch.basic_get(queue, h.cb("got"))
    with pytest.raises(exceptions.DuplicateGetOkCallback):
        ch.basic_get(queue, h.cb("got"))
    channel, method, properties, body = h.wait("got")
    assert channel is ch
    assert isinstance(method, spec.Basic.GetOk)
    assert (method.message_count, method.redelivered) == (1, False)
    assert properties.message_id == "m1" and body == b"one"
    ch.basic_ack(method.delivery_tag)
    ch.basic_get(queue, h.cb("got"), auto_ack=True)
    _, method, _, body = h.wait("got", count=2)
    assert (body, method.message_count) == (b"two", 0)


# ---------------------------------------------------------------- broker cancel


def test_deleting_the_queue_cancels_the_consumer(
    h: Harness, ch: Channel, shared: SharedConnection
) -> None:
    queue = unique("cancel-me")
    h.call(ch.queue_declare, queue, auto_delete=False)
    ch.add_on_cancel_callback(h.cb("cancelled"))
    tag = h.call(ch.basic_consume, queue, h.cb("msg")).method.consumer_tag
    assert ch.consumer_tags == [tag]
    other = h.channel(shared.conn)
    h.call(other.queue_delete, queue)
    (cancel,) = h.wait("cancelled")
    assert isinstance(cancel, frame.Method)
    assert cancel.channel_number == ch.channel_number
    assert isinstance(cancel.method, spec.Basic.Cancel)
    assert cancel.method.consumer_tag == tag
    assert ch.consumer_tags == []
    assert ch.is_open
    other.close()
    h.wait(lambda: other.is_closed)


# ---------------------------------------------------------------- publisher confirms


def covered(replies: list[Any]) -> dict[int, str]:
    """delivery tag -> 'ack'/'nack', expanding ``multiple`` over the tags not yet covered."""
    outcome: dict[int, str] = {}
    highest = 0
    for reply in replies:
        method = reply.method
        kind = "ack" if isinstance(method, spec.Basic.Ack) else "nack"
        assert isinstance(method, spec.Basic.Ack | spec.Basic.Nack)
        assert isinstance(method.multiple, bool)
        tags = (
            range(highest + 1, method.delivery_tag + 1)
            if method.multiple
            else [method.delivery_tag]
        )
        for tag in tags:
            assert tag not in outcome, f"tag {tag} confirmed twice"
            outcome[tag] = kind
        highest = max(highest, method.delivery_tag)
    return outcome


def test_confirm_acks_with_delivery_tag_and_multiple(h: Harness, ch: Channel) -> None:
    queue = temp_queue(h, ch)
    replies: list[Any] = []
    reply = h.call(ch.confirm_delivery, replies.append)
    assert isinstance(reply.method, spec.Confirm.SelectOk)
    count = 300
    for index in range(count):
        ch.basic_publish("", queue, b"%d" % index)
    h.wait(lambda: covered(replies).keys() >= set(range(1, count + 1)))
    assert covered(replies) == {tag: "ack" for tag in range(1, count + 1)}
    assert all(r.channel_number == ch.channel_number for r in replies)


def test_confirm_nack_on_rejected_publish(h: Harness, ch: Channel) -> None:
    queue = unique("bounded")
    h.call(
        ch.queue_declare,
        queue,
        exclusive=True,
        arguments={"x-max-length": 1, "x-overflow": "reject-publish"},
    )
    h.call(ch.confirm_delivery, h.cb("confirm"))
    for index in range(3):
        ch.basic_publish("", queue, b"%d" % index)
    h.wait(lambda: len(covered([c[0] for c in h.calls["confirm"]])) == 3)
    outcome = covered([c[0] for c in h.calls["confirm"]])
    assert outcome == {1: "ack", 2: "nack", 3: "nack"}
    nacks = [c[0].method for c in h.calls["confirm"] if isinstance(c[0].method, spec.Basic.Nack)]
    assert nacks and all(hasattr(n, "requeue") for n in nacks)


def test_confirm_delivery_without_callback_is_nowait(h: Harness, ch: Channel) -> None:
    queue = temp_queue(h, ch)
    ch.confirm_delivery(h.cb("confirm"))
    ch.basic_publish("", queue, b"x")
    (reply,) = h.wait("confirm")
    assert isinstance(reply.method, spec.Basic.Ack) and reply.method.delivery_tag == 1


def test_mandatory_unroutable_message_is_returned(h: Harness, ch: Channel) -> None:
    ch.add_on_return_callback(h.cb("returned"))
    h.call(ch.confirm_delivery, h.cb("confirm"))
    properties = pika.BasicProperties(correlation_id="c-1")
    key = unique("nowhere")
    ch.basic_publish("", key, b"bounce", properties, mandatory=True)
    channel, method, props, body = h.wait("returned")
    assert channel is ch
    assert isinstance(method, spec.Basic.Return)
    assert (method.reply_code, method.reply_text, method.exchange, method.routing_key) == (
        312,
        "NO_ROUTE",
        "",
        key,
    )
    assert props.correlation_id == "c-1" and body == b"bounce"
    # the return comes before the confirm, which is an ack (the broker did its job)
    (confirm,) = h.wait("confirm")
    assert isinstance(confirm.method, spec.Basic.Ack)
    # not mandatory: silently dropped, still acked, not returned
    ch.basic_publish("", key, b"dropped")
    h.wait("confirm", count=2)
    assert h.count("returned") == 1


def test_return_without_confirms_and_several_callbacks(h: Harness, ch: Channel) -> None:
    ch.add_on_return_callback(h.cb("first"))
    ch.add_on_return_callback(h.cb("second"))
    ch.basic_publish("", unique("nowhere"), b"r", mandatory=True)
    h.wait("second")
    assert h.count("first") == 1
