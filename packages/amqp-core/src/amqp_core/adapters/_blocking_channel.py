"""pika's ``BlockingChannel``: every channel method, blocking until its reply.

Theory of operation: a :class:`BlockingChannel` turns each call into a
``spec`` method handed to the protocol core, then asks its connection to wait
(``BlockingLoop._wait``) until the reply has arrived.  The core answers
requests on a channel in order, so the channel keeps a FIFO of reply slots
and fills the oldest one on every ``RpcReply`` event.  A wait ends early when
the channel or the connection closes; the call then raises what pika raises:
``ChannelClosedByBroker`` from the call that observes a broker's close (or,
when the close was seen while serving another channel or
``process_data_events``, from the next call on this channel), the
connection's error, or ``ChannelWrongStateError``.

Nothing here calls user code while a reply is awaited.  Deliveries, broker
cancellations and returned messages become items in the connection's *ready*
queue (a deque shared with the connection at construction), which only
``process_data_events`` / ``start_consuming`` dispatch, as in pika.  The
``consume()`` generator's deliveries go to the generator's own deque instead.

Publishing without confirms is the hot path: one state check, one
``core.basic_publish`` and, only when the core holds more than
:data:`FLUSH_THRESHOLD` bytes, a write.  Everything else queued is written
before the connection next waits and before ``process_data_events`` or
``close`` return.  Publisher confirms and the windowed mode live in
:mod:`._blocking_confirms`, the plain request/reply methods (declare, bind,
purge, get, qos, tx ...) in :mod:`._blocking_methods`; this module keeps the
channel's state, publishing, acks and consumers.

The channel talks to its connection through a few underscore methods that
exist for it (``_wait``, ``_drain_output``, ``_write_now``, ``_notify``,
``_take_ready``, ``_in_dispatch``), as pika's blocking channel does.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from .. import frame, spec
from ..exceptions import (
    ChannelClosedByBroker,
    ChannelClosedByClient,
    ChannelWrongStateError,
    DuplicateConsumerTag,
    ReentrancyError,
)
from ..protocol import Connection as CoreConnection
from ..protocol import events as ev
from ._blocking_confirms import ConfirmTracker, ReturnedMessage
from ._blocking_methods import (
    ChannelMethods,
    require_arguments,
    require_callable,
    require_flag,
    require_str,
    require_timeout,
)
from ._blocking_transport import DISPATCH_FLUSH_THRESHOLD, FLUSH_THRESHOLD

if TYPE_CHECKING:
    from ._blocking_loop import ReadyItem
    from .blocking_connection import BlockingConnection

__all__ = ["FLUSH_THRESHOLD", "BlockingChannel", "Call", "ReturnedMessage"]

LOGGER = logging.getLogger(__name__)

_OPENING: Final = 1
_OPEN: Final = 2
_CLOSING: Final = 3
_CLOSED: Final = 0
_STATE_NAMES: Final = {0: "CLOSED", 1: "OPENING", 2: "OPEN", 3: "CLOSING"}

OnMessage = Callable[[Any, Any, spec.BasicProperties, bytes], None]

#: the marker a ``consume()`` generator finds when the broker cancelled its consumer
_CANCELLED_BY_BROKER: Final = object()


class Call:
    """A user callback waiting in the connection's ready queue.

    :param fn: what to call
    :param args: its arguments
    :param owner: the channel it belongs to (dropped when that channel closes)
    :param tag: the consumer tag it concerns (dropped when that consumer is cancelled)
    """

    __slots__ = ("args", "fn", "owner", "tag")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...] = (),
        owner: BlockingChannel | None = None, tag: str | None = None,
    ) -> None:
        self.fn = fn
        self.args = args
        self.owner = owner
        self.tag = tag

    def dispatch(self) -> None:
        """Run the callback."""
        self.fn(*self.args)


class _Slot:
    """Where the reply to one request lands."""

    __slots__ = ("reply",)

    def __init__(self) -> None:
        self.reply: ev.RpcReply | None = None


class _Consumer:
    """One consumer of this channel (``basic_consume`` or the ``consume()`` generator)."""

    __slots__ = ("auto_ack", "callback", "cancelled_by_broker", "late", "rejected", "sink",
                 "tag", "tearing_down")

    def __init__(
        self, tag: str, auto_ack: bool, callback: OnMessage | None,
        sink: deque[Any] | None,
    ) -> None:
        self.tag = tag
        self.auto_ack = auto_ack
        self.callback = callback
        self.sink = sink
        self.tearing_down = False
        self.cancelled_by_broker = False
        #: auto-ack deliveries that arrived while the cancel was in flight
        self.late: list[ev.Delivery] = []
        #: deliveries rejected (requeued) by the cancellation
        self.rejected = 0


class _Generator:
    """The ``consume()`` generator's consumer: its parameters, tag and pending deliveries."""

    __slots__ = ("consumer_tag", "params", "pending")

    def __init__(self, params: tuple[str, bool, bool], consumer_tag: str) -> None:
        self.params = params
        self.consumer_tag = consumer_tag
        self.pending: deque[Any] = deque()


