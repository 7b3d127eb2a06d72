"""Frame reading and frame encoding.

Theory of operation: AMQP frames are ``type(1) channel(2) size(4) payload
frame-end(0xCE)``.  :class:`FrameReader` keeps the unread bytes in one buffer
and parses frames out of it by offset; the consumed prefix is dropped once per
``feed`` rather than once per frame, so a 256 KiB read holding a thousand
small deliveries costs one trim.  A frame spanning several reads is joined
once, when complete, not once per read.  "Need more" is a return value
(``None``).

The reader enforces the negotiated ``frame_max`` (a frame larger than that is
a 501 frame error, detected from the 7-byte header, before the payload is
buffered) and the frame-end octet.  Because a frame can never exceed
``max_frame_size``, the buffer never holds more than one frame plus one read.

Encoding helpers build whole frames with one ``struct.pack`` for the header;
``encode_content`` splits a body into frames of at most ``frame_max`` bytes
using memoryview slices, so the body is not copied until the final join.
"""

from __future__ import annotations

import struct
from typing import Any, Final

from .. import spec
from ..amqp_object import Method
from ..exceptions import (
    ProtocolSyntaxError,
    RemoteCommandInvalid,
    RemoteFrameError,
    RemoteSyntaxError,
)

FRAME_HEADER: Final = struct.Struct(">BHI")
FRAME_END: Final = b"\xce"
FRAME_END_BYTE: Final = 0xCE
#: type + channel + size + frame-end
FRAME_OVERHEAD: Final = 8

PROTOCOL_HEADER: Final = b"AMQP\x00\x00\x09\x01"

HEARTBEAT_FRAME: Final = FRAME_HEADER.pack(spec.FRAME_HEARTBEAT, 0, 0) + FRAME_END

_METHOD_HEADER = struct.Struct(">BHIHH")
_CONTENT_HEADER = struct.Struct(">BHIHHQ")


