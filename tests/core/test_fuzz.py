"""The fuzz invariant of the core: after a completed handshake, any bytes from the peer yield
events or the core's own protocol error (a :class:`RemoteProtocolError` subclass), never another
exception, and never unbounded buffering.

When the error comes, ``data_to_send()`` holds a Connection.Close with the error's reply code
and every later ``next_event()`` raises the same error.  Three generators: raw bytes; frames
with valid headers and arbitrary or method-shaped payloads (which get past the frame reader into
the method, content and channel logic); and valid broker traffic cut at arbitrary points, whose
events must be exactly right.
"""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amqp_core import spec
from amqp_core.credentials import PlainCredentials
from amqp_core.exceptions import RemoteProtocolError
from amqp_core.protocol import NEED_DATA, Connection
from amqp_core.protocol import events as ev
from amqp_core.protocol.frames import FRAME_HEADER, encode_content, encode_method_frame

FRAME_MAX = 4096
MAX_BODY = 50_000
FUZZ_SETTINGS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

SAMPLE_BY_KIND: dict[str, Any] = {
    "octet": 7, "short": 300, "long": 70_000, "longlong": 2**40, "shortstr": "s",
    "longstr": b"l", "table": {"k": [1, "x"]}, "bit": True, "timestamp": 1,
}


def sample_payload(method_class: type[Any]) -> bytes:
    method = method_class(**{
        name: SAMPLE_BY_KIND[kind]
        for name, kind in zip(method_class._FIELDS, method_class._KINDS, strict=True)
    })
    return encode_method_frame(0, method)[7:-1]


#: A valid argument payload for every method (any of which the fuzzer may send on any channel).
METHOD_PAYLOADS = [sample_payload(cls) for cls in spec.methods.values()]


def opened_client() -> Connection:
    """A client past the handshake with channels in interesting states.

    Channel 1 consumes, channel 2 is in confirm mode, channel 3 has an RPC in flight and one
    queued, channel 4 is closing, channel 5 is still opening.
    """
    client = Connection(
        credentials=PlainCredentials("guest", "guest"), frame_max=FRAME_MAX,
        max_body_size=MAX_BODY,
    )
    events: list[ev.Event] = []

    def pump(data: bytes) -> None:
        client.receive_data(data)
        while (event := client.next_event()) is not NEED_DATA:
            assert isinstance(event, ev.Event)
            events.append(event)

    client.initiate()
    pump(
        encode_method_frame(0, spec.Connection.Start(mechanisms="PLAIN"))
        + encode_method_frame(0, spec.Connection.Tune(channel_max=8, frame_max=FRAME_MAX,
                                                      heartbeat=0))
        + encode_method_frame(0, spec.Connection.OpenOk())
    )
    for number in (1, 2, 3, 4, 5):
        client.open_channel(number)
    pump(b"".join(encode_method_frame(number, spec.Channel.OpenOk()) for number in (1, 2, 3, 4)))
    client.send_method(1, spec.Basic.Consume(queue="q", consumer_tag="ctag"))
    pump(encode_method_frame(1, spec.Basic.ConsumeOk(consumer_tag="ctag")))
    client.send_method(2, spec.Confirm.Select())
    pump(encode_method_frame(2, spec.Confirm.SelectOk()))
    client.send_method(3, spec.Queue.Declare(queue="q"))
    client.send_method(3, spec.Basic.Get(queue="q"))
    client.close_channel(4)
    assert [type(e) for e in events] == [ev.ConnectionOpened, *[ev.ChannelOpened] * 4,
                                         ev.RpcReply, ev.RpcReply]
    client.data_to_send()
    return client


