"""The core ``Connection``'s channel-level behaviour, bytes in and events out.

Opening, one synchronous request at a time (the rest queued, in order), nowait methods, flow,
close from either side, consumers, publisher confirms, returns, deliveries, channel-level
protocol errors and the local errors raised before anything is queued.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from amqp_core import spec
from amqp_core.exceptions import (
    ChannelWrongStateError,
    InvalidChannelNumber,
    LocalProtocolError,
    NoFreeChannels,
    RemoteBodyTooLong,
    RemoteChannelError,
    RemoteCommandInvalid,
    RemoteFrameError,
    RemoteSyntaxError,
    RemoteUnexpectedFrame,
    ShortStringTooLong,
    UnsupportedAMQPFieldException,
)
from amqp_core.protocol import ChannelState
from amqp_core.protocol import events as ev
from amqp_core.protocol.frames import FRAME_HEADER, encode_content, encode_method_frame

if TYPE_CHECKING:
    from conftest import Pair


def raw_frame(frame_type: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return FRAME_HEADER.pack(frame_type, channel, len(payload)) + payload + end


def raw_method(channel: int, class_id: int, method_id: int, arguments: bytes = b"") -> bytes:
    return raw_frame(1, channel, struct.pack(">HH", class_id, method_id) + arguments)


def header_frame(channel: int, body_size: int, properties: bytes = b"\x00\x00") -> bytes:
    return raw_frame(2, channel, struct.pack(">HHQ", 60, 0, body_size) + properties)


def declare_ok(queue: str) -> spec.Queue.DeclareOk:
    return spec.Queue.DeclareOk(queue=queue, message_count=0, consumer_count=0)


def wire(method: Any) -> Any:
    """``method`` as the broker decodes it (absent tables come back as ``{}``)."""
    return object.__new__(type(method)).decode(b"".join(method.encode()))


def deliver_method(channel: int, tag: int = 1, consumer_tag: str = "ctag") -> bytes:
    return encode_method_frame(
        channel,
        spec.Basic.Deliver(consumer_tag=consumer_tag, delivery_tag=tag, exchange="ex",
                           routing_key="rk"),
    )


# --------------------------------------------------------------------------- opening


def test_open_channel(open_pair: Pair, how: str) -> None:
    client = open_pair.client
    assert client.open_channel() == 1
    assert client.channel_state(1) is ChannelState.OPENING
    assert open_pair.sent_methods() == [(1, spec.Channel.Open())]
    events = open_pair.deliver(encode_method_frame(1, spec.Channel.OpenOk()), how=how)
    assert events == [ev.ChannelOpened(channel_number=1)]
    assert client.channel_state(1) is ChannelState.OPEN
    assert client.channel_numbers == [1]
    assert client.data_to_send() == b""


def test_channel_numbers_are_allocated_and_reused(open_pair: Pair) -> None:
    assert [open_pair.open_channel() for _ in range(3)] == [1, 2, 3]
    assert open_pair.open_channel(10) == 10
    open_pair.deliver(encode_method_frame(
        2, spec.Channel.Close(reply_code=404, reply_text="gone", class_id=0, method_id=0)))
    open_pair.sent()
    assert open_pair.client.channel_state(2) is ChannelState.CLOSED
    assert 2 not in open_pair.client.channel_numbers
    assert open_pair.open_channel(2) == 2


def test_methods_before_open_ok_are_refused(open_pair: Pair) -> None:
    channel = open_pair.client.open_channel()
    open_pair.sent()
    with pytest.raises(ChannelWrongStateError):
        open_pair.client.send_method(channel, spec.Basic.Qos(prefetch_count=1))
    with pytest.raises(ChannelWrongStateError):
        open_pair.client.basic_publish(channel, "", "q", b"x")
    assert open_pair.client.data_to_send() == b""


# --------------------------------------------------------------------------- RPC ordering


def test_one_synchronous_request_at_a_time(open_pair: Pair, how: str) -> None:
    client = open_pair.client
    channel = open_pair.open_channel()
    requests = [
        spec.Queue.Declare(queue="q1"),
        spec.Exchange.Declare(exchange="x1", type="topic"),
        spec.Queue.Bind(queue="q1", exchange="x1", routing_key="#"),
        spec.Basic.Qos(prefetch_count=10),
    ]
    for request in requests:
        client.send_method(channel, request)
    # only the first is on the wire, byte for byte
    assert client.data_to_send() == encode_method_frame(channel, requests[0])
    replies = [
        spec.Queue.DeclareOk(queue="q1", message_count=0, consumer_count=0),
        spec.Exchange.DeclareOk(),
        spec.Queue.BindOk(),
        spec.Basic.QosOk(),
    ]
    for index, reply in enumerate(replies):
        events = open_pair.deliver(encode_method_frame(channel, reply), how=how)
        assert events == [
            ev.RpcReply(channel_number=channel, request=requests[index], method=reply)
        ]
        expected_next = requests[index + 1 : index + 2]
        assert client.data_to_send() == b"".join(
            encode_method_frame(channel, m) for m in expected_next
        )
    assert client.data_to_send() == b""


def test_rpc_queues_are_per_channel(open_pair: Pair) -> None:
    one, two = open_pair.open_channel(), open_pair.open_channel()
    open_pair.client.send_method(one, spec.Queue.Declare(queue="a"))
    open_pair.client.send_method(one, spec.Queue.Declare(queue="b"))
    open_pair.client.send_method(two, spec.Queue.Declare(queue="c"))
    assert open_pair.sent_methods() == [
        (one, wire(spec.Queue.Declare(queue="a"))), (two, wire(spec.Queue.Declare(queue="c"))),
    ]


def test_nowait_and_asynchronous_methods_are_not_queued(open_pair: Pair) -> None:
    client = open_pair.client
    channel = open_pair.open_channel()
    client.send_method(channel, spec.Queue.Declare(queue="slow"))
    immediate = [
        spec.Queue.Declare(queue="fast", nowait=True),
        spec.Exchange.Delete(exchange="x", nowait=True),
        spec.Basic.Consume(queue="q", consumer_tag="c1", nowait=True),
        spec.Basic.Ack(delivery_tag=5),
        spec.Basic.Reject(delivery_tag=6, requeue=False),
        spec.Basic.RecoverAsync(requeue=True),
    ]
    for method in immediate:
        client.send_method(channel, method)
    client.send_method(channel, spec.Queue.Purge(queue="slow"))
    assert open_pair.sent_methods() == [
        (channel, wire(spec.Queue.Declare(queue="slow"))), *((channel, wire(m)) for m in immediate)
    ]
    open_pair.deliver(encode_method_frame(channel, declare_ok("slow")))
    assert open_pair.sent_methods() == [(channel, spec.Queue.Purge(queue="slow"))]


def test_get_ok_and_get_empty(open_pair: Pair, how: str) -> None:
    channel = open_pair.open_channel()
    open_pair.client.send_method(channel, spec.Basic.Get(queue="q"))
    open_pair.client.send_method(channel, spec.Basic.Get(queue="q"))
    open_pair.sent()
    get_ok = spec.Basic.GetOk(delivery_tag=1, redelivered=False, exchange="", routing_key="q",
                              message_count=0)
    props = spec.BasicProperties(content_type="text/plain", headers={"x-delay": -1})
    events = open_pair.deliver(
        open_pair.peer.content(channel, get_ok, b"payload", props), how=how
    )
    assert events == [
        ev.RpcReply(channel_number=channel, request=spec.Basic.Get(queue="q"), method=get_ok,
                    properties=props, body=b"payload")
    ]
    assert open_pair.sent_methods() == [(channel, spec.Basic.Get(queue="q"))]
    events = open_pair.deliver(encode_method_frame(channel, spec.Basic.GetEmpty()), how=how)
    assert events == [ev.RpcReply(channel_number=channel, request=spec.Basic.Get(queue="q"),
                                  method=spec.Basic.GetEmpty())]


# --------------------------------------------------------------------------- flow


@pytest.mark.parametrize("active", [False, True])
def test_flow_from_the_broker_is_answered(open_pair: Pair, active: bool, how: str) -> None:
    channel = open_pair.open_channel()
    events = open_pair.deliver(encode_method_frame(channel, spec.Channel.Flow(active=active)),
                               how=how)
    assert events == [ev.MethodReceived(channel_number=channel,
                                        method=spec.Channel.Flow(active=active))]
    assert open_pair.sent_methods() == [(channel, spec.Channel.FlowOk(active=active))]
    record = open_pair.client.channel_record(channel)
    assert record is not None and record.flow_active is active


def test_flow_from_the_client_is_an_rpc(open_pair: Pair) -> None:
    channel = open_pair.open_channel()
    open_pair.client.send_method(channel, spec.Channel.Flow(active=False))
    assert open_pair.sent_methods() == [(channel, spec.Channel.Flow(active=False))]
    events = open_pair.deliver(encode_method_frame(channel, spec.Channel.FlowOk(active=False)))
    assert [type(e) for e in events] == [ev.RpcReply]


# --------------------------------------------------------------------------- close


def test_client_closes_a_channel(open_pair: Pair, how: str) -> None:
    client = open_pair.client
    channel = open_pair.open_channel()
    client.close_channel(channel, 200, "done")
    assert open_pair.sent_methods() == [
        (channel, spec.Channel.Close(reply_code=200, reply_text="done", class_id=0, method_id=0))
    ]
    assert client.channel_state(channel) is ChannelState.CLOSING
    for command in (
        lambda: client.send_method(channel, spec.Basic.Qos()),
        lambda: client.basic_publish(channel, "", "q", b"x"),
        lambda: client.basic_ack(channel, 1),
        lambda: client.close_channel(channel),
    ):
        with pytest.raises(ChannelWrongStateError):
            command()
    assert client.data_to_send() == b""
    events = open_pair.deliver(encode_method_frame(channel, spec.Channel.CloseOk()), how=how)
    assert events == [ev.ChannelClosed(channel_number=channel, reply_code=200, reply_text="done",
                                       by_peer=False)]
    assert client.channel_state(channel) is ChannelState.CLOSED
    assert client.channel_record(channel) is None


def test_client_close_waits_behind_pending_requests(open_pair: Pair) -> None:
    client = open_pair.client
    channel = open_pair.open_channel()
    client.send_method(channel, spec.Queue.Declare(queue="q"))
    client.send_method(channel, spec.Queue.Purge(queue="q"))
    client.close_channel(channel)
    assert open_pair.sent_methods() == [(channel, wire(spec.Queue.Declare(queue="q")))]
    open_pair.deliver(encode_method_frame(channel, declare_ok("q")))
    assert open_pair.sent_methods() == [(channel, spec.Queue.Purge(queue="q"))]
    open_pair.deliver(encode_method_frame(channel, spec.Queue.PurgeOk(message_count=0)))
    assert open_pair.sent_methods() == [
        (channel, spec.Channel.Close(reply_code=0, reply_text="Normal shutdown", class_id=0,
                                     method_id=0))
    ]


def test_client_closes_a_channel_still_opening(open_pair: Pair) -> None:
    channel = open_pair.client.open_channel()
    open_pair.client.close_channel(channel)
    assert [type(m) for _, m in open_pair.sent_methods()] == [spec.Channel.Open,
                                                              spec.Channel.Close]
    # the Open-Ok that was already on its way is swallowed
    assert open_pair.deliver(encode_method_frame(channel, spec.Channel.OpenOk())) == []
    events = open_pair.deliver(encode_method_frame(channel, spec.Channel.CloseOk()))
    assert [type(e) for e in events] == [ev.ChannelClosed]


def test_broker_closes_a_channel_and_pending_requests_are_dropped(
    open_pair: Pair, how: str
) -> None:
    client = open_pair.client
    channel = open_pair.open_channel()
    client.send_method(channel, spec.Queue.Declare(queue="q", passive=True))
    client.send_method(channel, spec.Queue.Bind(queue="q", exchange="x"))
    open_pair.sent()
    close = spec.Channel.Close(reply_code=404, reply_text="NOT_FOUND - no queue 'q'",
                               class_id=50, method_id=10)
    events = open_pair.deliver(encode_method_frame(channel, close), how=how)
    assert events == [ev.ChannelClosed(channel_number=channel, reply_code=404,
                                       reply_text="NOT_FOUND - no queue 'q'", by_peer=True)]
    # Close-Ok only: the queued Queue.Bind is never sent
    assert open_pair.sent_methods() == [(channel, spec.Channel.CloseOk())]
    assert client.channel_state(channel) is ChannelState.CLOSED
    with pytest.raises(ChannelWrongStateError):
        client.send_method(channel, spec.Basic.Qos())
    assert client.data_to_send() == b""


def test_broker_closes_while_we_close(open_pair: Pair) -> None:
    channel = open_pair.open_channel()
    open_pair.client.close_channel(channel)
    open_pair.sent()
    close = spec.Channel.Close(reply_code=406, reply_text="PRECONDITION_FAILED", class_id=0,
                               method_id=0)
    events = open_pair.deliver(encode_method_frame(channel, close))
    assert events == [ev.ChannelClosed(channel_number=channel, reply_code=406,
                                       reply_text="PRECONDITION_FAILED", by_peer=True)]
    assert open_pair.sent_methods() == [(channel, spec.Channel.CloseOk())]


def test_both_sides_close_and_the_broker_answers_our_close_too(open_pair: Pair) -> None:
    # RabbitMQ answers a Channel.Close that reaches a channel it is closing itself with
    # Close-Ok: that late Close-Ok must not be taken for a protocol error
    channel = open_pair.open_channel()
    open_pair.client.close_channel(channel)
    open_pair.sent()
    close = spec.Channel.Close(reply_code=406, reply_text="PRECONDITION_FAILED", class_id=0,
                               method_id=0)
    events = open_pair.deliver(encode_method_frame(channel, close),
                               encode_method_frame(channel, spec.Channel.CloseOk()))
    assert [type(e) for e in events] == [ev.ChannelClosed]
    assert open_pair.sent_methods() == [(channel, spec.Channel.CloseOk())]
    # the number is usable again, and a second stray Close-Ok is an error again
    assert open_pair.open_channel(channel) == channel
    open_pair.expect_protocol_error(
        encode_method_frame(channel, spec.Channel.CloseOk()), RemoteUnexpectedFrame, 505
    )


def test_late_close_ok_that_never_comes(open_pair: Pair) -> None:
    # a peer that does not answer our Close after its own: reopening and closing the same
    # number must still see its own Close-Ok
    channel = open_pair.open_channel()
    open_pair.client.close_channel(channel)
    close = spec.Channel.Close(reply_code=406, reply_text="x", class_id=0, method_id=0)
    open_pair.deliver(encode_method_frame(channel, close))
    open_pair.sent()
    assert open_pair.open_channel(channel) == channel
    open_pair.client.close_channel(channel)
    open_pair.sent()
    events = open_pair.deliver(encode_method_frame(channel, spec.Channel.CloseOk()))
    assert [type(e) for e in events] == [ev.ChannelClosed]


def test_close_ok_after_the_broker_closed_a_channel_we_did_not_close(open_pair: Pair) -> None:
    channel = open_pair.open_channel()
    close = spec.Channel.Close(reply_code=404, reply_text="x", class_id=0, method_id=0)
    open_pair.deliver(encode_method_frame(channel, close))
    open_pair.sent()
    # a stray method on a channel the broker closed is dropped (as pika does), not fatal
    assert open_pair.deliver(encode_method_frame(channel, spec.Channel.CloseOk())) == []
    assert open_pair.client.is_open
    # a frame on a channel that was never opened still is
    open_pair.expect_protocol_error(
        encode_method_frame(channel + 1, spec.Channel.CloseOk()), RemoteChannelError, 504
    )


def test_broker_refuses_to_open_a_channel(open_pair: Pair) -> None:
    channel = open_pair.client.open_channel()
    open_pair.sent()
    close = spec.Channel.Close(reply_code=530, reply_text="NOT_ALLOWED", class_id=20,
                               method_id=10)
    events = open_pair.deliver(encode_method_frame(channel, close))
    assert [type(e) for e in events] == [ev.ChannelClosed]
    assert open_pair.sent_methods() == [(channel, spec.Channel.CloseOk())]


# --------------------------------------------------------------------------- consumers


def test_consumer_tags_are_tracked(open_pair: Pair) -> None:
    client = open_pair.client
    channel = open_pair.open_channel()
    record = client.channel_record(channel)
    assert record is not None
    client.send_method(channel, spec.Basic.Consume(queue="q"))
    assert record.consumers == set()  # not before the broker confirms
    open_pair.deliver(encode_method_frame(channel, spec.Basic.ConsumeOk(consumer_tag="ctag-1")))
    client.send_method(channel, spec.Basic.Consume(queue="q", consumer_tag="mine"))
    open_pair.deliver(encode_method_frame(channel, spec.Basic.ConsumeOk(consumer_tag="mine")))
    assert record.consumers == {"ctag-1", "mine"}
    client.send_method(channel, spec.Basic.Cancel(consumer_tag="ctag-1"))
    open_pair.deliver(encode_method_frame(channel, spec.Basic.CancelOk(consumer_tag="ctag-1")))
    assert record.consumers == {"mine"}
    # the broker cancels the other one (queue deleted)
    events = open_pair.deliver(encode_method_frame(
        channel, spec.Basic.Cancel(consumer_tag="mine", nowait=True)))
    assert events == [ev.MethodReceived(channel_number=channel,
                                        method=spec.Basic.Cancel(consumer_tag="mine",
                                                                 nowait=True))]
    assert record.consumers == set()


# --------------------------------------------------------------------------- confirms


def test_publisher_confirm_sequence_numbers(open_pair: Pair) -> None:
    client = open_pair.client
    channel = open_pair.open_channel()
    assert client.basic_publish(channel, "", "q", b"before") == 0
    client.send_method(channel, spec.Confirm.Select())
    assert [client.basic_publish(channel, "", "q", b"m") for _ in range(3)] == [1, 2, 3]
    sent = open_pair.sent_methods()
    assert [type(m) for _, m in sent] == [spec.Basic.Publish, spec.Confirm.Select,
                                          *[spec.Basic.Publish] * 3]
    open_pair.deliver(encode_method_frame(channel, spec.Confirm.SelectOk()))
    events = open_pair.deliver(
        encode_method_frame(channel, spec.Basic.Ack(delivery_tag=2, multiple=True)),
        encode_method_frame(channel, spec.Basic.Nack(delivery_tag=3, multiple=False)),
    )
    assert [e.method for e in events if isinstance(e, ev.MethodReceived)] == [
        spec.Basic.Ack(delivery_tag=2, multiple=True),
        spec.Basic.Nack(delivery_tag=3, multiple=False),
    ]
    assert client.basic_publish(channel, "", "q", b"m") == 4
    record = client.channel_record(channel)
    assert record is not None and record.in_confirm_mode and record.next_publish_seq == 5
    open_pair.sent()
    other = open_pair.open_channel()
    assert client.basic_publish(other, "", "q", b"m") == 0


# --------------------------------------------------------------------------- publishing


def published(pair: Pair) -> list[tuple[Any, spec.BasicProperties | None, int, bytes]]:
    """``(Basic.Publish, properties, announced size, body)`` for every message the client sent."""
    messages: list[tuple[Any, spec.BasicProperties | None, int, bytes]] = []
    for sent in pair.sent():
        if sent.kind == "method":
            messages.append((sent.method, None, -1, b""))
        elif sent.kind == "header":
            method, _, _, _ = messages[-1]
            messages[-1] = (method, sent.properties, sent.body_size, b"")
        elif sent.kind == "body":
            method, props, size, body = messages[-1]
            messages[-1] = (method, props, size, body + sent.payload)
    return messages


@pytest.mark.parametrize("body_size", [0, 1, 4088, 4089, 10_000])
@pytest.mark.parametrize("with_properties", [False, True])
def test_publish_splits_bodies_at_a_small_frame_max(
    make_pair: Callable[..., Pair], body_size: int, with_properties: bool
) -> None:
    pair = make_pair(frame_max=4096)
    pair.handshake(frame_max=131072)
    assert pair.client.frame_max == 4096
    channel = pair.open_channel()
    body = bytes(i % 256 for i in range(body_size))
    props = spec.BasicProperties(content_type="a/b", delivery_mode=2) if with_properties else None
    pair.client.basic_publish(channel, "amq.direct", "key", body, props, mandatory=True)
    queued = pair.client.bytes_to_send
    raw = pair.client.data_to_send()
    assert queued == len(raw)
    sent = pair.peer.parse(raw)
    assert [s.kind for s in sent] == ["method", "header"] + ["body"] * -(-body_size // 4088)
    assert all(len(s.payload) <= 4088 for s in sent)
    assert sent[0].method == spec.Basic.Publish(exchange="amq.direct", routing_key="key",
                                                mandatory=True)
    assert sent[1].body_size == body_size
    assert sent[1].properties == (props or spec.BasicProperties())
    assert b"".join(s.payload for s in sent[2:]) == body


def test_publish_body_types(open_pair: Pair) -> None:
    channel = open_pair.open_channel()
    client = open_pair.client
    client.basic_publish(channel, "", "q", "h\u00e9llo")
    client.basic_publish(channel, "", "q", bytearray(b"ba"))
    client.basic_publish(channel, "", "q", memoryview(b"mv"))
    assert [body for *_, body in published(open_pair)] == [b"h\xc3\xa9llo", b"ba", b"mv"]


def test_many_publishes_in_one_write(open_pair: Pair) -> None:
    channel = open_pair.open_channel()
    for index in range(100):
        open_pair.client.basic_publish(channel, "ex", f"rk{index % 3}", b"%d" % index)
    messages = published(open_pair)
    assert [body for *_, body in messages] == [b"%d" % i for i in range(100)]
    assert [m.routing_key for m, *_ in messages] == [f"rk{i % 3}" for i in range(100)]


def test_acks_nacks_rejects_on_the_wire(open_pair: Pair) -> None:
    channel = open_pair.open_channel()
    client = open_pair.client
    client.basic_ack(channel, 2**64 - 1, multiple=True)
    client.basic_ack(channel)
    client.basic_nack(channel, 3, multiple=False, requeue=False)
    client.basic_nack(channel, 4)
    client.basic_reject(channel, 5)
    client.basic_reject(channel, 6, requeue=False)
    assert open_pair.sent_methods() == [
        (channel, spec.Basic.Ack(delivery_tag=2**64 - 1, multiple=True)),
        (channel, spec.Basic.Ack(delivery_tag=0, multiple=False)),
        (channel, spec.Basic.Nack(delivery_tag=3, multiple=False, requeue=False)),
        (channel, spec.Basic.Nack(delivery_tag=4, multiple=False, requeue=True)),
        (channel, spec.Basic.Reject(delivery_tag=5, requeue=True)),
        (channel, spec.Basic.Reject(delivery_tag=6, requeue=False)),
    ]


# --------------------------------------------------------------------------- returns, deliveries


def test_basic_return(open_pair: Pair, how: str) -> None:
    channel = open_pair.open_channel()
    returned = spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="ex",
                                 routing_key="nowhere")
    props = spec.BasicProperties(message_id="m1")
    events = open_pair.deliver(open_pair.peer.content(channel, returned, b"lost", props), how=how)
    assert events == [ev.Returned(channel_number=channel, method=returned, properties=props,
                                  body=b"lost")]


@pytest.mark.parametrize("body_size", [0, 1, 131064, 131065, 300_000])
def test_delivery(open_pair: Pair, how: str, body_size: int) -> None:
    channel = open_pair.open_channel()
    body = bytes(i % 253 for i in range(body_size))
    props = spec.BasicProperties(content_type="text/plain", headers={"k": [1, "v"]},
                                 delivery_mode=2, timestamp=1_700_000_000)
    events = open_pair.deliver(open_pair.peer.deliver(channel, body, 7, properties=props), how=how)
    (event,) = events
    assert isinstance(event, ev.Delivery)
    assert event.channel_number == channel
    assert event.method == spec.Basic.Deliver(consumer_tag="ctag", delivery_tag=7,
                                              redelivered=False, exchange="ex", routing_key="rk")
    assert event.properties == props
    assert event.body == body and type(event.body) is bytes
    assert open_pair.client.data_to_send() == b""


def test_many_deliveries_in_one_chunk(open_pair: Pair) -> None:
    one, two = open_pair.open_channel(), open_pair.open_channel()
    # interleaved per frame across two channels is legal; within a channel the frames are ordered
    data = b"".join(
        open_pair.peer.deliver(one if tag % 2 else two, b"m%d" % tag, tag) for tag in range(1, 501)
    )
    events = open_pair.deliver(data)
    assert [(e.channel_number, e.method.delivery_tag, e.body) for e in events
            if isinstance(e, ev.Delivery)] == [
        (one if tag % 2 else two, tag, b"m%d" % tag) for tag in range(1, 501)
    ]
    assert len(events) == 500


def test_deliveries_interleaved_across_channels_frame_by_frame(open_pair: Pair) -> None:
    one, two = open_pair.open_channel(), open_pair.open_channel()
    first = [deliver_method(one, 1), header_frame(one, 2), raw_frame(3, one, b"ab")]
    second = [deliver_method(two, 2), header_frame(two, 2), raw_frame(3, two, b"cd")]
    data = b"".join(frame for pair in zip(first, second, strict=True) for frame in pair)
    events = open_pair.deliver(data)
    assert [(e.channel_number, e.body) for e in events if isinstance(e, ev.Delivery)] == [
        (one, b"ab"), (two, b"cd")
    ]


def test_delivery_while_a_request_is_pending(open_pair: Pair) -> None:
    channel = open_pair.open_channel()
    open_pair.client.send_method(channel, spec.Queue.Declare(queue="q"))
    open_pair.sent()
    events = open_pair.deliver(
        open_pair.peer.deliver(channel, b"x"),
        encode_method_frame(channel, declare_ok("q")),
    )
    assert [type(e) for e in events] == [ev.Delivery, ev.RpcReply]


# --------------------------------------------------------------------------- protocol errors


CHANNEL_ERRORS: list[tuple[str, Callable[[int], bytes], type[Exception], int]] = [
    ("ack-on-unopened-channel", lambda ch: encode_method_frame(9, spec.Basic.Ack()),
     RemoteChannelError, 504),
    ("deliver-on-unopened-channel", lambda ch: deliver_method(9), RemoteChannelError, 504),
    ("open-ok-on-unopened-channel", lambda ch: encode_method_frame(9, spec.Channel.OpenOk()),
     RemoteChannelError, 504),
    ("close-on-unopened-channel", lambda ch: encode_method_frame(9, spec.Channel.Close(
        reply_code=200, reply_text="", class_id=0, method_id=0)), RemoteChannelError, 504),
    ("body-on-unopened-channel", lambda ch: raw_frame(3, 9, b"x"), RemoteChannelError, 504),
    ("unknown-class", lambda ch: raw_method(ch, 99, 10), RemoteCommandInvalid, 503),
    ("unknown-method", lambda ch: raw_method(ch, 60, 99), RemoteCommandInvalid, 503),
    ("client-only-method", lambda ch: encode_method_frame(ch, spec.Basic.Publish()),
     RemoteCommandInvalid, 503),
    ("connection-method-on-channel", lambda ch: encode_method_frame(ch, spec.Connection.Tune()),
     RemoteCommandInvalid, 503),
    ("truncated-ack", lambda ch: raw_method(ch, 60, 80, b"\x00\x00\x00"), RemoteSyntaxError, 502),
    ("truncated-deliver", lambda ch: raw_method(ch, 60, 60, b"\x04ctag\x00"), RemoteSyntaxError,
     502),
    ("truncated-close", lambda ch: raw_method(ch, 20, 40, b"\x01\x94"), RemoteSyntaxError, 502),
    ("bad-table-in-headers", lambda ch: deliver_method(ch)
     + header_frame(ch, 0, b"\x20\x00" + b"\x00\x00\x00\x03\x01kZ"), RemoteSyntaxError, 502),
    ("header-without-method", lambda ch: header_frame(ch, 1), RemoteUnexpectedFrame, 505),
    ("body-without-method", lambda ch: raw_frame(3, ch, b"x"), RemoteUnexpectedFrame, 505),
    ("body-before-header", lambda ch: deliver_method(ch) + raw_frame(3, ch, b"x"),
     RemoteUnexpectedFrame, 505),
    ("method-inside-content", lambda ch: deliver_method(ch) + header_frame(ch, 5)
     + encode_method_frame(ch, spec.Basic.Ack()), RemoteUnexpectedFrame, 505),
    ("deliver-inside-content", lambda ch: deliver_method(ch) + header_frame(ch, 5)
     + deliver_method(ch), RemoteUnexpectedFrame, 505),
    ("body-longer-than-announced", lambda ch: deliver_method(ch) + header_frame(ch, 3)
     + raw_frame(3, ch, b"abcd"), RemoteBodyTooLong, 505),
    ("body-after-complete-content", lambda ch: deliver_method(ch) + header_frame(ch, 0)
     + raw_frame(3, ch, b""), RemoteUnexpectedFrame, 505),
    ("header-too-short", lambda ch: deliver_method(ch) + raw_frame(2, ch, b"\x00\x3c"),
     RemoteFrameError, 501),
    ("malformed-properties", lambda ch: deliver_method(ch)
     + header_frame(ch, 0, b"\x80\x00\x09ab"), RemoteSyntaxError, 502),
    ("unsolicited-reply", lambda ch: encode_method_frame(ch, declare_ok("q")),
     RemoteUnexpectedFrame, 505),
    ("unsolicited-get-ok", lambda ch: BrokerContent.get_ok(ch), RemoteUnexpectedFrame, 505),
    ("unsolicited-close-ok", lambda ch: encode_method_frame(ch, spec.Channel.CloseOk()),
     RemoteUnexpectedFrame, 505),
    ("open-ok-twice", lambda ch: encode_method_frame(ch, spec.Channel.OpenOk()),
     RemoteUnexpectedFrame, 505),
]


class BrokerContent:
    """Content-carrying frames built without the peer fixture (for the table above)."""

    @staticmethod
    def get_ok(channel: int) -> bytes:
        method = spec.Basic.GetOk(delivery_tag=1, redelivered=False, exchange="", routing_key="q",
                                  message_count=0)
        pieces = encode_content(channel, 60, b"\x00\x00", b"x", 131072)
        return encode_method_frame(channel, method) + b"".join(bytes(p) for p in pieces)


@pytest.mark.parametrize(
    ("build", "error_type", "reply_code"),
    [case[1:] for case in CHANNEL_ERRORS],
    ids=[case[0] for case in CHANNEL_ERRORS],
)
def test_channel_level_protocol_errors(
    open_pair: Pair, build: Callable[[int], bytes], error_type: type[Exception], reply_code: int
) -> None:
    channel = open_pair.open_channel()
    open_pair.expect_protocol_error(build(channel), error_type, reply_code)


def test_wrong_reply_to_the_pending_request(open_pair: Pair) -> None:
    channel = open_pair.open_channel()
    open_pair.client.send_method(channel, spec.Queue.Declare(queue="q"))
    open_pair.sent()
    error = open_pair.expect_protocol_error(
        encode_method_frame(channel, spec.Queue.BindOk()), RemoteUnexpectedFrame, 505
    )
    assert "Queue.Declare" in str(error)


def test_announced_body_over_the_limit_is_refused_before_the_body(
    make_pair: Callable[..., Pair],
) -> None:
    pair = make_pair(max_body_size=1000)
    pair.handshake()
    channel = pair.open_channel()
    # only the method and the header: the body is never waited for
    pair.expect_protocol_error(
        deliver_method(channel) + header_frame(channel, 1001), RemoteBodyTooLong, 501
    )


def test_body_at_the_limit_is_accepted(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(max_body_size=1000)
    pair.handshake()
    channel = pair.open_channel()
    (event,) = pair.deliver(pair.peer.deliver(channel, b"x" * 1000))
    assert isinstance(event, ev.Delivery) and len(event.body) == 1000


# --------------------------------------------------------------------------- local errors


def assert_nothing_queued(pair: Pair) -> None:
    assert pair.client.bytes_to_send == 0
    assert pair.client.data_to_send() == b""


def test_commands_on_unknown_or_closed_channels(open_pair: Pair) -> None:
    client = open_pair.client
    closed = open_pair.open_channel()
    client.close_channel(closed)
    open_pair.deliver(encode_method_frame(closed, spec.Channel.CloseOk()))
    open_pair.sent()
    commands: list[Callable[[int], object]] = [
        lambda channel: client.send_method(channel, spec.Basic.Qos()),
        lambda channel: client.basic_publish(channel, "", "q", b"x"),
        lambda channel: client.basic_ack(channel, 1),
        lambda channel: client.basic_nack(channel, 1),
        lambda channel: client.basic_reject(channel, 1),
        lambda channel: client.close_channel(channel),
    ]
    for channel in (closed, 42):
        for command in commands:
            with pytest.raises(ChannelWrongStateError) as info:
                command(channel)
            assert isinstance(info.value, LocalProtocolError)
            assert_nothing_queued(open_pair)


@pytest.mark.parametrize("number", [0, -1, 2048, 65536])
def test_channel_number_out_of_range(open_pair: Pair, number: int) -> None:
    assert open_pair.client.channel_max == 2047
    with pytest.raises(InvalidChannelNumber):
        open_pair.client.open_channel(number)
    assert_nothing_queued(open_pair)


@pytest.mark.parametrize("number", ["1", 1.0, True])
def test_channel_number_of_the_wrong_type(open_pair: Pair, number: Any) -> None:
    with pytest.raises(TypeError, match="channel_number"):
        open_pair.client.open_channel(number)
    assert_nothing_queued(open_pair)


def test_channel_number_in_use(open_pair: Pair) -> None:
    channel = open_pair.open_channel()
    with pytest.raises(InvalidChannelNumber, match="in use"):
        open_pair.client.open_channel(channel)
    opening = open_pair.client.open_channel()
    open_pair.sent()
    with pytest.raises(InvalidChannelNumber):
        open_pair.client.open_channel(opening)
    assert_nothing_queued(open_pair)


def test_no_free_channels(make_pair: Callable[..., Pair]) -> None:
    pair = make_pair(channel_max=3)
    pair.handshake(channel_max=2047)
    assert [pair.client.open_channel() for _ in range(3)] == [1, 2, 3]
    pair.sent()
    with pytest.raises(NoFreeChannels):
        pair.client.open_channel()
    with pytest.raises(InvalidChannelNumber):
        pair.client.open_channel(4)
    assert_nothing_queued(pair)


@pytest.mark.parametrize("body", [None, 5, 1.5, ["a"], {"a": 1}, object()])
def test_publish_with_a_body_that_is_not_bytes(open_pair: Pair, body: Any) -> None:
    channel = open_pair.open_channel()
    with pytest.raises(TypeError, match="body"):
        open_pair.client.basic_publish(channel, "", "q", body)
    assert_nothing_queued(open_pair)


@pytest.mark.parametrize(
    ("kwargs", "error_type"),
    [
        ({"exchange": 5}, TypeError),
        ({"routing_key": None}, TypeError),
        ({"routing_key": "k" * 256}, ShortStringTooLong),
        ({"exchange": "e" * 256}, ShortStringTooLong),
        ({"properties": "text/plain"}, TypeError),
        ({"properties": {"content_type": "a"}}, TypeError),
        ({"properties": spec.BasicProperties(headers={"bad": object()})},
         UnsupportedAMQPFieldException),
        ({"properties": spec.BasicProperties(content_type="c" * 256)}, ShortStringTooLong),
        ({"properties": spec.BasicProperties(delivery_mode=300)}, ValueError),
        ({"properties": spec.BasicProperties(priority="high")}, TypeError),
    ],
    ids=repr,
)
def test_publish_with_bad_arguments_queues_nothing(
    open_pair: Pair, kwargs: dict[str, Any], error_type: type[Exception]
) -> None:
    channel = open_pair.open_channel()
    arguments: dict[str, Any] = {"exchange": "", "routing_key": "q", "body": b"x"}
    arguments.update(kwargs)
    with pytest.raises(error_type):
        open_pair.client.basic_publish(channel, **arguments)
    assert_nothing_queued(open_pair)
    # and the connection is still usable
    open_pair.client.basic_publish(channel, "", "q", b"fine")
    assert [body for *_, body in published(open_pair)] == [b"fine"]


@pytest.mark.parametrize("tag", ["1", 1.0, None, True, b"1"])
@pytest.mark.parametrize("method", ["basic_ack", "basic_nack", "basic_reject"])
def test_wrong_delivery_tag_type(open_pair: Pair, method: str, tag: Any) -> None:
    channel = open_pair.open_channel()
    with pytest.raises(TypeError, match="delivery_tag"):
        getattr(open_pair.client, method)(channel, tag)
    assert_nothing_queued(open_pair)


@pytest.mark.parametrize("tag", [-1, 2**64])
def test_delivery_tag_out_of_range(open_pair: Pair, tag: int) -> None:
    channel = open_pair.open_channel()
    with pytest.raises(ValueError, match="delivery_tag"):
        open_pair.client.basic_ack(channel, tag)
    assert_nothing_queued(open_pair)


@pytest.mark.parametrize(
    "method",
    [
        spec.Queue.Declare(queue=5),  # type: ignore[arg-type]
        spec.Queue.Declare(queue="q" * 256),
        spec.Basic.Qos(prefetch_count=-1),
        spec.Queue.Declare(arguments={"x": object()}),
    ],
    ids=repr,
)
def test_send_method_with_bad_arguments_queues_nothing(open_pair: Pair, method: Any) -> None:
    channel = open_pair.open_channel()
    open_pair.client.send_method(channel, spec.Queue.Declare(queue="first"))
    open_pair.sent()
    with pytest.raises((TypeError, ValueError, ShortStringTooLong,
                        UnsupportedAMQPFieldException)):
        open_pair.client.send_method(channel, method)
    assert_nothing_queued(open_pair)
    # nothing was added to the RPC queue either: the reply releases nothing
    open_pair.deliver(encode_method_frame(channel, declare_ok("first")))
    assert_nothing_queued(open_pair)


@pytest.mark.parametrize("method", [None, "Queue.Declare", spec.Queue.Declare],
                         ids=repr)
def test_send_method_with_something_that_is_not_a_method(open_pair: Pair, method: Any) -> None:
    channel = open_pair.open_channel()
    with pytest.raises(TypeError, match="method"):
        open_pair.client.send_method(channel, method)
    assert_nothing_queued(open_pair)


def test_frames_trailing_a_broker_close_are_dropped_until_reopened(open_pair: Pair) -> None:
    # RabbitMQ may still deliver on a channel after it sent Channel.Close for it (the
    # deliveries were already queued); they must not bring the whole connection down
    channel = open_pair.open_channel()
    peer = open_pair.peer
    close = spec.Channel.Close(reply_code=406, reply_text="PRECONDITION_FAILED", class_id=60,
                               method_id=80)
    events = open_pair.deliver(
        peer.method(channel, close),
        peer.deliver(channel, b"late", 5),
        peer.method(channel, spec.Basic.Cancel(consumer_tag="ctag")),
    )
    assert events == [ev.ChannelClosed(channel_number=channel, reply_code=406,
                                       reply_text="PRECONDITION_FAILED", by_peer=True)]
    assert not open_pair.client.is_closed
    open_pair.sent()  # the Close-Ok
    # the number is reused: once its Open-Ok arrives, traffic counts again
    assert open_pair.open_channel(channel) == channel
    events = open_pair.deliver(peer.deliver(channel, b"fresh", 1))
    assert [e.body for e in events if isinstance(e, ev.Delivery)] == [b"fresh"]
