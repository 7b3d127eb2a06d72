"""The sans-I/O AMQP 0-9-1 client connection: bytes in, events out.

Theory of operation (after h11 and aioquic):

* ``receive_data(data)`` only buffers (``b""`` means end of stream);
  ``next_event()`` parses as much as one event needs and returns it, or
  :data:`~amqp_core.protocol.events.NEED_DATA`.
* Commands (``open_channel``, ``send_method``, ``basic_publish``, ``close``
  ...) validate their arguments, then append encoded frames to one outbound
  buffer; ``data_to_send()`` drains it, so a driver writes once per loop turn.
* Time is an argument: ``get_timer()`` is the next deadline, and
  ``handle_timer(now)`` sends heartbeats or declares the peer dead.
* The handshake (Start/Start-Ok, Secure/Secure-Ok, Tune/Tune-Ok, Open/Open-Ok)
  is answered by the core itself (the negotiation rules are
  :mod:`amqp_core.protocol.handshake`'s); the driver only sees ``ConnectionOpened``.
* Errors say who was wrong: commands raise
  :class:`~amqp_core.exceptions.LocalProtocolError` subclasses before
  encoding anything; a peer that breaks the protocol makes ``next_event()``
  queue Connection.Close with the matching reply code and raise a
  :class:`~amqp_core.exceptions.RemoteProtocolError` subclass, after which the
  connection is closed and every later call raises the same error.

Bounds: the frame reader holds at most one frame plus one read
(``frame_max``), one message body at most ``max_body_size`` bytes, and the
event queue at most the events of one frame.  The outbound buffer is the
driver's to bound (``bytes_to_send`` tells how much is queued).

State rules are in :mod:`amqp_core.protocol.states`; per-channel bookkeeping
in :mod:`amqp_core.protocol.channel`; frame parsing and method decoding in
:mod:`amqp_core.protocol.frames`; argument checks in :mod:`amqp_core.protocol.arguments`.
"""

from __future__ import annotations

import logging
import struct
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

from .. import spec
from ..amqp_object import Method
from ..exceptions import (
    AMQPConnectionError,
    AMQPHeartbeatTimeout,
    AuthenticationError,
    ChannelWrongStateError,
    ConnectionOpenAborted,
    ConnectionWrongStateError,
    IncompatibleProtocolError,
    InvalidChannelNumber,
    NoFreeChannels,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
    RemoteChannelError,
    RemoteCommandInvalid,
    RemoteFrameError,
    RemoteProtocolError,
    RemoteUnexpectedFrame,
    StreamLostError,
)
from . import events as ev
from .arguments import coerce_body, encode_publish_tail, require_flag
from .channel import ChannelRecord
from .frames import (
    FRAME_END,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    FrameReader,
    decode_method,
    encode_content,
    encode_method_frame,
)
from .handshake import Handshake, HeartbeatSetting, handshake_error
from .heartbeat import HeartbeatMonitor
from .states import (
    ALL_RPC_REPLIES,
    CHANNEL_ASYNC_METHODS,
    CHANNEL_USABLE,
    CONTENT_METHODS,
    FAILURE,
    INITIATE,
    LOCAL_ABORT,
    LOCAL_CLOSE,
    RPC_REPLIES,
    ChannelState,
    ConnectionState,
    next_channel_state,
    next_connection_state,
)

LOGGER = logging.getLogger(__name__)

#: Default bound on one message body (RabbitMQ's own default max is 128 MiB).
DEFAULT_MAX_BODY_SIZE: Final = 512 * 1024 * 1024

_METHOD_ID = struct.Struct(">HH")
_PUBLISH_PREFIX = struct.Struct(">BHIHHH")
#: an empty-properties header frame, its frame-end and the header of one body frame
_EMPTY_HEADER_AND_BODY = struct.Struct(">BHIHHQHBBHI")
#: a header frame's frame-end and the header of one body frame
_END_AND_BODY_HEADER = struct.Struct(">BBHI")
_HEADER_PREFIX = struct.Struct(">BHIHHQ")
#: a whole Basic.Ack / Nack / Reject frame, frame-end included
_ACK = struct.Struct(">BHIHHQBB")
_BASIC_ACK_ID = (60, 80)
_BASIC_NACK_ID = (60, 120)
_BASIC_REJECT_ID = (60, 90)
_PUBLISH_CACHE_LIMIT = 512

_DELIVER = spec.Basic.Deliver.INDEX
_CLOSED = ConnectionState.CLOSED
_AWAIT_START = ConnectionState.AWAIT_START
_CONNECTION_CLASS_ID = 10

CredentialsLike = Any  # anything with response_for(start) -> (mechanism, response)