def check_invariant(client: Connection, chunks: list[bytes]) -> list[ev.Event]:
    """Feed the chunks; assert the invariant; return the events."""
    events: list[ev.Event] = []
    error: RemoteProtocolError | None = None
    for chunk in chunks:
        client.receive_data(chunk)
        try:
            for _ in range(100_000):
                event = client.next_event()
                if event is NEED_DATA:
                    break
                assert isinstance(event, ev.Event), event
                events.append(event)
            else:
                raise AssertionError("next_event() never returned NEED_DATA")
        except RemoteProtocolError as raised:
            error = raised
            break
        # bounded buffering: at most one partial frame is held
        assert client._reader.buffered < FRAME_MAX
        client.data_to_send()  # whatever the core answered (Flow-Ok, Close-Ok, next RPC)
    if error is not None:
        assert 500 <= error.reply_code <= 541
        out = client.data_to_send()
        close_frame = encode_method_frame(
            0, spec.Connection.Close(reply_code=error.reply_code,
                                     reply_text=error.reply_text[:255], class_id=0, method_id=0)
        )
        if error.sends_close:
            assert out.endswith(close_frame)
        else:  # spec 4.2.3: nothing more is sent after a bad frame-end or frame type
            assert out == b""
        assert client.is_closed
        for _ in range(2):
            try:
                client.next_event()
            except RemoteProtocolError as again:
                assert again is error
            else:
                raise AssertionError("the protocol error was not sticky")
        client.receive_data(b"\x01\x00")
        assert client.data_to_send() == b""
    else:
        assert not any(isinstance(e, ev.ConnectionFailed) for e in events)
    return events


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    chunks, start = [], 0
    for point in [*points, len(data)]:
        chunks.append(data[start:point])
        start = point
    return [chunk for chunk in chunks if chunk] or [b""[:0] + data]


# --------------------------------------------------------------------------- raw bytes


@given(st.binary(min_size=1, max_size=3000), st.lists(st.integers(0, 3000), max_size=8))
@FUZZ_SETTINGS
def test_raw_bytes(data: bytes, cuts: list[int]) -> None:
    client = opened_client()
    check_invariant(client, cut(data, cuts))


# --------------------------------------------------------------------------- frame-shaped input

channels = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 6]), st.integers(0, 65535))
frame_types = st.one_of(st.sampled_from([1, 1, 1, 2, 3, 8]), st.integers(0, 255))


@st.composite
def method_payloads(draw: st.DrawFn) -> bytes:
    payload = draw(st.sampled_from(METHOD_PAYLOADS))
    mutation = draw(st.sampled_from(["keep", "truncate", "flip", "append", "ids-only"]))
    if mutation == "truncate":
        return payload[: draw(st.integers(0, len(payload)))]
    if mutation == "flip" and len(payload) > 4:
        index = draw(st.integers(4, len(payload) - 1))
        return payload[:index] + bytes((payload[index] ^ draw(st.integers(1, 255)),)) \
            + payload[index + 1 :]
    if mutation == "append":
        return payload + draw(st.binary(max_size=20))
    if mutation == "ids-only":
        return payload[:4] + draw(st.binary(max_size=40))
    return payload


VALID_PROPERTIES = [
    b"".join(spec.BasicProperties(content_type="t", headers={"a": [1, {"b": None}]},
                                  timestamp=5).encode()),
    b"".join(spec.BasicProperties(delivery_mode=2, priority=1, message_id="m").encode()),
]


@st.composite
def property_lists(draw: st.DrawFn) -> bytes:
    """Property flags and values: valid, valid but mutated, or arbitrary."""
    kind = draw(st.sampled_from(["empty", "valid", "truncated", "flipped", "random"]))
    if kind == "empty":
        return b"\x00\x00"
    props = draw(st.sampled_from(VALID_PROPERTIES))
    if kind == "truncated":
        return props[: draw(st.integers(0, len(props) - 1))]
    if kind == "flipped":
        index = draw(st.integers(0, len(props) - 1))
        return props[:index] + bytes((props[index] ^ draw(st.integers(1, 255)),)) \
            + props[index + 1 :]
    if kind == "random":
        return draw(st.binary(max_size=30))
    return props


@st.composite
def header_payloads(draw: st.DrawFn) -> bytes:
    size = draw(st.one_of(st.integers(0, 20), st.integers(0, 2**64 - 1)))
    props = draw(property_lists())
    return struct.pack(">HHQ", draw(st.sampled_from([60, 60, 10, 0])), 0, size) + props


