"""Helpers for the bytes-in/events-out tests of the sans-I/O core.

Theory of operation: a :class:`BrokerPeer` plays the broker's side of the wire.  It builds
frames from the ``amqp_core.spec`` classes with the same encoders the core uses
(``protocol.frames``) and parses whatever the client queued into :class:`Sent` records, so a
test reads like a conversation::

    pair = Pair()
    pair.handshake()
    channel = pair.open_channel()
    events = pair.deliver(BrokerPeer.method(channel, spec.Basic.Ack(delivery_tag=1)))

:class:`Pair` (after h11's ``ConnectionPair``) holds the client :class:`Connection` and its
peer.  ``deliver(data, how=...)`` feeds bytes to the client in one of three ways (whole, one
byte at a time, or followed by trailing bytes of the next frame) and drains the events, every
loop bounded.  Nothing here touches a private attribute except :func:`buffered`, which reads
(never writes) the frame reader's fill level for the "bounded buffering" invariant.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from amqp_core import spec
from amqp_core.credentials import PlainCredentials
from amqp_core.protocol import NEED_DATA, Connection
from amqp_core.protocol import events as ev
from amqp_core.protocol.frames import (
    FRAME_END,
    FRAME_HEADER,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    FrameReader,
    encode_content,
    encode_method_frame,
)

#: Upper bound on events drained from one call (every loop in a test is bounded).
MAX_EVENTS = 100_000

#: The three ways every parser is fed.
FEEDS = ("whole", "bytewise", "trailing")

#: Trailing bytes used by the "trailing" feed: the first half of a heartbeat frame, valid to
#: follow any frame in any state.  The rest is fed afterwards and must parse cleanly.
TRAILER = HEARTBEAT_FRAME[:4]
TRAILER_REST = HEARTBEAT_FRAME[4:]

#: A sample value per AMQP argument type, to build every method with non-default arguments.
SAMPLE_BY_KIND: dict[str, Any] = {
    "octet": 7,
    "short": 300,
    "long": 70_000,
    "longlong": 2**40,
    "shortstr": "s-name",
    "longstr": b"long\x00str",
    "table": {"k": 1, "nested": {"a": [1, "x", None]}},
    "bit": True,
    "timestamp": 12345,
}


def sample_method(method_class: type[Any]) -> Any:
    """An instance of ``method_class`` with a sample value in every argument."""
    return method_class(
        **{
            name: SAMPLE_BY_KIND[kind]
            for name, kind in zip(method_class._FIELDS, method_class._KINDS, strict=True)
        }
    )


@dataclass
class Sent:
    """One frame the client sent, as the broker sees it."""

    kind: str  # "protocol-header" | "method" | "header" | "body" | "heartbeat"
    channel: int = 0
    method: Any = None
    properties: spec.BasicProperties | None = None
    body_size: int = 0
    payload: bytes = b""


@dataclass
class BrokerPeer:
    """The broker's side: encodes frames for the client, decodes what the client sent."""

    _reader: FrameReader = field(default_factory=lambda: FrameReader(1 << 30))
    _expect_protocol_header: bool = True

    # ---------------------------------------------------------------- encoding

    @staticmethod
    def method(channel: int, method: Any) -> bytes:
        """One method frame."""
        return encode_method_frame(channel, method)

    @staticmethod
    def content(
        channel: int,
        method: Any,
        body: bytes = b"",
        properties: spec.BasicProperties | None = None,
        frame_max: int = spec.FRAME_MAX_SIZE,
    ) -> bytes:
        """A content-carrying method followed by its header and body frames."""
        props = properties if properties is not None else spec.BasicProperties()
        pieces = encode_content(channel, 60, b"".join(props.encode()), body, frame_max)
        return encode_method_frame(channel, method) + b"".join(bytes(p) for p in pieces)

    @staticmethod
    def raw_frame(frame_type: int, channel: int, payload: bytes, end: bytes = FRAME_END) -> bytes:
        """Any frame, even an invalid one."""
        return FRAME_HEADER.pack(frame_type, channel, len(payload)) + payload + end

    @staticmethod
    def raw_method(channel: int, class_id: int, method_id: int, arguments: bytes = b"") -> bytes:
        """A method frame with hand-made argument bytes."""
        return BrokerPeer.raw_frame(1, channel, struct.pack(">HH", class_id, method_id) + arguments)

    @staticmethod
    def deliver(
        channel: int,
        body: bytes,
        delivery_tag: int = 1,
        consumer_tag: str = "ctag",
        properties: spec.BasicProperties | None = None,
        frame_max: int = spec.FRAME_MAX_SIZE,
    ) -> bytes:
        """A Basic.Deliver with content."""
        method = spec.Basic.Deliver(
            consumer_tag=consumer_tag, delivery_tag=delivery_tag, redelivered=False,
            exchange="ex", routing_key="rk",
        )
        return BrokerPeer.content(channel, method, body, properties, frame_max)

    @staticmethod
    def start(mechanisms: str = "PLAIN AMQPLAIN", major: int = 0, minor: int = 9) -> bytes:
        """Connection.Start as RabbitMQ sends it."""
        return encode_method_frame(
            0,
            spec.Connection.Start(
                version_major=major,
                version_minor=minor,
                server_properties={"product": "RabbitMQ", "capabilities": {"basic.nack": True}},
                mechanisms=mechanisms,
                locales="en_US",
            ),
        )

    @staticmethod
    def tune(channel_max: int = 2047, frame_max: int = 131072, heartbeat: int = 60) -> bytes:
        """Connection.Tune."""
        return encode_method_frame(
            0,
            spec.Connection.Tune(channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat),
        )

    @staticmethod
    def open_ok() -> bytes:
        """Connection.OpenOk."""
        return encode_method_frame(0, spec.Connection.OpenOk())

    # ---------------------------------------------------------------- decoding

    def parse(self, data: bytes) -> list[Sent]:
        """Decode every complete frame the client sent (the protocol header first)."""
        reader = self._reader
        reader.feed(data)
        sent: list[Sent] = []
        if self._expect_protocol_header:
            header = reader.take(8)
            if header is None:
                return sent
            assert header == PROTOCOL_HEADER, header
            self._expect_protocol_header = False
            sent.append(Sent("protocol-header", payload=header))
        for _ in range(MAX_EVENTS):
            frame = reader.next_frame()
            if frame is None:
                break
            frame_type, channel, payload = frame
            if frame_type == 1:
                class_id, method_id = struct.unpack_from(">HH", payload)
                method_class = spec.methods[(class_id << 16) | method_id]
                method = object.__new__(method_class).decode(payload, 4)
                sent.append(Sent("method", channel, method=method))
            elif frame_type == 2:
                (body_size,) = struct.unpack_from(">Q", payload, 4)
                properties = spec.BasicProperties().decode(payload, 12)
                sent.append(Sent("header", channel, properties=properties, body_size=body_size))
            elif frame_type == 3:
                sent.append(Sent("body", channel, payload=bytes(payload)))
            elif frame_type == 8:
                sent.append(Sent("heartbeat", channel))
            else:  # pragma: no cover - the client never sends other frame types
                raise AssertionError(f"client sent frame type {frame_type}")
        assert reader.buffered == 0, "the client queued a partial frame"
        return sent


