"""Per-channel protocol bookkeeping: RPC ordering, content assembly, consumers, confirms.

Theory of operation: a :class:`ChannelRecord` is plain data owned by the core
:class:`~amqp_core.protocol.connection.Connection`; it does no I/O and calls
nothing.  Three jobs:

* **RPC ordering.**  AMQP allows one outstanding synchronous request per
  channel.  ``rpc_in_flight`` is the request the broker is answering; further
  requests wait in ``rpc_queue`` (encoded already, so a bad argument fails at
  the call, not later) and are released one at a time as replies arrive.
* **Content assembly.**  Basic.Deliver / Return / GetOk are followed by a
  header frame and body frames.  :class:`ContentAssembler` collects them and
  rejects a body longer than its header announced, or longer than
  ``max_body_size`` (the bound on what one message may make us buffer).
* **Publisher state.**  Consumer tags acknowledged by the broker, confirm mode
  and the next publish sequence number, so the layers above (and a future
  recovery) can read them as data.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

from .. import spec
from ..exceptions import (
    ProtocolSyntaxError,
    RemoteBodyTooLong,
    RemoteFrameError,
    RemoteSyntaxError,
    RemoteUnexpectedFrame,
)
from .states import ChannelState

_EMPTY_BODY = b""
#: class-id, weight, body size
_HEADER_START = struct.Struct(">HHQ")
_BasicProperties = spec.BasicProperties
#: decode fills every property, so the constructor's defaults are skipped
_new_properties = _BasicProperties.__new__


class ContentAssembler:
    """Collects one message's header and body frames.

    :param max_body_size: the largest body accepted, in bytes
    """

    __slots__ = ("_chunks", "_received", "body_size", "max_body_size", "method", "properties")

    def __init__(self, max_body_size: int) -> None:
        self.max_body_size = max_body_size
        self.method: Any = None
        self.properties: spec.BasicProperties | None = None
        self.body_size = 0
        self._chunks: list[bytes] = []
        self._received = 0

    @property
    def active(self) -> bool:
        """Whether a content method is waiting for its header or body."""
        return self.method is not None

    def start(self, method: Any) -> None:
        """A content-carrying method arrived; its header must come next."""
        self.method = method
        self.properties = None

    def on_header(self, payload: bytes) -> bool:
        """Take the header frame payload; True when the (empty) body is complete.

        :raises RemoteBodyTooLong: announced size over ``max_body_size``
        :raises RemoteUnexpectedFrame: a second header for the same message
        :raises RemoteFrameError: a header frame too short to hold the body size, or of
            another class than its method
        :raises RemoteSyntaxError: a property list that cannot be decoded
        """
        if self.properties is not None:
            raise RemoteUnexpectedFrame(
                spec.UNEXPECTED_FRAME, "second content header for a message"
            )
        if len(payload) < 14:
            # fix: was RemoteBodyTooLong, which says the opposite of what went wrong
            raise RemoteFrameError(spec.FRAME_ERROR, "content header frame too short")
        class_id: int
        body_size: int
        class_id, _weight, body_size = _HEADER_START.unpack_from(payload)
        if class_id != self.method.INDEX >> 16:
            # fix: the class-id was not checked; spec 4.2.6.1 makes a mismatch a 501
            raise RemoteFrameError(
                spec.FRAME_ERROR,
                f"content header of class {class_id} for {self.method.NAME}",
            )
        if body_size > self.max_body_size:
            raise RemoteBodyTooLong(
                spec.FRAME_ERROR,
                f"announced body of {body_size} bytes exceeds the limit of {self.max_body_size}",
            )
        try:
            if len(payload) == 14 and payload[12] == 0 and payload[13] == 0:
                properties = _BasicProperties()  # no properties: what decode would give
            else:
                properties = _new_properties(_BasicProperties).decode(payload, 12)
        except ProtocolSyntaxError as error:
            # fix: a malformed property list escaped as InvalidFrameError, which is not a
            # RemoteProtocolError, so the core neither queued Connection.Close nor closed
            raise RemoteSyntaxError(
                spec.SYNTAX_ERROR, f"cannot decode the content header: {error}"
            ) from None
        self.properties = properties
        self.body_size = body_size
        self._received = 0
        return body_size == 0

    def on_body(self, payload: bytes) -> bool:
        """Take a body frame payload; True when the body is complete.

        :raises RemoteBodyTooLong: more bytes than the header announced (505)
        :raises RemoteUnexpectedFrame: a body frame before the header
        """
        if self.properties is None:
            raise RemoteUnexpectedFrame(spec.UNEXPECTED_FRAME, "body frame before content header")
        received = self._received + len(payload)
        if received > self.body_size:
            # fix: was 501; spec 4.2.6: badly-formatted content is 505 UNEXPECTED_FRAME
            raise RemoteBodyTooLong(
                spec.UNEXPECTED_FRAME,
                f"received {received} body bytes, header announced {self.body_size}",
            )
        self._chunks.append(payload)
        self._received = received
        return received == self.body_size

    def finish(self) -> tuple[Any, spec.BasicProperties, bytes]:
        """Return ``(method, properties, body)`` and reset for the next message."""
        chunks = self._chunks
        if not chunks:
            body = _EMPTY_BODY
        elif len(chunks) == 1:
            body = chunks.pop()
        else:
            body = b"".join(chunks)
            chunks.clear()
        result = (self.method, self.properties, body)
        self.method = None
        self.properties = None
        assert result[1] is not None
        return result  # type: ignore[return-value]


class ChannelRecord:
    """What the core knows about one channel.

    :param number: the channel number
    :param max_body_size: bound for content assembly
    """

    __slots__ = (
        "close_reason",
        "consumers",
        "content",
        "flow_active",
        "in_confirm_mode",
        "next_publish_seq",
        "number",
        "rpc_in_flight",
        "rpc_queue",
        "state",
    )

    def __init__(self, number: int, max_body_size: int) -> None:
        self.number = number
        self.state = ChannelState.OPENING
        #: the synchronous request the broker is answering, and its encoded frame
        self.rpc_in_flight: Any = None
        #: requests waiting for their turn: ``(method, encoded frame)``
        self.rpc_queue: deque[tuple[Any, bytes]] = deque()
        self.content = ContentAssembler(max_body_size)
        #: consumer tags the broker has confirmed (Consume-Ok) and not cancelled
        self.consumers: set[str] = set()
        self.in_confirm_mode = False
        #: sequence number the next publish gets in confirm mode (starts at 1)
        self.next_publish_seq = 1
        self.flow_active = True
        self.close_reason: tuple[int, str] = (200, "Normal shutdown")
