"""pika's ``Channel``: the callback API, written once for every asynchronous adapter.

Theory of operation: a :class:`Channel` validates arguments, turns each call
into a ``spec`` method handed to the protocol core, and keeps the callbacks
that will receive the replies.  The core guarantees replies arrive in request
order (one synchronous request outstanding per channel), so the pending
callbacks are a FIFO popped on every ``RpcReply`` event.

As in pika, a completion callback of ``None`` means "no reply wanted" for the
methods that have ``nowait`` (declare, bind, delete ...), and simply "nobody to
tell" for those that do not (qos, recover, tx, flow).

Deliveries are the hot path: :meth:`_on_delivery` looks the consumer up and
calls it with ``(channel, method, properties, body)``; nothing else.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import frame, spec
from .exceptions import (
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    DuplicateConsumerTag,
    DuplicateGetOkCallback,
)
from .exchange_type import ExchangeType
from .protocol import events as ev
from .protocol.arguments import require_flag

if TYPE_CHECKING:
    from ._connection_api import Connection

LOGGER = logging.getLogger(__name__)

MAX_CHANNELS = 65535

OnMessage = Callable[[Any, Any, spec.BasicProperties, bytes], None]
MethodCallback = Callable[[frame.Method], None]


def _require_str(value: Any, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")


def _require_callback(value: Any, name: str = "callback") -> None:
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {type(value).__name__}")


def _nowait(callback: Any) -> bool:
    """pika's rule: no completion callback means nowait."""
    if callback is None:
        return True
    _require_callback(callback)
    return False


def _require_arguments(arguments: Any) -> dict[str, Any]:
    if arguments is None:
        return {}
    if not isinstance(arguments, Mapping):
        raise TypeError(f"arguments must be a dict or None, not {type(arguments).__name__}")
    return dict(arguments)