def drain(conn: Connection) -> list[ev.Event]:
    """Every event the client can produce from what it has buffered."""
    events: list[ev.Event] = []
    for _ in range(MAX_EVENTS):
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        assert isinstance(event, ev.Event)
        events.append(event)
    raise AssertionError("next_event() never returned NEED_DATA")


def feed(conn: Connection, data: bytes, how: str = "whole") -> list[ev.Event]:
    """Feed ``data`` to the client in the named way and return the events.

    ``trailing`` appends half a heartbeat frame, checks it produced nothing, then feeds the
    other half and checks it parses cleanly (the trailing bytes were kept, at a frame boundary).
    """
    if how == "whole":
        conn.receive_data(data)
        return drain(conn)
    if how == "bytewise":
        events: list[ev.Event] = []
        for index in range(len(data)):
            conn.receive_data(data[index : index + 1])
            events.extend(drain(conn))
        return events
    if how == "trailing":
        conn.receive_data(data + TRAILER)
        events = drain(conn)
        if not conn.is_closed:
            conn.receive_data(TRAILER_REST)
            assert drain(conn) == []
        return events
    raise ValueError(how)


def buffered(conn: Connection) -> int:
    """Bytes the client holds unparsed (read-only look at its frame reader)."""
    return conn._reader.buffered