class FrameReader:
    """Parses frames out of the bytes fed to it.

    :param max_frame_size: largest acceptable frame, overhead included
        (the negotiated frame_max; before tuning, what we proposed)
    """

    __slots__ = ("_buffer", "_pending", "_pending_size", "_position", "_wanted", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        self._buffer: bytes = b""
        self._position = 0
        #: reads held back while one large frame is incomplete (None: not waiting)
        self._pending: list[bytes] | None = None
        self._pending_size = 0
        self._wanted = 0
        self.max_frame_size = max_frame_size

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as frames."""
        if self._pending is not None:
            return self._pending_size
        return len(self._buffer) - self._position

    def feed(self, data: bytes) -> None:
        """Append received bytes.

        A frame that spans many reads is not re-joined on every read: once its
        header is known, the reads are held in a list and joined once, when the
        frame is complete (small reads of a 128 KiB frame would otherwise cost
        quadratic copying).
        """
        pending = self._pending
        if pending is not None:
            pending.append(data)
            self._pending_size += len(data)
            return
        buffer = self._buffer
        position = self._position
        remainder = len(buffer) - position
        if remainder <= 0:
            self._buffer = bytes(data)
        elif remainder >= 7 and (
            wanted := FRAME_HEADER.unpack_from(buffer, position)[2] + FRAME_OVERHEAD
        ) > remainder + len(data) and wanted <= self.max_frame_size:
            # the frame at the front is still incomplete: hold the reads (an oversized
            # frame is joined as usual, so next_frame refuses it at once)
            self._pending = [buffer[position:], bytes(data)]
            self._pending_size = remainder + len(data)
            self._wanted = wanted
            self._buffer = b""
        elif position:
            self._buffer = b"".join((memoryview(buffer)[position:], data))
        else:
            self._buffer = buffer + data
        self._position = 0

    def _join_pending(self) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            self._buffer = b"".join(pending)
            self._position = 0

    def startswith(self, prefix: bytes) -> bool | None:
        """Whether the unread bytes start with ``prefix``; None until enough is buffered."""
        self._join_pending()
        available = self._buffer[self._position : self._position + len(prefix)]
        if len(available) < len(prefix):
            return None if prefix.startswith(available) else False
        return available == prefix

    def take(self, count: int) -> bytes | None:
        """Take ``count`` raw bytes (the peer's protocol header), or None if not buffered yet."""
        self._join_pending()
        end = self._position + count
        if end > len(self._buffer):
            return None
        raw = self._buffer[self._position : end]
        self._position = end
        return raw

    def next_frame(self) -> tuple[int, int, bytes] | None:
        """Return ``(frame_type, channel, payload)`` or None when more bytes are needed.

        :raises RemoteFrameError: oversized frame, or a bad frame-end octet (then with
            ``sends_close=False``)
        """
        if self._pending is not None:
            if self._pending_size < self._wanted:
                return None
            self._join_pending()
        buffer = self._buffer
        position = self._position
        # fix: was ``< FRAME_OVERHEAD`` (8), so an oversized frame whose 7-byte header had
        # arrived alone was not refused until one more byte came
        if len(buffer) - position < 7:
            return None
        frame_type, channel, size = FRAME_HEADER.unpack_from(buffer, position)
        if size + FRAME_OVERHEAD > self.max_frame_size:
            raise RemoteFrameError(
                spec.FRAME_ERROR,
                f"frame of {size + FRAME_OVERHEAD} bytes exceeds frame_max {self.max_frame_size}"
            )
        end = position + 7 + size
        if end >= len(buffer):
            return None
        if buffer[end] != FRAME_END_BYTE:
            raise RemoteFrameError(
                spec.FRAME_ERROR, f"frame-end octet was {buffer[end]:#04x}, expected 0xce",
                sends_close=False,  # spec 4.2.3: close without sending any further data
            )
        self._position = end + 1
        return frame_type, channel, buffer[position + 7 : end]

    def maybe_next_payload(self, frame_type: int, channel: int) -> bytes | None:
        """Take the next frame's payload if it is a complete, well-formed frame of this type
        on this channel; otherwise None and nothing is consumed.

        A shortcut for the content frames that follow a delivery; anything unusual
        (another channel, an incomplete, oversized or malformed frame) is left for
        :meth:`next_frame`, which reports it.
        """
        buffer = self._buffer
        position = self._position
        if self._pending is not None or len(buffer) - position < FRAME_OVERHEAD:
            return None
        kind, number, size = FRAME_HEADER.unpack_from(buffer, position)
        end = position + 7 + size
        if (
            kind != frame_type
            or number != channel
            or end >= len(buffer)
            or size + FRAME_OVERHEAD > self.max_frame_size
            or buffer[end] != FRAME_END_BYTE
        ):
            return None
        self._position = end + 1
        return buffer[position + 7 : end]


def encode_method_frame(channel: int, method: Method) -> bytes:
    """Encode a method as one frame."""
    index = method.INDEX
    assert index is not None
    arguments = b"".join(method.encode())
    return (
        _METHOD_HEADER.pack(
            spec.FRAME_METHOD, channel, len(arguments) + 4, index >> 16, index & 0xFFFF
        )
        + arguments
        + FRAME_END
    )


def encode_content(
    channel: int,
    class_id: int,
    properties_payload: bytes,
    body: bytes,
    frame_max: int,
) -> list[bytes]:
    """Encode a content header frame and the body frames (split at ``frame_max``)."""
    body_size = len(body)
    pieces = [
        _CONTENT_HEADER.pack(
            spec.FRAME_HEADER, channel, 12 + len(properties_payload), class_id, 0, body_size
        ),
        properties_payload,
        FRAME_END,
    ]
    if not body_size:
        return pieces
    chunk = frame_max - FRAME_OVERHEAD
    if body_size <= chunk:
        pieces.append(FRAME_HEADER.pack(spec.FRAME_BODY, channel, body_size))
        pieces.append(body)
        pieces.append(FRAME_END)
        return pieces
    view = memoryview(body)
    for start in range(0, body_size, chunk):
        part = view[start : start + chunk]
        pieces.append(FRAME_HEADER.pack(spec.FRAME_BODY, channel, len(part)))
        pieces.append(part)  # type: ignore[arg-type]
        pieces.append(FRAME_END)
    return pieces


def decode_method(index: int, payload: bytes) -> Any:
    """Decode a method frame's payload whose class/method id is ``index``.

    :raises RemoteCommandInvalid: an unknown class or method id (503)
    :raises RemoteSyntaxError: arguments that cannot be decoded (502)
    """
    method_class = spec.methods.get(index)
    if method_class is None:
        raise RemoteCommandInvalid(
            spec.COMMAND_INVALID, f"unknown class/method {index >> 16}/{index & 0xFFFF}"
        )
    try:
        # fix: ``method_class()`` raised TypeError (not a protocol error) for methods whose
        # constructor has required arguments (Connection.UpdateSecret); decode fills every field
        return object.__new__(method_class).decode(payload, 4)
    except ProtocolSyntaxError as error:
        raise RemoteSyntaxError(
            spec.SYNTAX_ERROR, f"cannot decode {method_class.NAME}: {error}"
        ) from None
