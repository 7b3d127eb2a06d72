"""Frame reading, frame encoding and content assembly (``protocol.frames``, ``protocol.channel``,
and the pika-compatible ``amqp_core.frame``).

Every reader is fed three ways (whole, one byte at a time, with trailing data); every method and
every property goes through a frame and back.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amqp_core import frame, spec
from amqp_core.exceptions import (
    InvalidFrameError,
    RemoteBodyTooLong,
    RemoteFrameError,
    RemoteProtocolError,
    RemoteUnexpectedFrame,
)
from amqp_core.protocol.channel import ContentAssembler
from amqp_core.protocol.frames import (
    FRAME_OVERHEAD,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    FrameReader,
    encode_content,
    encode_method_frame,
)

FRAMES = [
    encode_method_frame(1, spec.Basic.Ack(delivery_tag=7)),
    HEARTBEAT_FRAME,
    struct.pack(">BHI", 3, 2, 5) + b"hello" + b"\xce",
    struct.pack(">BHI", 3, 65535, 0) + b"\xce",
]
EXPECTED = [
    (1, 1, FRAMES[0][7:-1]),
    (8, 0, b""),
    (3, 2, b"hello"),
    (3, 65535, b""),
]


def read_all(reader: FrameReader) -> list[tuple[int, int, bytes]]:
    frames = []
    for _ in range(10_000):
        item = reader.next_frame()
        if item is None:
            return frames
        frames.append((item[0], item[1], bytes(item[2])))
    raise AssertionError("reader never asked for more")


# --------------------------------------------------------------------------- FrameReader


def test_reader_three_ways(how: str) -> None:
    reader = FrameReader(4096)
    data = b"".join(FRAMES)
    frames: list[tuple[int, int, bytes]] = []
    if how == "whole":
        reader.feed(data)
        frames = read_all(reader)
    elif how == "bytewise":
        for index in range(len(data)):
            reader.feed(data[index : index + 1])
            frames.extend(read_all(reader))
    else:
        trailing = HEARTBEAT_FRAME[:5]
        reader.feed(data + trailing)
        frames = read_all(reader)
        assert reader.buffered == len(trailing)
        reader.feed(HEARTBEAT_FRAME[5:])
        assert read_all(reader) == [(8, 0, b"")]
    assert frames == EXPECTED
    assert reader.buffered == 0


def test_need_more_is_a_return_value() -> None:
    reader = FrameReader(4096)
    assert reader.next_frame() is None
    frame_bytes = FRAMES[2]
    for cut in range(len(frame_bytes)):
        reader = FrameReader(4096)
        reader.feed(frame_bytes[:cut])
        assert reader.next_frame() is None
        assert reader.buffered == cut
    reader.feed(frame_bytes[cut:])
    assert read_all(reader) == [(3, 2, b"hello")]


def test_frame_of_exactly_frame_max_is_accepted() -> None:
    reader = FrameReader(4096)
    payload = b"x" * (4096 - FRAME_OVERHEAD)
    reader.feed(struct.pack(">BHI", 3, 1, len(payload)) + payload + b"\xce")
    assert read_all(reader) == [(3, 1, payload)]


@pytest.mark.parametrize("available", [7, 8, 100])
def test_oversized_frame_is_refused_from_its_header(available: int) -> None:
    # the 7-byte header is enough: the payload is never waited for nor buffered
    reader = FrameReader(4096)
    header = struct.pack(">BHI", 3, 1, 4096 - FRAME_OVERHEAD + 1)
    reader.feed((header + b"x" * 200)[:available])
    with pytest.raises(RemoteFrameError) as info:
        reader.next_frame()
    assert info.value.reply_code == spec.FRAME_ERROR == 501
    assert isinstance(info.value, RemoteProtocolError)
    assert isinstance(info.value, InvalidFrameError)  # pika's name still catches it


def test_oversized_frame_after_a_good_one() -> None:
    reader = FrameReader(4096)
    reader.feed(HEARTBEAT_FRAME + struct.pack(">BHI", 1, 0, 2**32 - 1))
    assert reader.next_frame() == (8, 0, b"")
    with pytest.raises(RemoteFrameError):
        reader.next_frame()


def test_max_frame_size_can_change_between_frames() -> None:
    reader = FrameReader(131072)
    big = struct.pack(">BHI", 3, 1, 5000) + b"x" * 5000 + b"\xce"
    reader.feed(big + big)
    assert reader.next_frame() is not None
    reader.max_frame_size = 4096
    with pytest.raises(RemoteFrameError):
        reader.next_frame()


@pytest.mark.parametrize("end", [b"\x00", b"\xcf", b"A"])
def test_bad_frame_end_octet(end: bytes) -> None:
    reader = FrameReader(4096)
    reader.feed(struct.pack(">BHI", 3, 1, 2) + b"ab" + end)
    with pytest.raises(RemoteFrameError, match="frame-end") as info:
        reader.next_frame()
    assert info.value.reply_code == 501


def test_protocol_header_helpers() -> None:
    reader = FrameReader(4096)
    assert reader.startswith(b"AMQP") is None  # nothing yet
    reader.feed(b"AM")
    assert reader.startswith(b"AMQP") is None
    assert reader.take(8) is None
    reader.feed(b"QP\x00\x00\x09\x01rest")
    assert reader.startswith(b"AMQP") is True
    assert reader.take(8) == PROTOCOL_HEADER
    assert reader.buffered == 4
    other = FrameReader(4096)
    other.feed(b"\x01")
    assert other.startswith(b"AMQP") is False


@given(st.lists(st.binary(max_size=300), max_size=20), st.data())
@settings(max_examples=200, deadline=None)
def test_reader_any_chunking(payloads: list[bytes], data: st.DataObject) -> None:
    frames = [struct.pack(">BHI", 3, 1, len(p)) + p + b"\xce" for p in payloads]
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    reader = FrameReader(4096)
    got: list[bytes] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        reader.feed(stream[start:cut])
        start = cut
        got.extend(payload for _, _, payload in read_all(reader))
        assert reader.buffered < 300 + FRAME_OVERHEAD  # at most one partial frame
    assert got == payloads
    assert reader.buffered == 0


# --------------------------------------------------------------------------- encoders


def test_heartbeat_and_protocol_header_bytes() -> None:
    assert HEARTBEAT_FRAME == b"\x08\x00\x00\x00\x00\x00\x00\xce"
    assert PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"


def test_method_frame_layout() -> None:
    data = encode_method_frame(5, spec.Basic.Ack(delivery_tag=2**40 + 1, multiple=True))
    assert data == (
        b"\x01\x00\x05\x00\x00\x00\x0d" + b"\x00\x3c\x00\x50"
        + struct.pack(">Q", 2**40 + 1) + b"\x01" + b"\xce"
    )


def test_every_method_through_a_frame(
    sample_method: Callable[[type[Any]], Any],
) -> None:
    # table-driven over spec.methods: encode a frame, read it back, decode the method
    reader = FrameReader(spec.FRAME_MAX_SIZE)
    for index, method_class in spec.methods.items():
        method = sample_method(method_class)
        data = encode_method_frame(3, method)
        reader.feed(data)
        frame_type, channel, payload = read_all(reader)[0]
        assert (frame_type, channel) == (1, 3)
        assert struct.unpack_from(">I", payload)[0] == index
        decoded = object.__new__(method_class).decode(payload, 4)
        assert decoded == method, method_class.NAME
        # the pika-compatible decoder agrees
        consumed, parsed = frame.decode_frame(data)
        assert consumed == len(data)
        assert isinstance(parsed, frame.Method) and parsed.method == method
        assert frame.Method(3, method).marshal() == data


def split(pieces: list[Any]) -> list[tuple[int, int, bytes]]:
    reader = FrameReader(1 << 20)
    reader.feed(b"".join(bytes(piece) for piece in pieces))
    return read_all(reader)


@pytest.mark.parametrize(
    ("body_size", "frame_max", "expected_sizes"),
    [
        (0, 4096, []),
        (1, 4096, [1]),
        (4088, 4096, [4088]),
        (4089, 4096, [4088, 1]),
        (10_000, 4096, [4088, 4088, 1824]),
        (3 * 4088, 4096, [4088, 4088, 4088]),
        (200_000, 131072, [131064, 68936]),
    ],
)
def test_encode_content_splits_at_frame_max(
    body_size: int, frame_max: int, expected_sizes: list[int]
) -> None:
    body = bytes(range(256)) * (body_size // 256) + bytes(body_size % 256)
    props = spec.BasicProperties(content_type="text/plain")
    frames = split(encode_content(9, 60, b"".join(props.encode()), body, frame_max))
    header, bodies = frames[0], frames[1:]
    assert header[0:2] == (2, 9)
    class_id, weight, announced = struct.unpack_from(">HHQ", header[2])
    assert (class_id, weight, announced) == (60, 0, body_size)
    assert spec.BasicProperties().decode(header[2], 12) == props
    assert [len(payload) for _, _, payload in bodies] == expected_sizes
    assert all(frame_type == 3 and channel == 9 for frame_type, channel, _ in bodies)
    assert all(len(payload) + FRAME_OVERHEAD <= frame_max for _, _, payload in bodies)
    assert b"".join(payload for _, _, payload in bodies) == body


# --------------------------------------------------------------------------- content assembly


def assemble(pieces: list[Any], max_body_size: int = 1 << 20) -> tuple[Any, Any, bytes]:
    assembler = ContentAssembler(max_body_size)
    method = spec.Basic.Deliver(consumer_tag="c", delivery_tag=1)
    assembler.start(method)
    assert assembler.active
    complete = False
    for frame_type, _, payload in split(pieces):
        assert not complete
        if frame_type == 2:
            complete = assembler.on_header(payload)
        else:
            complete = assembler.on_body(payload)
    assert complete
    result = assembler.finish()
    assert not assembler.active
    return result


@pytest.mark.parametrize("body_size", [0, 1, 4088, 4089, 50_000])
def test_content_reassembled(body_size: int) -> None:
    body = bytes(i % 251 for i in range(body_size))
    method, props, got = assemble(encode_content(1, 60, b"\x00\x00", body, 4096))
    assert isinstance(method, spec.Basic.Deliver)
    assert props == spec.BasicProperties()
    assert got == body and type(got) is bytes


PROPERTY_SAMPLES: dict[str, Any] = {
    "content_type": "application/json",
    "content_encoding": "gzip",
    "headers": {"x-delay": -1, "nested": {"list": [1, "two", None]}},
    "delivery_mode": 2,
    "priority": 9,
    "correlation_id": "corr-\u00e9",
    "reply_to": "amq.rabbitmq.reply-to",
    "expiration": "60000",
    "message_id": "id-1",
    "timestamp": 1_700_000_000,
    "type": "kind",
    "user_id": "guest",
    "app_id": "app",
    "cluster_id": "cluster",
}


def test_property_samples_cover_every_property() -> None:
    assert set(PROPERTY_SAMPLES) == set(spec.BasicProperties._FIELDS)


@pytest.mark.parametrize("name", list(PROPERTY_SAMPLES))
def test_each_property_through_a_header_frame(name: str) -> None:
    props = spec.BasicProperties(**{name: PROPERTY_SAMPLES[name]})
    _, got, body = assemble(encode_content(1, 60, b"".join(props.encode()), b"xyz", 4096))
    assert got == props and body == b"xyz"
    _, parsed = frame.decode_frame(frame.Header(1, 3, props).marshal())
    assert isinstance(parsed, frame.Header)
    assert parsed.properties == props and parsed.body_size == 3


def test_all_properties_at_once() -> None:
    props = spec.BasicProperties(**PROPERTY_SAMPLES)
    _, got, _ = assemble(encode_content(1, 60, b"".join(props.encode()), b"", 4096))
    assert got == props


def test_body_longer_than_announced_is_refused() -> None:
    assembler = ContentAssembler(1 << 20)
    assembler.start(spec.Basic.Deliver())
    header = split(encode_content(1, 60, b"\x00\x00", b"abc", 4096))[0][2]
    assert assembler.on_header(header) is False
    assert assembler.on_body(b"ab") is False
    with pytest.raises(RemoteBodyTooLong) as info:
        assembler.on_body(b"cd")
    assert info.value.reply_code == 505  # spec 4.2.6: badly-formatted content


def test_announced_size_over_the_limit_is_refused_at_the_header() -> None:
    assembler = ContentAssembler(1000)
    assembler.start(spec.Basic.Deliver())
    header = struct.pack(">HHQH", 60, 0, 1001, 0)
    with pytest.raises(RemoteBodyTooLong, match="1001") as info:
        assembler.on_header(header)
    assert info.value.reply_code == 501
    ok = ContentAssembler(1000)
    ok.start(spec.Basic.Deliver())
    assert ok.on_header(struct.pack(">HHQH", 60, 0, 1000, 0)) is False


def test_content_frames_out_of_order() -> None:
    assembler = ContentAssembler(1000)
    assembler.start(spec.Basic.Deliver())
    with pytest.raises(RemoteUnexpectedFrame) as info:
        assembler.on_body(b"x")
    assert info.value.reply_code == 505
    header = struct.pack(">HHQH", 60, 0, 5, 0)
    assembler.on_header(header)
    with pytest.raises(RemoteUnexpectedFrame):
        assembler.on_header(header)


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x00\x3c\x00\x00",
        struct.pack(">HHQ", 60, 0, 0),  # no property flags
        struct.pack(">HHQH", 60, 0, 0, 0x8000),  # content_type flagged, missing
        struct.pack(">HHQH", 60, 0, 0, 0x8000) + b"\x05ab",  # content_type truncated
        struct.pack(">HHQH", 60, 0, 0, 0x2000) + b"\x00\x00\x00\x09",  # headers truncated
        struct.pack(">HHQH", 60, 0, 0, 0x2000) + b"\x00\x00\x00\x03\x01kZ",  # unknown tag
        struct.pack(">HHQH", 60, 0, 0, 0x0040) + b"\x00",  # timestamp truncated
    ],
    ids=repr,
)
def test_malformed_header_is_a_remote_protocol_error(payload: bytes) -> None:
    # the core turns these into Connection.Close, so they must be RemoteProtocolError
    assembler = ContentAssembler(1000)
    assembler.start(spec.Basic.Deliver())
    with pytest.raises(RemoteProtocolError) as info:
        assembler.on_header(payload)
    assert info.value.reply_code in (501, 502)


# --------------------------------------------------------------------------- amqp_core.frame


def test_decode_frame_each_type() -> None:
    method = spec.Basic.Deliver(consumer_tag="c", delivery_tag=5, exchange="e", routing_key="r")
    props = spec.BasicProperties(content_type="text/plain", headers={"a": 1})
    cases: list[tuple[bytes, Any]] = [
        (frame.Method(1, method).marshal(), frame.Method(1, method)),
        (frame.Header(1, 5, props).marshal(), frame.Header(1, 5, props)),
        (frame.Body(1, b"hello").marshal(), frame.Body(1, b"hello")),
        (frame.Heartbeat().marshal(), frame.Heartbeat()),
        (frame.ProtocolHeader().marshal(), frame.ProtocolHeader()),
    ]
    for data, expected in cases:
        assert frame.decode_frame(data) == (len(data), expected)
        # with trailing data: only the first frame is consumed
        assert frame.decode_frame(data + HEARTBEAT_FRAME) == (len(data), expected)
        # every strict prefix asks for more
        for cut in range(len(data)):
            assert frame.decode_frame(data[:cut]) == (0, None), (expected, cut)
    assert frame.ProtocolHeader().marshal() == PROTOCOL_HEADER
    assert frame.decode_frame(b"AMQP\x00\x00\x09\x00")[1] == frame.ProtocolHeader(0, 9, 0)


def test_decode_frame_errors() -> None:
    with pytest.raises(InvalidFrameError):
        frame.decode_frame(struct.pack(">BHI", 3, 1, 1) + b"x\x00")
    with pytest.raises(InvalidFrameError):
        frame.decode_frame(struct.pack(">BHI", 9, 1, 0) + b"\xce")
    with pytest.raises(InvalidFrameError):
        frame.decode_frame(struct.pack(">BHI", 1, 1, 4) + b"\x00\x63\x00\x01\xce")
    with pytest.raises(InvalidFrameError):
        frame.decode_frame(struct.pack(">BHI", 1, 1, 2) + b"\x00\x3c\xce")
    with pytest.raises(InvalidFrameError):
        frame.decode_frame(struct.pack(">BHI", 2, 1, 3) + b"\x00\x3c\x00\xce")