class Pair:
    """A client core and a scripted broker peer.

    :param kwargs: passed to :class:`Connection` (credentials default to guest/guest)
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("credentials", PlainCredentials("guest", "guest"))
        self.client = Connection(**kwargs)
        self.peer = BrokerPeer()

    def deliver(self, *chunks: bytes, how: str = "whole") -> list[ev.Event]:
        """Feed broker bytes to the client; return the events."""
        return feed(self.client, b"".join(chunks), how)

    def drain(self) -> list[ev.Event]:
        """Every event the client can produce from what it has buffered."""
        return drain(self.client)

    def buffered(self) -> int:
        """Bytes the client holds unparsed."""
        return buffered(self.client)

    def expect_protocol_error(
        self, data: bytes, error_type: type[Exception], reply_code: int
    ) -> Exception:
        """See :func:`expect_protocol_error`."""
        return expect_protocol_error(self, data, error_type, reply_code)

    def sent(self) -> list[Sent]:
        """Decode everything the client queued since the last call."""
        return self.peer.parse(self.client.data_to_send())

    def sent_methods(self) -> list[tuple[int, Any]]:
        """``(channel, method)`` of every method frame the client queued (other frames dropped)."""
        return [(s.channel, s.method) for s in self.sent() if s.kind == "method"]

    def handshake(
        self,
        channel_max: int = 2047,
        frame_max: int = 131072,
        heartbeat: int = 0,
        how: str = "whole",
    ) -> ev.ConnectionOpened:
        """Run the handshake to OPEN; return the ConnectionOpened event."""
        self.client.initiate()
        assert [s.kind for s in self.sent()] == ["protocol-header"]
        assert self.deliver(self.peer.start(), how=how) == []
        assert [type(m) for _, m in self.sent_methods()] == [spec.Connection.StartOk]
        assert self.deliver(self.peer.tune(channel_max, frame_max, heartbeat), how=how) == []
        assert [type(m) for _, m in self.sent_methods()] == [
            spec.Connection.TuneOk, spec.Connection.Open,
        ]
        events = self.deliver(self.peer.open_ok(), how=how)
        assert len(events) == 1 and isinstance(events[0], ev.ConnectionOpened), events
        assert self.client.is_open
        assert self.client.data_to_send() == b""
        return events[0]

    def open_channel(self, number: int | None = None) -> int:
        """Open a channel through Channel.Open / Channel.OpenOk; return its number."""
        channel = self.client.open_channel(number)
        assert self.sent_methods() == [(channel, spec.Channel.Open())]
        events = self.deliver(self.peer.method(channel, spec.Channel.OpenOk()))
        assert events == [ev.ChannelOpened(channel_number=channel)]
        return channel


def expect_protocol_error(
    pair: Pair, data: bytes, error_type: type[Exception], reply_code: int
) -> Exception:
    """Feed ``data``; the client must raise ``error_type`` and queue Connection.Close.

    Also checks the error is sticky: every later ``next_event()`` raises the same object.
    """
    client = pair.client
    client.receive_data(data)
    with pytest.raises(error_type) as info:
        drain(client)
    error = info.value
    assert getattr(error, "reply_code", None) == reply_code, error
    methods = pair.sent_methods()
    assert methods, "no Connection.Close was queued"
    channel, close = methods[-1]
    assert channel == 0 and isinstance(close, spec.Connection.Close)
    assert close.reply_code == reply_code
    assert client.is_closed
    for _ in range(3):
        with pytest.raises(error_type) as again:
            client.next_event()
        assert again.value is error
    client.receive_data(b"\x08\x00\x00\x00\x00\x00\x00\xce")
    with pytest.raises(error_type):
        client.next_event()
    assert client.data_to_send() == b""
    return error


@pytest.fixture(params=FEEDS)
def how(request: pytest.FixtureRequest) -> str:
    """Each parser test runs three ways: whole, byte by byte, and with trailing data."""
    return str(request.param)


@pytest.fixture
def pair() -> Pair:
    """A client/broker pair, not yet connected."""
    return Pair()


@pytest.fixture
def open_pair() -> Pair:
    """A client/broker pair past the handshake (no heartbeat)."""
    p = Pair()
    p.handshake()
    return p


@pytest.fixture
def make_pair() -> Callable[..., Pair]:
    """Factory: ``make_pair(**connection_kwargs)`` (for non-default settings)."""
    return Pair


@pytest.fixture
def peer() -> BrokerPeer:
    """A broker-side peer on its own (for the encoders and the client-output parser)."""
    return BrokerPeer()


@pytest.fixture(name="sample_method")
def sample_method_fixture() -> Callable[[type[Any]], Any]:
    """:func:`sample_method` as a fixture."""
    return sample_method