class Connection:
    """One AMQP client connection's protocol state.  Never touches I/O.

    :param credentials: object with ``response_for(start) -> (mechanism, response)``
        (``PlainCredentials``, ``ExternalCredentials``)
    :param virtual_host: vhost to open
    :param client_properties: the Start-Ok client properties table
    :param channel_max: our proposed channel_max (0 = no limit)
    :param frame_max: our proposed frame_max
    :param heartbeat: seconds, None to accept the broker's, or a callable
        taking the broker's proposal and returning the value to use
    :param locale: Start-Ok locale
    :param max_body_size: bound on one received message body
    """

    def __init__(
        self,
        *,
        credentials: CredentialsLike,
        virtual_host: str = "/",
        client_properties: Mapping[str, Any] | None = None,
        channel_max: int = 65535,
        frame_max: int = spec.FRAME_MAX_SIZE,
        heartbeat: HeartbeatSetting = None,
        locale: str = "en_US",
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        self._handshake = Handshake(
            credentials=credentials,
            virtual_host=virtual_host,
            client_properties=client_properties,
            channel_max=channel_max,
            frame_max=frame_max,
            heartbeat=heartbeat,
            locale=locale,
        )
        self._max_body_size = max_body_size

        self.state = ConnectionState.INIT
        self._reader = FrameReader(max(frame_max, spec.FRAME_MIN_SIZE))
        self._out: list[bytes] = []
        self._out_size = 0
        self._events: deque[ev.Event] = deque()
        self._channels: dict[int, ChannelRecord] = {}
        self._next_channel_hint = 1
        self._error: Exception | None = None
        self._eof = False
        self._heartbeat: HeartbeatMonitor | None = None
        self._publish_cache: dict[tuple[int, str, str, bool, bool], bytes] = {}
        #: channels closed by the peer while our own Channel.Close was on the wire: the
        #: peer answers that Close too (RabbitMQ does), so one Close-Ok is still due
        self._close_ok_due: set[int] = set()
        #: channels the peer closed: frames it had already queued for them may still
        #: trail its Close (RabbitMQ's deliveries can); they are dropped, as pika does,
        #: until the number is reopened and its Open-Ok arrives
        self._stale_channels: set[int] = set()

        #: negotiated values (valid once open)
        self.channel_max = channel_max
        self.frame_max = frame_max
        self.heartbeat = 0
        self.server_properties: dict[str, Any] = {}
        self.known_hosts = ""
        self.blocked = False

    # ------------------------------------------------------------ properties

    @property
    def is_open(self) -> bool:
        """True once the handshake has completed, until close starts."""
        return self.state is ConnectionState.OPEN

    @property
    def is_closed(self) -> bool:
        """True when the connection reached its terminal state."""
        return self.state is ConnectionState.CLOSED

    @property
    def bytes_to_send(self) -> int:
        """Bytes queued by commands and not yet taken by ``data_to_send``."""
        return self._out_size

    @property
    def channel_numbers(self) -> list[int]:
        """Channels the core is tracking (any state but closed)."""
        return list(self._channels)

    def channel_state(self, channel_number: int) -> ChannelState:
        """The state of a channel (CLOSED when unknown)."""
        record = self._channels.get(channel_number)
        return ChannelState.CLOSED if record is None else record.state

    def channel_record(self, channel_number: int) -> ChannelRecord | None:
        """Read-only view of a channel's bookkeeping (consumers, confirm mode ...)."""
        return self._channels.get(channel_number)

    # ------------------------------------------------------------ I/O boundary

    def initiate(self) -> None:
        """Queue the protocol header; the first thing to send on a new stream."""
        self._transition(INITIATE, local=True)
        self._queue(PROTOCOL_HEADER)

    def receive_data(self, data: bytes) -> None:
        """Buffer received bytes; ``b""`` means the peer ended the stream."""
        if not data:
            self._eof = True
            return
        if self._heartbeat is not None:
            self._heartbeat.received = True
        if self.state is ConnectionState.CLOSED:
            return
        self._reader.feed(data)

    def data_to_send(self) -> bytes:
        """Take every queued byte (empty when nothing is queued)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        self._out_size = 0
        if self._heartbeat is not None and (len(out) > 1 or out[0] is not HEARTBEAT_FRAME):
            # our own heartbeat does not count as traffic, so an idle connection
            # beats every half interval rather than every other tick
            self._heartbeat.sent = True
        return b"".join(out)

    def get_timer(self) -> float | None:
        """Deadline (driver's clock) for the next ``handle_timer`` call, or None."""
        if self._heartbeat is None or self.state is ConnectionState.CLOSED:
            return None
        return self._heartbeat.deadline

    def handle_timer(self, now: float) -> None:
        """Send a heartbeat or declare the peer dead, as the schedule says."""
        monitor = self._heartbeat
        if monitor is None or self.state is ConnectionState.CLOSED:
            return
        send, dead = monitor.tick(now)
        if dead:
            self._terminate(
                AMQPHeartbeatTimeout(
                    f"No activity or too many missed heartbeats in the last "
                    f"{monitor.silent_for:g} seconds (heartbeat {monitor.interval} s)"
                )
            )
        elif send and not self._out:
            self._queue(HEARTBEAT_FRAME)

    def next_event(self) -> ev.Event | ev._NeedData:
        """Return the next event, or NEED_DATA.

        :raises RemoteProtocolError: the peer broke the protocol (Close queued)
        """
        events = self._events
        if events:
            return events.popleft()
        if self._error is not None:
            raise self._error
        next_frame = self._reader.next_frame
        dispatch = self._dispatch_frame
        while True:
            state = self.state
            if state is _CLOSED:
                return ev.NEED_DATA
            if state is _AWAIT_START and not self._check_peer_header():
                if events:
                    return events.popleft()
                return self._need_data()
            try:
                frame = next_frame()
                if frame is None:
                    return self._need_data()
                dispatch(*frame)
            except RemoteProtocolError as error:
                self._protocol_failure(error)
            if events:
                return events.popleft()

    # ------------------------------------------------------------ commands

    def open_channel(self, channel_number: int | None = None) -> int:
        """Queue Channel.Open; returns the channel number used.

        :raises InvalidChannelNumber: number outside 1..channel_max or in use
        :raises NoFreeChannels: every number is in use
        """
        self._require_open()
        limit = self.channel_max or 65535
        if channel_number is None:
            channel_number = self._free_channel_number(limit)
        elif not isinstance(channel_number, int) or isinstance(channel_number, bool):
            raise TypeError(f"channel_number must be int, not {type(channel_number).__name__}")
        elif not 1 <= channel_number <= limit:
            raise InvalidChannelNumber(f"channel_number {channel_number} is outside 1..{limit}")
        elif channel_number in self._channels:
            raise InvalidChannelNumber(f"channel_number {channel_number} is already in use")
        self._channels[channel_number] = ChannelRecord(channel_number, self._max_body_size)
        self._queue(encode_method_frame(channel_number, spec.Channel.Open()))
        return channel_number

    def close_channel(
        self, channel_number: int, reply_code: int = 0, reply_text: str = "Normal shutdown"
    ) -> None:
        """Queue Channel.Close behind the channel's pending requests.

        Pending requests are still answered (their replies arrive first); new
        commands on the channel are refused from now on.

        :raises ChannelWrongStateError: the channel is not open or opening
        """
        record = self._usable_record(channel_number, allow_opening=True)
        new_state = next_channel_state(record.state, LOCAL_CLOSE)
        if new_state is None:
            raise ChannelWrongStateError(f"channel {channel_number} is {record.state.value}")
        method = spec.Channel.Close(
            reply_code=reply_code, reply_text=reply_text, class_id=0, method_id=0
        )
        frame = encode_method_frame(channel_number, method)
        record.state = new_state
        record.close_reason = (reply_code, reply_text)
        if record.rpc_in_flight is None:
            record.rpc_in_flight = method
            self._queue(frame)
        else:
            record.rpc_queue.append((method, frame))

    def send_method(self, channel_number: int, method: Any) -> None:
        """Queue a method on an open channel, respecting one-RPC-at-a-time.

        A synchronous request (without ``nowait``) waits behind the previous
        one; its reply arrives as :class:`~amqp_core.protocol.events.RpcReply`.

        :raises ChannelWrongStateError: channel not open
        :raises TypeError: ``method`` is not a spec method, or an argument has the wrong type
        """
        record = self._usable_record(channel_number)
        if not isinstance(method, Method) or method.INDEX is None:
            # fix: anything else failed with AttributeError inside the encoder
            raise TypeError(f"method must be a spec method object, not {method!r}")
        for name, kind in zip(method._FIELDS, method._KINDS, strict=True):
            if kind == "bit":  # fix: any value was sent as its truth value ("no" was True)
                require_flag(getattr(method, name), name)
        frame = encode_method_frame(channel_number, method)
        index = method.INDEX
        if index in RPC_REPLIES and not getattr(method, "nowait", False):
            if record.rpc_in_flight is None:
                record.rpc_in_flight = method
                self._queue(frame)
            else:
                record.rpc_queue.append((method, frame))
        else:
            self._queue(frame)
        if index == spec.Confirm.Select.INDEX:
            record.in_confirm_mode = True

    def basic_publish(
        self,
        channel_number: int,
        exchange: str,
        routing_key: str,
        body: bytes,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
        immediate: bool = False,
    ) -> int:
        """Queue a Basic.Publish with its content.

        :returns: the publish sequence number when the channel is in confirm
            mode, else 0
        :raises ChannelWrongStateError: channel not open
        :raises TypeError: body is not bytes, or a wrong argument type
        """
        record = self._channels.get(channel_number)
        if record is None or record.state is not ChannelState.OPEN:
            self._usable_record(channel_number)  # raises with the right message
            raise AssertionError("unreachable")
        if type(body) is not bytes:
            body = coerce_body(body)
        if mandatory.__class__ is not bool or immediate.__class__ is not bool:
            require_flag(mandatory, "mandatory")
            require_flag(immediate, "immediate")
        # the whole method frame is cached per (channel, exchange, routing key, flags)
        key = (channel_number, exchange, routing_key, mandatory, immediate)
        method_frame = self._publish_cache.get(key)
        if method_frame is None:
            method_tail = encode_publish_tail(exchange, routing_key, mandatory, immediate)
            method_frame = (
                _PUBLISH_PREFIX.pack(1, channel_number, len(method_tail) + 5, 60, 40, 0)
                + method_tail
            )
            if len(self._publish_cache) >= _PUBLISH_CACHE_LIMIT:
                self._publish_cache.clear()
            self._publish_cache[key] = method_frame
        body_size = len(body)
        # fix: an empty body took the fast path and was sent as one empty body frame; a
        # zero-size body has no body frames (our own reader refuses such a frame with 505)
        one_frame = 0 < body_size <= self.frame_max - 8
        out = self._out
        if properties is None:
            if one_frame:
                # the common case: no properties, one body frame; one pack for the header
                # frame and the body frame's header
                out.append(method_frame)
                out.append(
                    _EMPTY_HEADER_AND_BODY.pack(
                        2, channel_number, 14, 60, 0, body_size, 0, 0xCE, 3, channel_number,
                        body_size,
                    )
                )
                out.append(body)
                out.append(FRAME_END)
                self._out_size += len(method_frame) + body_size + 30
            else:
                self._queue_content(method_frame, channel_number, b"\x00\x00", body)
        else:
            # fix: the properties used to be checked and encoded after the method frame was
            # queued, so a bad ``properties`` raised with half a message in the outbound buffer
            if not isinstance(properties, spec.BasicProperties):
                raise TypeError(
                    f"properties must be BasicProperties, not {type(properties).__name__}"
                )
            payload = b"".join(properties.encode())
            if one_frame:
                out.append(method_frame)
                out.append(
                    _HEADER_PREFIX.pack(2, channel_number, 12 + len(payload), 60, 0, body_size)
                )
                out.append(payload)
                out.append(_END_AND_BODY_HEADER.pack(0xCE, 3, channel_number, body_size))
                out.append(body)
                out.append(FRAME_END)
                self._out_size += len(method_frame) + len(payload) + body_size + 28
            else:
                self._queue_content(method_frame, channel_number, payload, body)
        if record.in_confirm_mode:
            sequence = record.next_publish_seq
            record.next_publish_seq = sequence + 1
            return sequence
        return 0

    def basic_ack(self, channel_number: int, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Queue Basic.Ack.

        :raises ChannelWrongStateError: channel not open
        """
        if multiple.__class__ is not bool:
            require_flag(multiple, "multiple")
        self._queue_ack(channel_number, _BASIC_ACK_ID, delivery_tag, 1 if multiple else 0)

    def basic_nack(
        self, channel_number: int, delivery_tag: int = 0, multiple: bool = False,
        requeue: bool = True,
    ) -> None:
        """Queue Basic.Nack."""
        if multiple.__class__ is not bool or requeue.__class__ is not bool:
            require_flag(multiple, "multiple")
            require_flag(requeue, "requeue")
        bits = (1 if multiple else 0) | (2 if requeue else 0)
        self._queue_ack(channel_number, _BASIC_NACK_ID, delivery_tag, bits)

    def basic_reject(self, channel_number: int, delivery_tag: int, requeue: bool = True) -> None:
        """Queue Basic.Reject."""
        if requeue.__class__ is not bool:
            require_flag(requeue, "requeue")
        self._queue_ack(channel_number, _BASIC_REJECT_ID, delivery_tag, 1 if requeue else 0)

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close the connection.

        Once open: queue Connection.Close; ``ConnectionClosed`` follows the
        broker's Close-Ok.  During the handshake: abort; ``ConnectionFailed``
        with :class:`ConnectionOpenAborted` follows at once.

        :raises ConnectionWrongStateError: already closed
        """
        if self.state in (ConnectionState.OPEN, ConnectionState.CLOSING):
            if self.state is ConnectionState.OPEN:
                self._queue(
                    encode_method_frame(
                        0,
                        spec.Connection.Close(
                            reply_code=reply_code, reply_text=reply_text, class_id=0, method_id=0
                        ),
                    )
                )
            self._transition(LOCAL_CLOSE, local=True)
            return
        self._transition(LOCAL_ABORT, local=True)
        self._events.append(
            ev.ConnectionFailed(
                error=ConnectionOpenAborted(
                    f"Connection.close() called before the connection was open "
                    f"({reply_code}, {reply_text!r})"
                )
            )
        )

    def update_secret(self, new_secret: str | bytes, reason: str) -> None:
        """Queue Connection.UpdateSecret; ``UpdateSecretOk`` follows."""
        self._require_open()
        self._queue(
            encode_method_frame(
                0, spec.Connection.UpdateSecret(new_secret=new_secret, reason=reason)
            )
        )

    # ------------------------------------------------------------ internals: output

    def _queue(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)

    def _queue_content(
        self, method_frame: bytes, channel_number: int, properties_payload: bytes, body: bytes
    ) -> None:
        """Queue a publish's method frame, header frame and any number of body frames."""
        pieces = encode_content(channel_number, 60, properties_payload, body, self.frame_max)
        out = self._out
        out.append(method_frame)
        out.extend(pieces)
        self._out_size += len(method_frame) + sum(len(piece) for piece in pieces)

    def _queue_ack(self, channel_number: int, ids: tuple[int, int], tag: int, bits: int) -> None:
        record = self._channels.get(channel_number)
        if record is None or record.state is not ChannelState.OPEN:
            self._usable_record(channel_number)
        if type(tag) is not int or not 0 <= tag < 1 << 64:
            if isinstance(tag, bool) or not isinstance(tag, int):
                raise TypeError(f"delivery_tag must be int, not {type(tag).__name__}")
            raise ValueError(f"delivery_tag {tag} is outside 0..2**64-1")
        self._out.append(_ACK.pack(1, channel_number, 13, ids[0], ids[1], tag, bits, 0xCE))
        self._out_size += 22

    # ------------------------------------------------------------ internals: checks

    def _require_open(self) -> None:
        if self.state is not ConnectionState.OPEN:
            raise ConnectionWrongStateError(f"connection is {self.state.value}, not OPEN")

    def _usable_record(self, channel_number: int, allow_opening: bool = False) -> ChannelRecord:
        if self.state is not ConnectionState.OPEN:
            raise ConnectionWrongStateError(f"connection is {self.state.value}, not OPEN")
        record = self._channels.get(channel_number)
        if record is None:
            raise ChannelWrongStateError(f"channel {channel_number} is not open")
        if record.state in CHANNEL_USABLE or (
            allow_opening and record.state is ChannelState.OPENING
        ):
            return record
        raise ChannelWrongStateError(f"channel {channel_number} is {record.state.value}")

    def _free_channel_number(self, limit: int) -> int:
        channels = self._channels
        if len(channels) >= limit:
            raise NoFreeChannels()
        candidate = self._next_channel_hint
        for _ in range(limit):
            if candidate > limit:
                candidate = 1
            if candidate not in channels:
                self._next_channel_hint = candidate + 1
                return candidate
            candidate += 1
        raise NoFreeChannels()

    def _transition(self, event: object, local: bool = False) -> None:
        new_state = next_connection_state(self.state, event)
        if new_state is None:
            if local:
                raise ConnectionWrongStateError(
                    f"{event} is not allowed while the connection is {self.state.value}"
                )
            raise RemoteUnexpectedFrame(
                spec.UNEXPECTED_FRAME,
                f"method {event} is not allowed while the connection is {self.state.value}",
            )
        self.state = new_state

    # ------------------------------------------------------------ internals: input

    def _need_data(self) -> ev._NeedData:
        if self._eof and self.state is not ConnectionState.CLOSED:
            self._terminate(self._stream_end_error())
            return self._events.popleft()  # type: ignore[return-value]
        return ev.NEED_DATA

    def _stream_end_error(self) -> AMQPConnectionError:
        state = self.state
        if state is ConnectionState.AWAIT_START:
            return IncompatibleProtocolError("the stream ended before Connection.Start")
        if state is ConnectionState.AWAIT_TUNE:
            return ProbableAuthenticationError("the stream ended while authenticating")
        if state is ConnectionState.AWAIT_OPEN_OK:
            return ProbableAccessDeniedError(
                "the stream ended while opening the virtual host"
            )
        return StreamLostError("Transport indicated EOF")

    def _terminate(self, error: Exception) -> None:
        """End without a clean close: one ConnectionFailed event, then CLOSED."""
        self._transition(FAILURE)
        self._events.append(ev.ConnectionFailed(error=error))

    def _protocol_failure(self, error: RemoteProtocolError) -> None:
        """Queue Connection.Close naming the fault, then make every call raise it.

        A fault the spec ends "without sending any further data" (``sends_close`` False)
        queues nothing, and drops whatever was queued and not yet taken.
        """
        if not error.sends_close:
            self._out.clear()
            self._out_size = 0
        elif self.state not in (ConnectionState.CLOSED, ConnectionState.INIT):
            class_id, method_id = 0, 0
            self._queue(
                encode_method_frame(
                    0,
                    spec.Connection.Close(
                        reply_code=error.reply_code,
                        reply_text=error.reply_text[:255],
                        class_id=class_id,
                        method_id=method_id,
                    ),
                )
            )
        self.state = ConnectionState.CLOSED
        self._error = error
        raise error

    def _check_peer_header(self) -> bool:
        """Before Connection.Start, a peer that dislikes our version answers with its header."""
        reader = self._reader
        starts = reader.startswith(b"AMQP")
        if starts is None:
            return False
        if not starts:
            # fix: anything but a method frame on channel 0 (Connection.Start) used to be
            # parsed as a frame, so an HTTP answer ("HTTP/1.1 400 ...") became a 501 frame
            # error and a Connection.Close was sent to a peer that does not speak AMQP; pika
            # reports such a peer as an incompatible protocol (nothing is sent to it)
            if reader.startswith(b"\x01\x00\x00") is False:
                sent = reader.take(min(reader.buffered, 32)) or b""
                self._terminate(
                    IncompatibleProtocolError(
                        f"the peer does not speak AMQP 0-9-1: it sent {sent!r} instead of "
                        "Connection.Start"
                    )
                )
                return False
            return True
        header = self._reader.take(8)
        if header is None:
            return False
        version = tuple(header[4:8])
        self._terminate(
            IncompatibleProtocolError(f"broker requires protocol {version}, we speak (0, 0, 9, 1)")
        )
        return False

    def _dispatch_frame(self, frame_type: int, channel_number: int, payload: bytes) -> None:
        # hot path: the record lookups are inlined; the helpers only run to raise
        if frame_type == 1:
            if len(payload) < 4:
                raise RemoteFrameError(spec.FRAME_ERROR, "method frame shorter than 4 bytes")
            class_id, method_id = _METHOD_ID.unpack_from(payload)
            index = (class_id << 16) | method_id
            if index == _DELIVER and channel_number:
                if self._stale_channels and channel_number in self._stale_channels:
                    self._drop_stale(channel_number, index)
                    return
                record = self._channels.get(channel_number)
                if record is None:
                    record = self._receiving_record(channel_number)
                content = record.content
                if content.method is not None:
                    raise RemoteUnexpectedFrame(
                        spec.UNEXPECTED_FRAME, "method frame inside a content body"
                    )
                content.start(decode_method(index, payload))
                # shortcut: the header and a one-frame body usually follow in the same
                # read; take them here, exactly as the frame loop would
                reader = self._reader
                content_payload = reader.maybe_next_payload(2, channel_number)
                if content_payload is None:
                    return
                if content.on_header(content_payload):
                    self._content_complete(record)
                    return
                content_payload = reader.maybe_next_payload(3, channel_number)
                if content_payload is not None and content.on_body(content_payload):
                    self._content_complete(record)
                return
            if self._stale_channels and channel_number in self._stale_channels:
                if index != spec.Channel.OpenOk.INDEX:
                    self._drop_stale(channel_number, index)
                    return
                self._stale_channels.discard(channel_number)
            method = decode_method(index, payload)
            if channel_number == 0:
                self._on_connection_method(index, method)
            else:
                self._on_channel_method(channel_number, index, method)
        elif self._stale_channels and channel_number in self._stale_channels:
            self._drop_stale(channel_number, frame_type)
        elif frame_type == 3:
            record = self._channels.get(channel_number)
            if record is None or record.content.method is None:
                record = self._content_record(channel_number)
            if record.content.on_body(payload):
                self._content_complete(record)
        elif frame_type == 2:
            record = self._channels.get(channel_number)
            if record is None or record.content.method is None:
                record = self._content_record(channel_number)
            if record.content.on_header(payload):
                self._content_complete(record)
        elif frame_type == 8:
            if channel_number != 0:
                raise RemoteFrameError(spec.FRAME_ERROR, "heartbeat frame on a non-zero channel")
        else:
            # spec 4.2.3: close without sending any further data
            raise RemoteFrameError(
                spec.FRAME_ERROR, f"unknown frame type {frame_type}", sends_close=False
            )

    def _drop_stale(self, channel_number: int, what: int) -> None:
        """A frame for a channel the peer has closed: it was sent before the Close."""
        LOGGER.debug("Dropping %s on channel %d, closed by the broker", what, channel_number)

    def _receiving_record(self, channel_number: int) -> ChannelRecord:
        """The channel's record; a frame on an unknown channel is the peer's error."""
        record = self._channels.get(channel_number)
        if record is None:
            raise RemoteChannelError(
                spec.CHANNEL_ERROR, f"frame on channel {channel_number}, which is not open"
            )
        return record

    def _content_record(self, channel_number: int) -> ChannelRecord:
        record = self._receiving_record(channel_number)
        if not record.content.active:
            raise RemoteUnexpectedFrame(
                spec.UNEXPECTED_FRAME, f"content frame on channel {channel_number} without a method"
            )
        return record

    def _content_complete(self, record: ChannelRecord) -> None:
        method, properties, body = record.content.finish()
        number = record.number
        if method.INDEX == _DELIVER:
            self._events.append(
                ev.Delivery(channel_number=number, method=method, properties=properties, body=body)
            )
        elif method.INDEX == spec.Basic.Return.INDEX:
            self._events.append(
                ev.Returned(channel_number=number, method=method, properties=properties, body=body)
            )
        else:
            self._rpc_reply(record, method, properties, body)

    # ------------------------------------------------------------ connection methods

    def _on_connection_method(self, index: int, method: Any) -> None:
        if self.state is ConnectionState.CLOSING and index not in (
            spec.Connection.Close.INDEX, spec.Connection.CloseOk.INDEX,
        ):
            return  # the peer had not seen our Close yet
        previous_state = self.state
        self._transition(index)
        if index == spec.Connection.Close.INDEX and previous_state not in (
            ConnectionState.OPEN, ConnectionState.CLOSING,
        ):
            # a close during the handshake names the stage that failed, as pika does
            self._queue(encode_method_frame(0, spec.Connection.CloseOk()))
            self._events.append(
                ev.ConnectionFailed(
                    error=handshake_error(previous_state, method.reply_code, method.reply_text)
                )
            )
            return
        if index == spec.Connection.Start.INDEX:
            self._on_start(method)
        elif index == spec.Connection.Secure.INDEX:
            self._queue(encode_method_frame(0, self._handshake.secure_ok()))
        elif index == spec.Connection.Tune.INDEX:
            self._on_tune(method)
        elif index == spec.Connection.OpenOk.INDEX:
            self.known_hosts = method.known_hosts
            self._events.append(
                ev.ConnectionOpened(
                    server_properties=self.server_properties,
                    channel_max=self.channel_max,
                    frame_max=self.frame_max,
                    heartbeat=self.heartbeat,
                    known_hosts=method.known_hosts,
                )
            )
        elif index == spec.Connection.Close.INDEX:
            self._queue(encode_method_frame(0, spec.Connection.CloseOk()))
            self._channels.clear()
            self._events.append(
                ev.ConnectionClosed(
                    reply_code=method.reply_code,
                    reply_text=method.reply_text,
                    by_peer=True,
                    class_id=method.class_id,
                    method_id=method.method_id,
                )
            )
        elif index == spec.Connection.CloseOk.INDEX:
            self._channels.clear()
            self._events.append(
                ev.ConnectionClosed(reply_code=200, reply_text="Normal shutdown", by_peer=False)
            )
        elif index == spec.Connection.Blocked.INDEX:
            self.blocked = True
            self._events.append(ev.ConnectionBlocked(reason=method.reason))
        elif index == spec.Connection.Unblocked.INDEX:
            self.blocked = False
            self._events.append(ev.ConnectionUnblocked())
        elif index == spec.Connection.UpdateSecretOk.INDEX:
            self._events.append(ev.UpdateSecretOk())

    def _on_start(self, start: Any) -> None:
        start_ok = self._handshake.start_ok(start)
        self.server_properties = start.server_properties or {}
        if start_ok is None:
            credentials = self._handshake.credentials
            self._terminate(AuthenticationError(getattr(credentials, "TYPE", "?")))
            return
        self._queue(encode_method_frame(0, start_ok))

    def _on_tune(self, tune: Any) -> None:
        tuned = self._handshake.tune(tune)
        self.channel_max = tuned.channel_max
        self.frame_max = tuned.frame_max
        self.heartbeat = tuned.heartbeat
        self._reader.max_frame_size = tuned.frame_max
        self._queue(encode_method_frame(0, tuned.tune_ok))
        self._queue(encode_method_frame(0, tuned.open))
        if tuned.heartbeat > 0:
            self._heartbeat = HeartbeatMonitor(tuned.heartbeat)

    # ------------------------------------------------------------ channel methods

    def _on_channel_method(self, channel_number: int, index: int, method: Any) -> None:
        if channel_number in self._close_ok_due:
            # fix: the Close-Ok for our Close after both sides closed at once used to be a
            # 504 that tore the whole connection down.  A peer that never sends it is fine
            # too: any other method on the number (the Open-Ok of a reopened channel) ends
            # the wait, as the peer keeps a channel's frames in order.
            self._close_ok_due.discard(channel_number)
            if index == spec.Channel.CloseOk.INDEX:
                return
        record = self._channels.get(channel_number)
        if record is None:
            raise RemoteChannelError(
                spec.CHANNEL_ERROR, f"{method.NAME} on channel {channel_number}, which is not open"
            )
        if index == spec.Channel.Close.INDEX or index == spec.Channel.CloseOk.INDEX:
            self._on_channel_closing(record, index, method)
            return
        if index == spec.Channel.OpenOk.INDEX:
            new_state = next_channel_state(record.state, index)
            if new_state is None:
                raise RemoteUnexpectedFrame(
                    spec.UNEXPECTED_FRAME,
                    f"Channel.OpenOk on channel {channel_number} already open",
                )
            if record.state is ChannelState.OPENING:
                record.state = new_state
                self._events.append(ev.ChannelOpened(channel_number=channel_number))
            return
        if record.content.active:
            raise RemoteUnexpectedFrame(spec.UNEXPECTED_FRAME, "method frame inside a content body")
        if index in CONTENT_METHODS:
            record.content.start(method)
        elif index in ALL_RPC_REPLIES:
            self._rpc_reply(record, method, None, None)
        elif index in CHANNEL_ASYNC_METHODS:
            if index == spec.Basic.Cancel.INDEX:
                record.consumers.discard(method.consumer_tag)
            elif index == spec.Channel.Flow.INDEX:
                record.flow_active = bool(method.active)
                self._queue(
                    encode_method_frame(channel_number, spec.Channel.FlowOk(active=method.active))
                )
            self._events.append(ev.MethodReceived(channel_number=channel_number, method=method))
        else:
            raise RemoteCommandInvalid(
                spec.COMMAND_INVALID, f"{method.NAME} is not a method a broker sends to a client"
            )

    def _rpc_reply(
        self, record: ChannelRecord, method: Any, properties: Any, body: bytes | None
    ) -> None:
        request = record.rpc_in_flight
        if request is None or method.INDEX not in RPC_REPLIES[request.INDEX]:
            expected = "nothing" if request is None else request.NAME
            raise RemoteUnexpectedFrame(
                spec.UNEXPECTED_FRAME,
                f"{method.NAME} on channel {record.number} while awaiting a reply to {expected}",
            )
        if method.INDEX == spec.Basic.ConsumeOk.INDEX:
            record.consumers.add(method.consumer_tag)
        elif method.INDEX == spec.Basic.CancelOk.INDEX:
            record.consumers.discard(method.consumer_tag)
        if record.rpc_queue and self.state is ConnectionState.OPEN:
            # after our Connection.Close nothing but Close-Ok may follow on the wire
            next_request, frame = record.rpc_queue.popleft()
            record.rpc_in_flight = next_request
            self._queue(frame)
        else:
            record.rpc_in_flight = None
        self._events.append(
            ev.RpcReply(
                channel_number=record.number,
                request=request,
                method=method,
                properties=properties,
                body=body,
            )
        )

    def _on_channel_closing(self, record: ChannelRecord, index: int, method: Any) -> None:
        new_state = next_channel_state(record.state, index)
        if new_state is None:
            raise RemoteUnexpectedFrame(
                spec.UNEXPECTED_FRAME,
                f"{method.NAME} on channel {record.number} in state {record.state.value}",
            )
        number = record.number
        if index == spec.Channel.Close.INDEX:
            self._queue(encode_method_frame(number, spec.Channel.CloseOk()))
            reply_code, reply_text, by_peer = method.reply_code, method.reply_text, True
            if isinstance(record.rpc_in_flight, spec.Channel.Close):
                self._close_ok_due.add(number)
            else:
                self._stale_channels.add(number)
        else:
            (reply_code, reply_text), by_peer = record.close_reason, False
        record.state = new_state
        del self._channels[number]
        self._events.append(
            ev.ChannelClosed(
                channel_number=number, reply_code=reply_code, reply_text=reply_text,
                by_peer=by_peer,
            )
        )
