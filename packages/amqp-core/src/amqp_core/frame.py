"""pika-compatible frame objects (``frame.Method``, ``frame.Header`` ...) and ``decode_frame``.

Theory of operation: the protocol core parses frames itself (see
:mod:`amqp_core.protocol.frames`); these classes exist because pika's public
callbacks hand ``frame.Method`` objects to applications (RPC completion
callbacks, ``add_on_cancel_callback``, Blocked/Unblocked) and because tools
built on pika call ``decode_frame``/``marshal``.  They are thin wrappers over
the same codec.
"""

from __future__ import annotations

import struct
from typing import Any

from . import amqp_object, spec
from .exceptions import InvalidFrameError, ProtocolSyntaxError
from .protocol.frames import (
    FRAME_END,
    FRAME_END_BYTE,
    FRAME_HEADER,
    encode_content,
    encode_method_frame,
)

__all__ = ["Body", "Frame", "Header", "Heartbeat", "Method", "ProtocolHeader", "decode_frame"]


class Frame(amqp_object.AMQPObject):
    """Base of every frame.

    :param frame_type: FRAME_METHOD, FRAME_HEADER, FRAME_BODY or FRAME_HEARTBEAT
    :param channel_number: the channel the frame travels on
    """

    NAME = "Frame"

    def __init__(self, frame_type: int, channel_number: int) -> None:
        self.frame_type = frame_type
        self.channel_number = channel_number

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in sorted(vars(self).items()))
        return f"<{self.NAME}({fields})>"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def marshal(self) -> bytes:
        """Encode the whole frame."""
        raise NotImplementedError


class Method(Frame):
    """A method frame: ``.method`` is the ``spec`` method object."""

    NAME = "METHOD"

    def __init__(self, channel_number: int, method: Any) -> None:
        super().__init__(spec.FRAME_METHOD, channel_number)
        self.method = method

    def marshal(self) -> bytes:
        """Encode the whole frame."""
        return encode_method_frame(self.channel_number, self.method)


class Header(Frame):
    """A content header frame."""

    NAME = "Header"

    def __init__(self, channel_number: int, body_size: int, props: spec.BasicProperties) -> None:
        super().__init__(spec.FRAME_HEADER, channel_number)
        self.body_size = body_size
        self.properties = props

    def marshal(self) -> bytes:
        """Encode the whole frame."""
        payload = b"".join(self.properties.encode())
        header = encode_content(self.channel_number, 60, payload, b"", spec.FRAME_MAX_SIZE)
        raw = b"".join(header)
        # encode_content wrote body size 0; patch in the announced size
        return raw[:11] + struct.pack(">Q", self.body_size) + raw[19:]


class Body(Frame):
    """A content body frame."""

    NAME = "Body"

    def __init__(self, channel_number: int, fragment: bytes) -> None:
        super().__init__(spec.FRAME_BODY, channel_number)
        self.fragment = fragment

    def marshal(self) -> bytes:
        """Encode the whole frame."""
        return (
            FRAME_HEADER.pack(spec.FRAME_BODY, self.channel_number, len(self.fragment))
            + bytes(self.fragment)
            + FRAME_END
        )


class Heartbeat(Frame):
    """A heartbeat frame (always channel 0)."""

    NAME = "Heartbeat"

    def __init__(self) -> None:
        super().__init__(spec.FRAME_HEARTBEAT, 0)

    def marshal(self) -> bytes:
        """Encode the whole frame."""
        return FRAME_HEADER.pack(spec.FRAME_HEARTBEAT, 0, 0) + FRAME_END


class ProtocolHeader(amqp_object.AMQPObject):
    """The ``AMQP\\x00\\x00\\x09\\x01`` preamble."""

    NAME = "ProtocolHeader"

    def __init__(self, major: int | None = None, minor: int | None = None,
                 revision: int | None = None) -> None:
        self.frame_type = -1
        self.major = spec.PROTOCOL_VERSION[0] if major is None else major
        self.minor = spec.PROTOCOL_VERSION[1] if minor is None else minor
        self.revision = spec.PROTOCOL_VERSION[2] if revision is None else revision

    def __repr__(self) -> str:
        return f"<ProtocolHeader({self.major}, {self.minor}, {self.revision})>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProtocolHeader) and (
            (self.major, self.minor, self.revision) == (other.major, other.minor, other.revision)
        )

    def marshal(self) -> bytes:
        """Encode the preamble."""
        return b"AMQP" + struct.pack("BBBB", 0, self.major, self.minor, self.revision)


def decode_frame(data_in: bytes) -> tuple[int, Frame | ProtocolHeader | None]:
    """Decode one frame from the start of ``data_in``.

    :returns: ``(bytes_consumed, frame)``; ``(0, None)`` when more data is needed
    :raises InvalidFrameError: malformed frame
    """
    if data_in[:4] == b"AMQP":
        if len(data_in) < 8:
            return 0, None
        major, minor, revision = data_in[5], data_in[6], data_in[7]
        return 8, ProtocolHeader(major, minor, revision)
    if len(data_in) < 8:
        return 0, None
    frame_type, channel, size = FRAME_HEADER.unpack_from(data_in, 0)
    end = 7 + size
    if len(data_in) < end + 1:
        return 0, None
    if data_in[end] != FRAME_END_BYTE:
        raise InvalidFrameError("Invalid FRAME_END marker")
    payload = bytes(data_in[7:end])
    consumed = end + 1
    try:
        if frame_type == spec.FRAME_METHOD:
            class_id, method_id = struct.unpack_from(">HH", payload, 0)
            method_class = spec.methods.get((class_id << 16) | method_id)
            if method_class is None:
                raise InvalidFrameError(f"Unknown method {class_id}/{method_id}")
            # fix: ``method_class()`` raised TypeError for methods whose constructor has
            # required arguments (Connection.UpdateSecret); decode fills every field anyway
            return consumed, Method(channel, object.__new__(method_class).decode(payload, 4))
        if frame_type == spec.FRAME_HEADER:
            (body_size,) = struct.unpack_from(">Q", payload, 4)
            props = spec.BasicProperties().decode(payload, 12)
            return consumed, Header(channel, body_size, props)
        if frame_type == spec.FRAME_BODY:
            return consumed, Body(channel, payload)
        if frame_type == spec.FRAME_HEARTBEAT:
            return consumed, Heartbeat()
    except (struct.error, ProtocolSyntaxError) as error:
        raise InvalidFrameError(str(error)) from None
    raise InvalidFrameError(f"Unknown frame type: {frame_type}")

