"""Byte builders for a misbehaving AMQP peer: one malformed or illegal input per protocol fault.

Theory of operation: each :class:`Misbehaviour` names one way a broker can break AMQP 0-9-1,
builds the exact bytes for it with amqp_core's own codec (``protocol.frames`` and the ``spec``
classes, then a deliberate cut or a wrong value), and says what a correct client must make of
it: the :mod:`amqp_core.exceptions` class, its reply code, and whether the client answers
with a ``Connection.Close`` of that code before closing the socket.

* :data:`AFTER_OPEN` -- sent on an open connection that has channel ``channel`` open;
* :data:`UNBOUNDED` -- a frame or body size that must be refused from the header alone,
  without buffering (or allocating) what it announces;
* :data:`GREETINGS` -- what the peer answers the protocol header with instead of
  Connection.Start (see ``ScriptedPeer(greeting=...)``).

The reply codes follow the AMQP 0-9-1 specification, section 4.2: 501 FRAME_ERROR for an
oversized frame (4.2.3) or a content header of another class than its method (4.2.6.1); a bad
frame-end octet or an unknown frame type is "a fatal protocol error": the connection is closed
"without sending any further data" (4.2.3), so no Close; 502 SYNTAX_ERROR for arguments or a
property list that cannot be decoded (a truncated field table); 503 COMMAND_INVALID for a
class/method id that names no command (the spec names no code for it: 503 is "an operation
considered invalid", where 540 NOT_IMPLEMENTED would claim a feature we lack); 504
CHANNEL_ERROR for a channel that was never opened; 505 UNEXPECTED_FRAME for badly-formatted
content, such as a body longer than its header announced (4.2.6).  An announced body over the
client's own ``max_body_size`` is 501, as an oversized frame is.  Before Connection.Start,
bytes that cannot begin one mean the peer does not speak AMQP: IncompatibleProtocolError, as
pika reports, and nothing is sent.  The builders are plain functions, usable from the kit's
tests and from unit tests of the core alike.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable
from dataclasses import dataclass

from .. import exceptions, spec
from ..protocol.frames import FRAME_END, FRAME_HEADER, encode_method_frame

__all__ = [
    "AFTER_OPEN",
    "GREETINGS",
    "NEVER_OPENED_CHANNEL",
    "UNBOUNDED",
    "Misbehaviour",
    "content_header",
    "deliver",
    "raw_frame",
    "raw_method",
]

#: A channel number the tests never open.
NEVER_OPENED_CHANNEL = 7
#: frame_max the kit's peer proposes for these cases (small, so "too large" is cheap).
FRAME_MAX = 8192

_CONTENT_HEADER = struct.Struct(">HHQ")


@dataclass(frozen=True)
class Misbehaviour:
    """One fault, its bytes and the client's expected reaction.

    :param name: a test id
    :param build: ``build(channel_number)`` -> the bytes the peer sends
    :param error: the exact exception class the connection must end with
    :param reply_code: the exception's reply code (None: it has none)
    :param what: the fault, in words
    :param sends_close: whether the client sends Connection.Close with ``reply_code`` before
        closing the socket (else it sends nothing more)
    """

    name: str
    build: Callable[[int], bytes]
    error: type[Exception]
    reply_code: int | None
    what: str
    sends_close: bool = True


def raw_frame(frame_type: int, channel: int, payload: bytes, end: bytes = FRAME_END) -> bytes:
    """Any frame, valid or not (``end`` other than ``b"\\xce"`` makes it malformed)."""
    return FRAME_HEADER.pack(frame_type, channel, len(payload)) + payload + end


def raw_method(channel: int, class_id: int, method_id: int, arguments: bytes = b"") -> bytes:
    """A method frame with any class/method id and any argument bytes."""
    return raw_frame(spec.FRAME_METHOD, channel, struct.pack(">HH", class_id, method_id)
                     + arguments)


def deliver(channel: int, delivery_tag: int = 1) -> bytes:
    """A well-formed Basic.Deliver method frame (its content must follow)."""
    return encode_method_frame(channel, spec.Basic.Deliver(
        consumer_tag="ctag-kit", delivery_tag=delivery_tag, redelivered=False, exchange="",
        routing_key="kit"))


def content_header(channel: int, body_size: int, properties: bytes = b"\x00\x00") -> bytes:
    """A content header frame (class 60) announcing ``body_size``, with raw property bytes."""
    return raw_frame(spec.FRAME_HEADER, channel,
                     _CONTENT_HEADER.pack(60, 0, body_size) + properties)


def _body(channel: int, data: bytes) -> bytes:
    return raw_frame(spec.FRAME_BODY, channel, data)


def _bad_frame_end(_channel: int) -> bytes:
    frame = encode_method_frame(0, spec.Connection.Blocked(reason="kit"))
    return frame[:-1] + b"\x00"


def _truncated_headers_table(channel: int) -> bytes:
    # property flags: headers only (bit 13); the table announces 100 bytes, 4 follow
    properties = struct.pack(">HI", 0x2000, 100) + b"\x01kS\x00"
    return deliver(channel) + content_header(channel, 5, properties) + _body(channel, b"hello")


def _truncated_method_arguments(channel: int) -> bytes:
    # Basic.Deliver: consumer-tag announces 200 bytes, the frame ends after 3
    return raw_method(channel, 60, 60, b"\xc8abc")


def _body_longer_than_header(channel: int) -> bytes:
    return deliver(channel) + content_header(channel, 4) + _body(channel, b"0123456789")


def _body_overflows_in_second_frame(channel: int) -> bytes:
    return (deliver(channel) + content_header(channel, 10) + _body(channel, b"012345")
            + _body(channel, b"678901"))


def _frame_over_frame_max(channel: int) -> bytes:
    return _body(channel, b"x" * (FRAME_MAX + 1))


AFTER_OPEN: tuple[Misbehaviour, ...] = (
    Misbehaviour("frame-over-frame-max", _frame_over_frame_max, exceptions.RemoteFrameError,
                 spec.FRAME_ERROR, "a body frame one byte larger than the negotiated frame_max"),
    Misbehaviour("bad-frame-end", _bad_frame_end, exceptions.RemoteFrameError,
                 spec.FRAME_ERROR, "a Connection.Blocked frame ending in 0x00, not 0xce",
                 sends_close=False),
    Misbehaviour("unknown-frame-type", lambda _ch: raw_frame(9, 0, b"xyz"),
                 exceptions.RemoteFrameError, spec.FRAME_ERROR, "a frame of type 9",
                 sends_close=False),
    Misbehaviour("unknown-class", lambda _ch: raw_method(0, 99, 10),
                 exceptions.RemoteCommandInvalid, spec.COMMAND_INVALID,
                 "a method of class 99, which does not exist"),
    Misbehaviour("unknown-method", lambda ch: raw_method(ch, 60, 999),
                 exceptions.RemoteCommandInvalid, spec.COMMAND_INVALID,
                 "method 999 of class basic, which does not exist"),
    Misbehaviour("truncated-headers-table", _truncated_headers_table,
                 exceptions.RemoteSyntaxError, spec.SYNTAX_ERROR,
                 "a delivery whose headers table announces 100 bytes and holds 4"),
    Misbehaviour("truncated-method-arguments", _truncated_method_arguments,
                 exceptions.RemoteSyntaxError, spec.SYNTAX_ERROR,
                 "a Basic.Deliver whose consumer tag runs past the end of the frame"),
    Misbehaviour("body-longer-than-header", _body_longer_than_header,
                 exceptions.RemoteBodyTooLong, spec.UNEXPECTED_FRAME,
                 "a 10-byte body frame after a header announcing 4 bytes"),
    Misbehaviour("body-overflows-in-second-frame", _body_overflows_in_second_frame,
                 exceptions.RemoteBodyTooLong, spec.UNEXPECTED_FRAME,
                 "two 6-byte body frames after a header announcing 10 bytes"),
    Misbehaviour("header-of-another-class",
                 lambda ch: deliver(ch) + raw_frame(spec.FRAME_HEADER, ch,
                                                    _CONTENT_HEADER.pack(50, 0, 0) + b"\x00\x00"),
                 exceptions.RemoteFrameError, spec.FRAME_ERROR,
                 "a Basic.Deliver followed by a content header of class 50 (queue)"),
    Misbehaviour("method-on-unopened-channel",
                 lambda _ch: encode_method_frame(NEVER_OPENED_CHANNEL,
                                                 spec.Basic.Ack(delivery_tag=1)),
                 exceptions.RemoteChannelError, spec.CHANNEL_ERROR,
                 f"Basic.Ack on channel {NEVER_OPENED_CHANNEL}, never opened"),
    Misbehaviour("deliver-on-unopened-channel",
                 lambda _ch: deliver(NEVER_OPENED_CHANNEL)
                 + content_header(NEVER_OPENED_CHANNEL, 0),
                 exceptions.RemoteChannelError, spec.CHANNEL_ERROR,
                 f"Basic.Deliver on channel {NEVER_OPENED_CHANNEL}, never opened"),
)

UNBOUNDED: tuple[Misbehaviour, ...] = (
    Misbehaviour("frame-of-4-gib", lambda ch: FRAME_HEADER.pack(spec.FRAME_BODY, ch,
                                                                 0xFFFFFFFF),
                 exceptions.RemoteFrameError, spec.FRAME_ERROR,
                 "a frame header announcing 4 GiB, and nothing after it"),
    Misbehaviour("body-of-2-63-bytes", lambda ch: deliver(ch) + content_header(ch, 1 << 63),
                 exceptions.RemoteBodyTooLong, spec.FRAME_ERROR,
                 "a content header announcing a body of 2**63 bytes, and no body"),
)


def _random_garbage() -> bytes:
    data = random.Random(20261128).randbytes(256)
    assert not data.startswith((b"AMQP", b"\x01\x00\x00")), "pick another seed"
    return data


def _truncated_start(_channel: int) -> bytes:
    # Connection.Start 0-9 whose server-properties table announces 1000 bytes, 5 follow
    return raw_method(0, 10, 10, b"\x00\x09" + struct.pack(">I", 1000) + b"\x04hostS")


GREETINGS: tuple[Misbehaviour, ...] = (
    Misbehaviour("http-reply",
                 lambda _ch: b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
                 exceptions.IncompatibleProtocolError, None,
                 "an HTTP server's answer instead of Connection.Start", sends_close=False),
    Misbehaviour("random-bytes", lambda _ch: _random_garbage(),
                 exceptions.IncompatibleProtocolError, None,
                 "256 random bytes instead of Connection.Start", sends_close=False),
    Misbehaviour("truncated-start-table", _truncated_start, exceptions.RemoteSyntaxError,
                 spec.SYNTAX_ERROR,
                 "a Connection.Start whose server-properties table runs past the frame"),
)