class Channel:
    """An AMQP channel with pika's callback API.

    Created by :meth:`Connection.channel`, not directly.
    """

    CLOSED = 0
    OPENING = 1
    OPEN = 2
    CLOSING = 3

    def __init__(
        self,
        connection: Connection,
        channel_number: int,
        on_open_callback: Callable[[Channel], None] | None,
    ) -> None:
        if not isinstance(channel_number, int) or not 1 <= channel_number <= MAX_CHANNELS:
            raise ValueError(f"channel_number {channel_number!r} is outside 1..{MAX_CHANNELS}")
        self.connection = connection
        self.channel_number = channel_number
        core = connection._core
        assert core is not None
        self._core = core
        self._state = self.OPENING
        self._on_open_callback = on_open_callback
        self._rpc_callbacks: deque[Callable[[Any], None] | None] = deque()
        self._consumers: dict[str, OnMessage] = {}
        self._consumers_with_noack: set[str] = set()
        self._cancelled: set[str] = set()
        self._on_getok_callback: OnMessage | None = None
        self._on_close_callbacks: list[Callable[[Channel, BaseException], None]] = []
        self._on_cancel_callbacks: list[MethodCallback] = []
        self._on_flow_callbacks: list[Callable[[Any], None]] = []
        self._on_return_callbacks: list[OnMessage] = []
        self._ack_nack_callback: MethodCallback | None = None
        #: pika's add_callback registry: method INDEX -> [(callback, filter, one_shot)]
        self._method_callbacks: dict[int, list[tuple[MethodCallback, dict[str, Any], bool]]] = {}
        self._closing_reason: BaseException | None = None

    def __repr__(self) -> str:
        state = {0: "CLOSED", 1: "OPENING", 2: "OPEN", 3: "CLOSING"}[self._state]
        return f"<Channel number={self.channel_number} {state} conn={self.connection!r}>"

    def __int__(self) -> int:
        return self.channel_number

    # ------------------------------------------------------------ state

    @property
    def is_closed(self) -> bool:
        """True once the channel is closed."""
        return self._state == self.CLOSED

    @property
    def is_closing(self) -> bool:
        """True while the channel is closing."""
        return self._state == self.CLOSING

    @property
    def is_open(self) -> bool:
        """True while the channel is open."""
        return self._state == self.OPEN

    @property
    def is_opening(self) -> bool:
        """True until Channel.OpenOk arrives."""
        return self._state == self.OPENING

    @property
    def consumer_tags(self) -> list[str]:
        """The consumer tags active on this channel."""
        return list(self._consumers)

    def _raise_if_not_open(self) -> None:
        if self._state != self.OPEN:
            raise ChannelWrongStateError("Channel is closed." if self._state == self.CLOSED
                                         else f"Channel is not open ({self!r}).")

    # ------------------------------------------------------------ callbacks

    def add_callback(
        self, callback: MethodCallback, replies: list[Any], one_shot: bool = True
    ) -> None:
        """``callback(frame.Method)`` when one of ``replies`` arrives on this channel.

        As in pika, each entry of ``replies`` is a ``spec`` method class or a
        ``(class, {"attribute": value})`` pair that must also match.
        """
        _require_callback(callback)
        if not isinstance(replies, list | tuple):
            raise TypeError(f"replies must be a list, not {type(replies).__name__}")
        for reply in replies:
            method_class, wanted = (reply, {}) if isinstance(reply, type) else reply
            index = getattr(method_class, "INDEX", None)
            if not isinstance(index, int) or not isinstance(wanted, dict):
                raise TypeError(f"replies holds {reply!r}, not a spec method class")
            self._method_callbacks.setdefault(index, []).append((callback, wanted, one_shot))

    def _notify_method_callbacks(self, method: Any) -> None:
        entries = self._method_callbacks.get(method.INDEX)
        if not entries:
            return
        method_frame = frame.Method(self.channel_number, method)
        for entry in list(entries):
            callback, wanted, one_shot = entry
            if any(getattr(method, key, None) != value for key, value in wanted.items()):
                continue
            if one_shot:
                entries.remove(entry)
            self.connection._run_callback(callback, method_frame)

    def add_on_cancel_callback(self, callback: MethodCallback) -> None:
        """``callback(frame.Method(Basic.Cancel))`` when the broker cancels a consumer."""
        _require_callback(callback)
        self._on_cancel_callbacks.append(callback)

    def add_on_close_callback(self, callback: Callable[[Channel, BaseException], None]) -> None:
        """``callback(channel, exception)`` when the channel closes."""
        _require_callback(callback)
        self._on_close_callbacks.append(callback)

    def add_on_flow_callback(self, callback: Callable[[Any], None]) -> None:
        """``callback(frame.Method(Channel.Flow))`` when the broker sends Channel.Flow."""
        _require_callback(callback)
        self._on_flow_callbacks.append(callback)

    def add_on_return_callback(self, callback: OnMessage) -> None:
        """``callback(channel, method, properties, body)`` for returned messages."""
        _require_callback(callback)
        self._on_return_callbacks.append(callback)

    # ------------------------------------------------------------ basic

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Acknowledge one message (or all up to ``delivery_tag`` with ``multiple``)."""
        self._raise_if_not_open()
        self._core.basic_ack(self.channel_number, delivery_tag, multiple)
        self.connection._request_flush()

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Negatively acknowledge one message or several."""
        self._raise_if_not_open()
        self._core.basic_nack(self.channel_number, delivery_tag, multiple, requeue)
        self.connection._request_flush()

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        """Reject one message."""
        self._raise_if_not_open()
        self._core.basic_reject(self.channel_number, delivery_tag, requeue)
        self.connection._request_flush()

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish a message (str bodies are UTF-8 encoded, as in pika)."""
        if self._state != self.OPEN:
            self._raise_if_not_open()
        self._core.basic_publish(
            self.channel_number, exchange, routing_key, body, properties, mandatory  # type: ignore[arg-type]
        )
        self.connection._request_flush()

    def basic_consume(
        self,
        queue: str,
        on_message_callback: OnMessage,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: Mapping[str, Any] | None = None,
        callback: MethodCallback | None = None,
    ) -> str:
        """Start a consumer; returns its tag.

        :raises DuplicateConsumerTag: the tag is in use on this channel
        """
        _require_str(queue, "queue")
        _require_callback(on_message_callback, "on_message_callback")
        require_flag(auto_ack, "auto_ack")
        require_flag(exclusive, "exclusive")
        self._raise_if_not_open()
        if callback is not None:
            _require_callback(callback)
        if consumer_tag is None or consumer_tag == "":
            consumer_tag = f"ctag{self.channel_number}.{uuid.uuid4().hex}"
        else:
            _require_str(consumer_tag, "consumer_tag")
        if consumer_tag in self._consumers or consumer_tag in self._cancelled:
            raise DuplicateConsumerTag(consumer_tag)
        method = spec.Basic.Consume(
            queue=queue, consumer_tag=consumer_tag, no_ack=bool(auto_ack),
            exclusive=bool(exclusive), arguments=_require_arguments(arguments),
        )
        self._rpc(method, callback)
        if auto_ack:
            self._consumers_with_noack.add(consumer_tag)
        self._consumers[consumer_tag] = on_message_callback
        return consumer_tag

    def basic_cancel(self, consumer_tag: str = "", callback: MethodCallback | None = None) -> None:
        """Cancel a consumer; ``callback(frame.Method(Basic.CancelOk))`` when done."""
        _require_str(consumer_tag, "consumer_tag")
        self._raise_if_not_open()
        nowait = _nowait(callback)
        if consumer_tag in self._cancelled:
            return
        if consumer_tag not in self._consumers:
            LOGGER.warning("basic_cancel - consumer not found: %s", consumer_tag)
            return
        self._cancelled.add(consumer_tag)
        method = spec.Basic.Cancel(consumer_tag=consumer_tag, nowait=nowait)
        if nowait:
            # Nothing will answer: stop calling the consumer now.  Fix: the tag stays in
            # ``_cancelled`` (until the channel closes, as in pika) so that deliveries the
            # broker sent before it saw the cancel are recognised and rejected back to the
            # queue; forgetting it left them unacknowledged (stuck) and logged as errors.
            self._send(method)
            self._consumers.pop(consumer_tag, None)
        else:
            assert callback is not None

            def done(reply: frame.Method) -> None:
                self._forget_consumer(consumer_tag)
                callback(reply)

            self._rpc(method, done)

    def basic_get(self, queue: str, callback: OnMessage, auto_ack: bool = False) -> None:
        """Fetch one message: ``callback(channel, method, properties, body)``.

        As in pika, the callback is not called when the queue is empty.

        :raises DuplicateGetOkCallback: a previous basic_get is still pending
        """
        _require_str(queue, "queue")
        _require_callback(callback)
        require_flag(auto_ack, "auto_ack")
        self._raise_if_not_open()
        if self._on_getok_callback is not None:
            raise DuplicateGetOkCallback()
        self._on_getok_callback = callback
        self._rpc(spec.Basic.Get(queue=queue, no_ack=bool(auto_ack)), self._on_get_reply)

    def basic_qos(
        self, prefetch_size: int = 0, prefetch_count: int = 0, global_qos: bool = False,
        callback: MethodCallback | None = None,
    ) -> None:
        """Set the prefetch window; ``callback(frame.Method(Basic.QosOk))``."""
        for name, value, limit in (
            ("prefetch_size", prefetch_size, 2**32 - 1), ("prefetch_count", prefetch_count, 65535)
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be int, not {type(value).__name__}")
            if not 0 <= value <= limit:
                raise ValueError(f"{name} must be within 0..{limit}, got {value}")
        require_flag(global_qos, "global_qos")
        self._raise_if_not_open()
        if callback is not None:
            _require_callback(callback)
        self._rpc(
            spec.Basic.Qos(prefetch_size=prefetch_size, prefetch_count=prefetch_count,
                           global_qos=bool(global_qos)),
            callback,
        )

    def basic_recover(self, requeue: bool = False, callback: MethodCallback | None = None) -> None:
        """Redeliver unacknowledged messages; ``callback(frame.Method(Basic.RecoverOk))``."""
        require_flag(requeue, "requeue")
        self._raise_if_not_open()
        if callback is not None:
            _require_callback(callback)
        self._rpc(spec.Basic.Recover(requeue=bool(requeue)), callback)

    def confirm_delivery(
        self, ack_nack_callback: MethodCallback, callback: MethodCallback | None = None
    ) -> None:
        """Turn on publisher confirms: ``ack_nack_callback(frame.Method(Basic.Ack|Nack))``."""
        _require_callback(ack_nack_callback, "ack_nack_callback")
        self._raise_if_not_open()
        nowait = _nowait(callback)
        if not (self.connection.publisher_confirms and self.connection.basic_nack):
            from .exceptions import MethodNotImplemented

            raise MethodNotImplemented("Confirm.Select not supported by the server")
        self._ack_nack_callback = ack_nack_callback
        method = spec.Confirm.Select(nowait=nowait)
        if nowait:
            self._send(method)
        else:
            self._rpc(method, callback)

    # ------------------------------------------------------------ exchange / queue

    def exchange_declare(
        self, exchange: str, exchange_type: str | ExchangeType = ExchangeType.direct,
        passive: bool = False, durable: bool = False, auto_delete: bool = False,
        internal: bool = False, arguments: Mapping[str, Any] | None = None,
        callback: MethodCallback | None = None,
    ) -> None:
        """Declare an exchange; ``callback(frame.Method(Exchange.DeclareOk))``."""
        _require_str(exchange, "exchange")
        if isinstance(exchange_type, ExchangeType):
            exchange_type = exchange_type.value
        _require_str(exchange_type, "exchange_type")
        self._call(
            spec.Exchange.Declare(
                exchange=exchange, type=exchange_type, passive=passive, durable=durable,
                auto_delete=auto_delete, internal=internal, nowait=False,
                arguments=_require_arguments(arguments),
            ),
            callback,
        )

    def exchange_delete(
        self, exchange: str | None = None, if_unused: bool = False,
        callback: MethodCallback | None = None,
    ) -> None:
        """Delete an exchange; ``callback(frame.Method(Exchange.DeleteOk))``."""
        exchange = "" if exchange is None else exchange
        _require_str(exchange, "exchange")
        self._call(spec.Exchange.Delete(exchange=exchange, if_unused=if_unused), callback)

    def exchange_bind(
        self, destination: str, source: str, routing_key: str = "",
        arguments: Mapping[str, Any] | None = None, callback: MethodCallback | None = None,
    ) -> None:
        """Bind exchange to exchange; ``callback(frame.Method(Exchange.BindOk))``."""
        _require_str(destination, "destination")
        _require_str(source, "source")
        _require_str(routing_key, "routing_key")
        self._call(
            spec.Exchange.Bind(destination=destination, source=source, routing_key=routing_key,
                               arguments=_require_arguments(arguments)),
            callback,
        )

    def exchange_unbind(
        self, destination: str | None = None, source: str | None = None, routing_key: str = "",
        arguments: Mapping[str, Any] | None = None, callback: MethodCallback | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding."""
        destination = "" if destination is None else destination
        source = "" if source is None else source
        _require_str(destination, "destination")
        _require_str(source, "source")
        _require_str(routing_key, "routing_key")
        self._call(
            spec.Exchange.Unbind(destination=destination, source=source,
                                 routing_key=routing_key, arguments=_require_arguments(arguments)),
            callback,
        )

    def queue_declare(
        self, queue: str, passive: bool = False, durable: bool = False, exclusive: bool = False,
        auto_delete: bool = False, arguments: Mapping[str, Any] | None = None,
        callback: MethodCallback | None = None,
    ) -> None:
        """Declare a queue; ``callback(frame.Method(Queue.DeclareOk))``."""
        _require_str(queue, "queue")
        self._call(
            spec.Queue.Declare(queue=queue, passive=passive, durable=durable,
                               exclusive=exclusive, auto_delete=auto_delete,
                               arguments=_require_arguments(arguments)),
            callback,
        )

    def queue_bind(
        self, queue: str, exchange: str, routing_key: str | None = None,
        arguments: Mapping[str, Any] | None = None, callback: MethodCallback | None = None,
    ) -> None:
        """Bind a queue (routing key defaults to the queue name, as in pika)."""
        _require_str(queue, "queue")
        _require_str(exchange, "exchange")
        routing_key = queue if routing_key is None else routing_key
        _require_str(routing_key, "routing_key")
        self._call(
            spec.Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key,
                            arguments=_require_arguments(arguments)),
            callback,
        )

    def queue_unbind(
        self, queue: str, exchange: str | None = None, routing_key: str | None = None,
        arguments: Mapping[str, Any] | None = None, callback: MethodCallback | None = None,
    ) -> None:
        """Remove a queue binding; ``callback(frame.Method(Queue.UnbindOk))``."""
        _require_str(queue, "queue")
        exchange = "" if exchange is None else exchange
        _require_str(exchange, "exchange")
        routing_key = queue if routing_key is None else routing_key
        _require_str(routing_key, "routing_key")
        self._raise_if_not_open()
        if callback is not None:
            _require_callback(callback)
        self._rpc(
            spec.Queue.Unbind(queue=queue, exchange=exchange, routing_key=routing_key,
                              arguments=_require_arguments(arguments)),
            callback,
        )

    def queue_delete(
        self, queue: str, if_unused: bool = False, if_empty: bool = False,
        callback: MethodCallback | None = None,
    ) -> None:
        """Delete a queue; ``callback(frame.Method(Queue.DeleteOk))``."""
        _require_str(queue, "queue")
        self._call(
            spec.Queue.Delete(queue=queue, if_unused=if_unused, if_empty=if_empty), callback
        )

    def queue_purge(self, queue: str, callback: MethodCallback | None = None) -> None:
        """Purge a queue; ``callback(frame.Method(Queue.PurgeOk))``."""
        _require_str(queue, "queue")
        self._call(spec.Queue.Purge(queue=queue), callback)

    # ------------------------------------------------------------ flow / tx / close

    def flow(self, active: bool, callback: Callable[[bool], None] | None = None) -> None:
        """Ask the broker to pause (False) or resume (True); ``callback(active)``."""
        if not isinstance(active, bool):
            raise TypeError(f"active must be bool, not {type(active).__name__}")
        self._raise_if_not_open()
        if callback is not None:
            _require_callback(callback)
            user_callback = callback

            def done(reply: frame.Method) -> None:
                user_callback(bool(reply.method.active))

            self._rpc(spec.Channel.Flow(active=active), done)
        else:
            self._rpc(spec.Channel.Flow(active=active), None)

    def tx_select(self, callback: MethodCallback | None = None) -> None:
        """Start transactions; ``callback(frame.Method(Tx.SelectOk))``."""
        self._tx(spec.Tx.Select(), callback)

    def tx_commit(self, callback: MethodCallback | None = None) -> None:
        """Commit; ``callback(frame.Method(Tx.CommitOk))``."""
        self._tx(spec.Tx.Commit(), callback)

    def tx_rollback(self, callback: MethodCallback | None = None) -> None:
        """Roll back; ``callback(frame.Method(Tx.RollbackOk))``."""
        self._tx(spec.Tx.Rollback(), callback)

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Close the channel (consumers are cancelled first, as in pika).

        :raises ChannelWrongStateError: already closing or closed
        """
        if self._state in (self.CLOSED, self.CLOSING):
            raise ChannelWrongStateError("Channel is closed." if self._state == self.CLOSED
                                         else "Channel is already closing.")
        if not isinstance(reply_code, int):
            raise TypeError("reply_code must be int")
        _require_str(reply_text, "reply_text")
        self._closing_reason = ChannelClosedByClient(reply_code, reply_text)
        if self._state == self.OPEN:
            for consumer_tag in list(self._consumers):
                if consumer_tag not in self._cancelled:
                    self.basic_cancel(consumer_tag)
        self._state = self.CLOSING
        self._core.close_channel(self.channel_number, reply_code, reply_text)
        self.connection._request_flush()

    # ------------------------------------------------------------ internals: sending

    def _send(self, method: Any) -> None:
        self._core.send_method(self.channel_number, method)
        self.connection._request_flush()

    def _rpc(self, method: Any, callback: Callable[[Any], None] | None) -> None:
        """Send a request whose reply the core will route back in order."""
        self._core.send_method(self.channel_number, method)
        self._rpc_callbacks.append(callback)
        self.connection._request_flush()

    def _call(self, method: Any, callback: MethodCallback | None) -> None:
        """A method with ``nowait``: no callback means no reply."""
        self._raise_if_not_open()
        method.nowait = _nowait(callback)
        if method.nowait:
            self._send(method)
        else:
            self._rpc(method, callback)

    def _tx(self, method: Any, callback: MethodCallback | None) -> None:
        self._raise_if_not_open()
        if callback is not None:
            _require_callback(callback)
        self._rpc(method, callback)

    def _forget_consumer(self, consumer_tag: str) -> None:
        self._consumers.pop(consumer_tag, None)
        self._consumers_with_noack.discard(consumer_tag)
        self._cancelled.discard(consumer_tag)

    # ------------------------------------------------------------ internals: events

    def _on_open_ok(self) -> None:
        if self._state != self.OPENING:
            return
        self._state = self.OPEN
        callback, self._on_open_callback = self._on_open_callback, None
        if callback is not None:
            self.connection._run_callback(callback, self)

    def _on_delivery(self, event: ev.Delivery) -> None:
        method = event.method
        consumer = self._consumers.get(method.consumer_tag)
        if consumer is None:
            tag = method.consumer_tag
            if tag in self._cancelled:
                if self._state == self.OPEN and tag not in self._consumers_with_noack:
                    self.basic_reject(method.delivery_tag)
                return
            LOGGER.error("Unexpected delivery for consumer %r on %r", tag, self)
            return
        consumer(self, method, event.properties, event.body)

    def _on_rpc_reply(self, event: ev.RpcReply) -> None:
        callback = self._rpc_callbacks.popleft() if self._rpc_callbacks else None
        if callback is not None:
            if event.body is not None:
                callback((event.method, event.properties, event.body))
            else:
                callback(frame.Method(self.channel_number, event.method))
        # listeners last: the request's own bookkeeping (e.g. basic_get's pending
        # callback) is settled, so a listener may issue the next request at once
        if self._method_callbacks:
            self._notify_method_callbacks(event.method)

    def _on_get_reply(self, reply: Any) -> None:
        callback, self._on_getok_callback = self._on_getok_callback, None
        if isinstance(reply, tuple) and callback is not None:
            method, properties, body = reply
            callback(self, method, properties, body)

    def _on_method(self, method: Any) -> None:
        index = method.INDEX
        if self._method_callbacks:
            self._notify_method_callbacks(method)
        if index == spec.Basic.Ack.INDEX or index == spec.Basic.Nack.INDEX:
            if self._ack_nack_callback is not None:
                self._ack_nack_callback(frame.Method(self.channel_number, method))
        elif index == spec.Basic.Cancel.INDEX:
            tag = method.consumer_tag
            if tag in self._cancelled:
                return
            self._forget_consumer(tag)
            method_frame = frame.Method(self.channel_number, method)
            for callback in list(self._on_cancel_callbacks):
                self.connection._run_callback(callback, method_frame)
        elif index == spec.Channel.Flow.INDEX:
            method_frame = frame.Method(self.channel_number, method)
            for callback in list(self._on_flow_callbacks):
                self.connection._run_callback(callback, method_frame)

    def _on_return(self, event: ev.Returned) -> None:
        if not self._on_return_callbacks:
            LOGGER.warning("Basic.Return received with no return callback: %r", event.method)
        for callback in list(self._on_return_callbacks):
            self.connection._run_callback(
                callback, self, event.method, event.properties, event.body
            )

    def _on_closed(self, reply_code: int, reply_text: str, by_peer: bool) -> None:
        error: BaseException
        if by_peer:
            error = ChannelClosedByBroker(reply_code, reply_text)
        else:
            error = self._closing_reason or ChannelClosedByClient(reply_code, reply_text)
        self._close_with(error)

    def _on_connection_closing(self, reply_code: int, reply_text: str) -> None:
        if self._closing_reason is None:
            self._closing_reason = ChannelClosedByClient(reply_code, reply_text)
        # Fix: as in pika, closing the connection closes its channels: from now on they are
        # CLOSING and their consumers get no more deliveries (which could not be acked any
        # more); before, consumers kept being called on an "open" channel that refused acks.
        if self._state != self.CLOSED:
            self._state = self.CLOSING
            self._cancelled.update(self._consumers)
            self._consumers.clear()

    def _on_connection_lost(self, error: BaseException) -> None:
        if isinstance(self._closing_reason, ChannelClosedByClient):
            error = self._closing_reason
        self._close_with(error)

    def _close_with(self, error: BaseException) -> None:
        if self._state == self.CLOSED:
            return
        self._state = self.CLOSED
        self._rpc_callbacks.clear()
        self._consumers.clear()
        self._cancelled.clear()
        self._consumers_with_noack.clear()
        self._on_getok_callback = None
        self._method_callbacks.clear()
        for callback in list(self._on_close_callbacks):
            self.connection._run_callback(callback, self, error)