class BlockingChannel(ChannelMethods, ConfirmTracker):
    """A channel whose methods block until the broker has answered (pika's ``BlockingChannel``).

    Created by :meth:`BlockingConnection.channel`, not directly.  Usable as a
    context manager: leaving the block closes the channel if it is still open.
    """

    def __init__(
        self, connection: BlockingConnection, channel_number: int, core: CoreConnection,
        ready: deque[ReadyItem],
    ) -> None:
        super().__init__()
        self._connection = connection
        self._number = channel_number
        self._core = core
        self._ready = ready
        self._state = _OPENING
        self._slots: deque[_Slot] = deque()
        self._consumers: dict[str, _Consumer] = {}
        self._generator: _Generator | None = None
        self._cancel_callbacks: list[Callable[[frame.Method], None]] = []
        self._return_callbacks: list[OnMessage] = []
        self._closing_reason: BaseException | None = None
        self._broker_close: ChannelClosedByBroker | None = None
        self._broker_close_reported = False

    def __repr__(self) -> str:
        return (
            f"<BlockingChannel number={self._number} {_STATE_NAMES[self._state]} "
            f"conn={self._connection!r}>"
        )

    def __int__(self) -> int:
        return self._number

    def __enter__(self) -> BlockingChannel:
        return self

    def __exit__(self, exc_type: Any, value: Any, traceback: Any) -> None:
        if self.is_open:
            self.close()

    # ------------------------------------------------------------ properties

    @property
    def channel_number(self) -> int:
        """The channel number."""
        return self._number

    @property
    def connection(self) -> BlockingConnection:
        """The channel's :class:`BlockingConnection`."""
        return self._connection

    @property
    def is_closed(self) -> bool:
        """True once the channel is closed."""
        return self._state == _CLOSED

    @property
    def is_open(self) -> bool:
        """True while the channel is open (not opening, closing or closed)."""
        return self._state == _OPEN

    @property
    def consumer_tags(self) -> list[str]:
        """The tags of this channel's active consumers."""
        return list(self._consumers)

    # ------------------------------------------------------------ state checks

    def _raise_not_open(self) -> None:
        """Raise what a call on a channel that is not open raises."""
        if self._state == _CLOSED:
            self._raise_if_closed_by_broker()
            raise ChannelWrongStateError("Channel is closed.")
        if self._state == _CLOSING:
            raise ChannelWrongStateError("Channel is closing.")
        if self._state == _OPENING:
            raise ChannelWrongStateError("Channel is opening.")

    def _raise_if_closed_by_broker(self) -> None:
        """Raise the broker's close once, from the first call that learns of it."""
        error = self._broker_close
        if error is not None and not self._broker_close_reported:
            self._broker_close_reported = True
            raise error

    def _is_opening(self) -> bool:
        return self._state == _OPENING

    def _check_open(self) -> None:
        if self._state != _OPEN:
            self._raise_not_open()

    def _wait(self, done: Callable[[], bool], deadline: float | None = None) -> bool:
        """Wait on the connection until ``done()`` or this channel closes or ``deadline``."""
        finished = self._connection._wait(lambda: done() or self._state == _CLOSED, deadline)
        if self._state == _CLOSED and not done():
            self._raise_not_open()
        return finished

    def _rpc(self, method: Any) -> ev.RpcReply:
        """Send a synchronous request and wait for its reply."""
        self._check_open()
        self._core.send_method(self._number, method)
        slot = _Slot()
        self._slots.append(slot)
        self._wait(lambda: slot.reply is not None)
        reply = slot.reply
        assert reply is not None
        return reply

    def _call(self, method: Any) -> frame.Method:
        """A synchronous request whose reply pika returns as a ``frame.Method``."""
        return frame.Method(self._number, self._rpc(method).method)

    # ------------------------------------------------------------ callbacks

    def add_on_cancel_callback(self, callback: Callable[[frame.Method], None]) -> None:
        """``callback(frame.Method(Basic.Cancel))`` when the broker cancels a consumer.

        Dispatched from ``process_data_events`` / ``start_consuming``.
        """
        require_callable(callback)
        self._cancel_callbacks.append(callback)

    def add_on_return_callback(self, callback: OnMessage) -> None:
        """``callback(channel, method, properties, body)`` for each returned message.

        Dispatched from ``process_data_events`` / ``start_consuming``.
        """
        require_callable(callback)
        self._return_callbacks.append(callback)

    # ------------------------------------------------------------ acks

    def basic_ack(self, delivery_tag: int = 0, multiple: bool = False) -> None:
        """Acknowledge one message, or every one up to ``delivery_tag`` with ``multiple``.

        Queued and written with the next batch of output (before any wait).
        """
        if self._state != _OPEN:
            self._raise_not_open()
        core = self._core
        core.basic_ack(self._number, delivery_tag, multiple)
        if core.bytes_to_send > FLUSH_THRESHOLD:
            self._drain_output()

    def basic_nack(
        self, delivery_tag: int = 0, multiple: bool = False, requeue: bool = True
    ) -> None:
        """Reject one message or several (RabbitMQ's Basic.Nack)."""
        self._check_open()
        self._core.basic_nack(self._number, delivery_tag, multiple, requeue)
        if self._core.bytes_to_send > FLUSH_THRESHOLD:
            self._drain_output()

    def basic_reject(self, delivery_tag: int = 0, requeue: bool = True) -> None:
        """Reject one message."""
        self._check_open()
        self._core.basic_reject(self._number, delivery_tag, requeue)
        if self._core.bytes_to_send > FLUSH_THRESHOLD:
            self._drain_output()

    def _drain_output(self) -> None:
        self._connection._drain_output()
        if self._state != _OPEN:
            self._raise_not_open()

    # ------------------------------------------------------------ publish

    def basic_publish(
        self,
        exchange: str,
        routing_key: str,
        body: bytes | str,
        properties: spec.BasicProperties | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish a message (``str`` bodies are sent UTF-8 encoded).

        Without confirms the message is queued and written with the next batch
        of output: when more than 64 KiB are queued, and always before the
        connection waits for anything, before ``process_data_events`` / ``sleep``
        / ``close`` return, and at interpreter exit.  After
        :meth:`confirm_delivery` the call waits for the broker's confirm, as in
        pika; inside :meth:`confirm_window` it waits only while the window is full.

        :raises UnroutableError: confirm mode, ``mandatory``, and the broker
            returned the message (Basic.Return before the Basic.Ack)
        :raises NackError: confirm mode and the broker nacked the message
        :raises ChannelClosedByBroker: the broker closed the channel
        """
        if self._state != _OPEN:
            self._raise_not_open()
        core = self._core
        sequence = core.basic_publish(
            self._number, exchange, routing_key, body, properties, mandatory  # type: ignore[arg-type]
        )
        if sequence:
            self._after_confirmed_publish(
                sequence, exchange, routing_key, body, properties, mandatory
            )
        elif core.bytes_to_send > FLUSH_THRESHOLD:
            self._drain_output()

    # ------------------------------------------------------------ consumers

    def basic_consume(
        self,
        queue: str,
        on_message_callback: OnMessage,
        auto_ack: bool = False,
        exclusive: bool = False,
        consumer_tag: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        """Start a consumer; returns its tag.

        ``on_message_callback(channel, method, properties, body)`` is
        dispatched from ``process_data_events`` / ``start_consuming`` only.

        :raises DuplicateConsumerTag: the tag is in use on this channel
        """
        require_str(queue, "queue")
        require_callable(on_message_callback, "on_message_callback")
        return self._consume(queue, auto_ack, exclusive, consumer_tag, arguments,
                             on_message_callback, None)

    def _consume(
        self, queue: str, auto_ack: bool, exclusive: bool, consumer_tag: str | None,
        arguments: Mapping[str, Any] | None, callback: OnMessage | None,
        sink: deque[Any] | None,
    ) -> str:
        require_flag(auto_ack, "auto_ack")
        require_flag(exclusive, "exclusive")
        self._check_open()
        if not consumer_tag:
            consumer_tag = f"ctag{self._number}.{uuid.uuid4().hex}"
        else:
            require_str(consumer_tag, "consumer_tag")
        if consumer_tag in self._consumers:
            raise DuplicateConsumerTag(consumer_tag)
        method = spec.Basic.Consume(
            queue=queue, consumer_tag=consumer_tag, no_ack=bool(auto_ack),
            exclusive=bool(exclusive), arguments=require_arguments(arguments),
        )
        # registered first: deliveries may follow Consume-Ok in the same read
        self._consumers[consumer_tag] = _Consumer(consumer_tag, bool(auto_ack), callback, sink)
        try:
            self._rpc(method)
        except BaseException:
            self._consumers.pop(consumer_tag, None)
            raise
        return consumer_tag

    def basic_cancel(self, consumer_tag: str) -> list[tuple[Any, spec.BasicProperties, bytes]]:
        """Cancel a consumer and wait for the broker's Cancel-Ok.

        Deliveries not yet dispatched to an ``auto_ack=False`` consumer are
        rejected (requeued); those of an ``auto_ack=True`` consumer are returned.

        :returns: ``[(method, properties, body), ...]`` for an auto-ack
            consumer, else ``[]``
        :raises TypeError: ``consumer_tag`` is not a str
        """
        require_str(consumer_tag, "consumer_tag")
        consumer = self._consumers.get(consumer_tag)
        if consumer is None:
            LOGGER.warning(
                "basic_cancel: unknown consumer %r (already cancelled by the client or "
                "the broker?)", consumer_tag,
            )
            return []
        try:
            consumer.tearing_down = True
            slot = None
            if self._state == _OPEN and not consumer.cancelled_by_broker:
                # Cancel goes out before the rejects, so requeued messages are not
                # redelivered to this very consumer
                self._core.send_method(self._number, spec.Basic.Cancel(consumer_tag=consumer_tag))
                slot = _Slot()
                self._slots.append(slot)
            if not consumer.auto_ack:
                for event in self._take_pending(consumer):
                    if self._state == _OPEN:
                        self._core.basic_reject(self._number, event.method.delivery_tag, True)
                        consumer.rejected += 1
            if slot is not None:
                self._wait(lambda: slot.reply is not None)
            if consumer.auto_ack:
                pending = self._take_pending(consumer) + consumer.late
                return [(event.method, event.properties, event.body) for event in pending]
            return []
        finally:
            self._consumers.pop(consumer_tag, None)
            if self._generator is not None and self._generator.consumer_tag == consumer_tag:
                self._generator = None
            self._connection._notify()

    def _take_pending(self, consumer: _Consumer) -> list[ev.Delivery]:
        """Remove the consumer's undispatched deliveries (and a pending broker cancel)."""
        sink = consumer.sink
        if sink is not None:
            events = [event for event in sink if event is not _CANCELLED_BY_BROKER]
            sink.clear()
            return events
        number, tag = self._number, consumer.tag

        def belongs(item: Any) -> bool:
            if type(item) is ev.Delivery:
                return item.channel_number == number and item.method.consumer_tag == tag
            return isinstance(item, Call) and item.owner is self and item.tag == tag

        taken = self._connection._take_ready(belongs)
        return [item for item in taken if type(item) is ev.Delivery]

    def start_consuming(self) -> None:
        """Dispatch deliveries, timers and other callbacks until every consumer is cancelled.

        :raises ReentrancyError: called from a callback of this connection
        :raises ChannelClosedByBroker: the broker closed this channel
        """
        if self._connection._in_dispatch():
            raise ReentrancyError(
                "start_consuming may not be called from the scope of another "
                "BlockingConnection or BlockingChannel callback"
            )
        self._check_open()
        while self._consumers:
            self._process_data_events(None)

    def stop_consuming(self, consumer_tag: str | None = None) -> None:
        """Cancel one consumer, or all of them, which ends :meth:`start_consuming`."""
        if consumer_tag:
            self.basic_cancel(consumer_tag)
        else:
            self._cancel_all_consumers()

    def _cancel_all_consumers(self) -> None:
        if self._generator is not None:
            self.cancel()
        for tag in list(self._consumers):
            self.basic_cancel(tag)

    def _process_data_events(self, time_limit: float | None) -> None:
        self._connection.process_data_events(time_limit)
        if self._state == _CLOSED:
            self._raise_if_closed_by_broker()

    def consume(
        self,
        queue: str,
        auto_ack: bool = False,
        exclusive: bool = False,
        arguments: Mapping[str, Any] | None = None,
        inactivity_timeout: float | None = None,
    ) -> Iterator[tuple[Any, Any, Any]]:
        """Consume ``queue`` as a generator of ``(method, properties, body)``.

        With ``inactivity_timeout`` (seconds) it yields ``(None, None, None)``
        after that long without a message.  The generator ends when the
        consumer is cancelled (:meth:`cancel`, or by the broker).  Calling
        ``consume`` again with the same ``(queue, auto_ack, exclusive)``
        resumes the same consumer.

        :raises ValueError: a consumer generator with other parameters exists
        :raises ChannelClosedByBroker: the broker closed this channel
        """
        require_str(queue, "queue")
        timeout = require_timeout(inactivity_timeout, "inactivity_timeout")
        self._check_open()
        params = (queue, bool(auto_ack), bool(exclusive))
        generator = self._generator
        if generator is not None:
            if params != generator.params:
                raise ValueError(
                    "Consume with different params not allowed on existing queue consumer "
                    f"generator; previous params: {generator.params!r}; new params: {params!r}"
                )
        else:
            generator = _Generator(params, f"ctag{self._number}.{uuid.uuid4().hex}")
            self._generator = generator
            try:
                self._consume(queue, params[1], params[2], generator.consumer_tag, arguments,
                              None, generator.pending)
            except BaseException:
                self._generator = None
                raise
        pending = generator.pending
        core = self._core
        while self._generator is generator:
            if pending:
                item = pending.popleft()
                if item is _CANCELLED_BY_BROKER:
                    self._generator = None
                    self._consumers.pop(generator.consumer_tag, None)
                    break
                yield item.method, item.properties, item.body
                if core.bytes_to_send > DISPATCH_FLUSH_THRESHOLD:
                    # acks go out while the rest of a batch is yielded (as callbacks'
                    # do), so the broker refills the prefetch window meanwhile
                    self._connection._write_now()
                continue
            if timeout is None:
                self._process_data_events(None)
                continue
            deadline = time.monotonic() + timeout
            left = timeout
            while self._generator is generator and not pending:
                self._process_data_events(left)
                if self._generator is not generator or pending:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    yield None, None, None
                    break

    def get_waiting_message_count(self) -> int:
        """How many messages the ``consume()`` generator can yield without waiting."""
        generator = self._generator
        if generator is None:
            return 0
        count = len(generator.pending)
        if count and generator.pending[-1] is _CANCELLED_BY_BROKER:
            count -= 1
        return count

    def cancel(self) -> int:
        """Cancel the ``consume()`` generator's consumer.

        Messages it holds and has not yielded are rejected (requeued) when it
        is not ``auto_ack``, as are those that arrive before the broker's Cancel-Ok.

        :returns: the number of messages requeued
        """
        generator = self._generator
        if generator is None:
            LOGGER.warning("cancel: no consumer generator is active on %r", self)
            return 0
        consumer = self._consumers.get(generator.consumer_tag)
        try:
            self.basic_cancel(generator.consumer_tag)
        finally:
            self._generator = None
        return consumer.rejected if consumer is not None else 0

    # ------------------------------------------------------------ close

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> None:
        """Cancel the consumers and close the channel, waiting for the broker's Close-Ok.

        :raises ChannelWrongStateError: the channel is not open
        """
        if isinstance(reply_code, bool) or not isinstance(reply_code, int):
            raise TypeError(f"reply_code must be int, not {type(reply_code).__name__}")
        require_str(reply_text, "reply_text")
        self._check_open()
        try:
            self._begin_close(reply_code, reply_text)
            self._connection._wait(lambda: self._state == _CLOSED)
            self._raise_if_closed_by_broker()
        finally:
            self._cleanup()

    def _begin_close(self, reply_code: int, reply_text: str) -> None:
        """Queue Basic.Cancel for each consumer, then Channel.Close (no waiting)."""
        self._closing_reason = ChannelClosedByClient(reply_code, reply_text)
        for tag, consumer in self._consumers.items():
            if not consumer.cancelled_by_broker:
                self._core.send_method(self._number, spec.Basic.Cancel(consumer_tag=tag))
                self._slots.append(_Slot())
        self._core.close_channel(self._number, reply_code, reply_text)
        self._state = _CLOSING

    # ------------------------------------------------------------ events from the connection

    def _on_open_ok(self) -> None:
        if self._state == _OPENING:
            self._state = _OPEN

    def _on_rpc_reply(self, event: ev.RpcReply) -> None:
        if self._slots:
            self._slots.popleft().reply = event

    def _on_delivery(self, event: ev.Delivery) -> None:
        consumer = self._consumers.get(event.method.consumer_tag)
        if consumer is None:
            LOGGER.error("Delivery for unknown consumer %r on %r: dropped",
                         event.method.consumer_tag, self)
            return
        if consumer.tearing_down:
            if consumer.auto_ack:
                consumer.late.append(event)
            elif self._state == _OPEN:
                self._core.basic_reject(self._number, event.method.delivery_tag, True)
                consumer.rejected += 1
            return
        sink = consumer.sink
        if sink is None:
            self._ready.append(event)
        else:
            sink.append(event)
            self._connection._notify()

    def _dispatch_delivery(self, event: ev.Delivery) -> None:
        consumer = self._consumers.get(event.method.consumer_tag)
        if consumer is not None and consumer.callback is not None and not consumer.tearing_down:
            consumer.callback(self, event.method, event.properties, event.body)

    def _on_broker_cancel(self, method: Any) -> None:
        tag = method.consumer_tag
        consumer = self._consumers.get(tag)
        if consumer is None or consumer.tearing_down:
            return
        consumer.cancelled_by_broker = True
        if consumer.sink is not None:
            consumer.sink.append(_CANCELLED_BY_BROKER)
            self._connection._notify()
            return
        method_frame = frame.Method(self._number, method)
        self._ready.append(Call(self._dispatch_broker_cancel, (method_frame,), self, tag))

    def _dispatch_broker_cancel(self, method_frame: frame.Method) -> None:
        self._consumers.pop(method_frame.method.consumer_tag, None)
        for callback in list(self._cancel_callbacks):
            callback(method_frame)

    def _on_return(self, event: ev.Returned) -> None:
        self._record_return(ReturnedMessage(event.method, event.properties, event.body))
        for callback in self._return_callbacks:
            self._ready.append(Call(
                callback, (self, event.method, event.properties, event.body), self
            ))

    def _on_closed(self, reply_code: int, reply_text: str, by_peer: bool) -> None:
        if by_peer:
            error: BaseException = ChannelClosedByBroker(reply_code, reply_text)
            self._broker_close = error  # type: ignore[assignment]
            LOGGER.warning("Channel %d closed by the broker: %r", self._number, error)
        else:
            error = self._closing_reason or ChannelClosedByClient(reply_code, reply_text)
        self._closing_reason = error
        self._state = _CLOSED
        self._cleanup()
        self._connection._notify()

    def _on_connection_closed(self, error: BaseException) -> None:
        if self._state == _CLOSED:
            return
        if self._closing_reason is None:
            self._closing_reason = error
        self._state = _CLOSED
        self._cleanup()

    def _cleanup(self) -> None:
        self._slots.clear()
        self._consumers.clear()
        self._generator = None
        self._clear_confirms()