@st.composite
def frames(draw: st.DrawFn) -> bytes:
    frame_type = draw(frame_types)
    payload = draw(st.one_of(
        method_payloads(), header_payloads(), st.binary(max_size=40),
    ))
    if frame_type == 2 and draw(st.booleans()):
        payload = draw(header_payloads())
    elif frame_type == 1 and draw(st.booleans()):
        payload = draw(method_payloads())
    size = len(payload)
    if draw(st.integers(0, 20)) == 0:
        size = draw(st.integers(0, 2**32 - 1))  # a lying size field
    end = b"\xce" if draw(st.integers(0, 30)) else bytes((draw(st.integers(0, 255)),))
    return FRAME_HEADER.pack(frame_type, draw(channels), size) + payload + end


@st.composite
def content_sequences(draw: st.DrawFn) -> bytes:
    """A content method with a header and bodies that may or may not add up."""
    channel = draw(st.sampled_from([1, 2, 3, 4, 5, 6]))
    method = draw(st.sampled_from([
        spec.Basic.Deliver(consumer_tag="ctag", delivery_tag=1, exchange="", routing_key="k"),
        spec.Basic.Return(reply_code=312, reply_text="NO_ROUTE", exchange="", routing_key="k"),
        spec.Basic.GetOk(delivery_tag=1, exchange="", routing_key="k", message_count=0),
    ]))
    announced = draw(st.integers(0, 100))
    bodies = draw(st.lists(st.binary(max_size=60), max_size=4))
    header = struct.pack(">HHQ", 60, 0, announced) + draw(property_lists())
    return (
        encode_method_frame(channel, method)
        + FRAME_HEADER.pack(2, channel, len(header)) + header + b"\xce"
        + b"".join(FRAME_HEADER.pack(3, channel, len(b)) + b + b"\xce" for b in bodies)
    )


@given(
    st.lists(st.one_of(frames(), content_sequences()), min_size=1, max_size=12),
    st.lists(st.integers(0, 2000), max_size=6),
)
@FUZZ_SETTINGS
def test_frame_shaped_input(stream: list[bytes], cuts: list[int]) -> None:
    client = opened_client()
    data = b"".join(stream)
    check_invariant(client, cut(data, cuts))


@given(st.lists(st.sampled_from(METHOD_PAYLOADS), min_size=1, max_size=10), channels)
@FUZZ_SETTINGS
def test_every_valid_method_on_any_channel(payloads: list[bytes], channel: int) -> None:
    client = opened_client()
    check_invariant(client, [b"".join(FRAME_HEADER.pack(1, channel, len(p)) + p + b"\xce"
                                      for p in payloads)])


# --------------------------------------------------------------------------- valid traffic


@given(
    st.lists(
        st.tuples(st.sampled_from([1, 2, 3]), st.binary(max_size=9000)), min_size=1, max_size=8
    ),
    st.lists(st.integers(0, 80_000), max_size=10),
)
@settings(max_examples=150, deadline=None)
def test_valid_deliveries_cut_anywhere(messages: list[tuple[int, bytes]], cuts: list[int]) -> None:
    client = opened_client()
    data = b"".join(
        encode_method_frame(channel, spec.Basic.Deliver(consumer_tag="ctag", delivery_tag=tag,
                                                        exchange="e", routing_key="k"))
        + b"".join(bytes(p) for p in encode_content(
            channel, 60, b"".join(spec.BasicProperties(message_id=str(tag)).encode()), body,
            FRAME_MAX))
        for tag, (channel, body) in enumerate(messages, start=1)
    )
    events = check_invariant(client, cut(data, cuts))
    assert [(e.channel_number, e.method.delivery_tag, e.properties.message_id, e.body)
            for e in events if isinstance(e, ev.Delivery)] == [
        (channel, tag, str(tag), body) for tag, (channel, body) in enumerate(messages, start=1)
    ]
    assert len(events) == len(messages)
