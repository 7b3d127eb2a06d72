"""``TwistedChannel``: pika's Deferred-returning channel, derived from the one callback channel.

Theory of operation
-------------------
A :class:`TwistedChannel` wraps an :class:`amqp_core.channel.Channel` (the
callback API).  Every method that waits for the broker returns a Deferred:

* generically (:data:`CHANNEL_DEFERREDS`, installed by
  :func:`~amqp_adapter_twisted._deferreds.install`): ``queue_declare``,
  ``exchange_declare``, ``basic_qos``, ``queue_delete``, ``tx_commit`` ... fire
  with the reply's ``frame.Method``; ``flow`` with the flow state;
* by hand, where the semantics are not "one callback, one reply":
  ``basic_consume`` (fires with ``(queue_object, consumer_tag)``; deliveries go
  into a :class:`~amqp_adapter_twisted.ClosableDeferredQueue` as
  :class:`~amqp_adapter_twisted.ReceivedMessage` with ``put_soon``: waiting
  ``get`` calls are served once per reactor turn), ``basic_cancel`` (closes
  that queue with ``ConsumerCancelled``; a tag not consuming gives None),
  ``basic_get`` (a ``ReceivedMessage``, or None when the queue is empty),
  ``basic_publish`` (see below), ``confirm_delivery`` and ``close`` (fires with
  the close reason once closed).

``basic_ack``, ``basic_nack`` and ``basic_reject`` are the callback channel's
own bound methods (no wrapper on the hot path); other attributes
(``add_on_cancel_callback``, ``add_on_flow_callback`` ...) are the callback
channel's too.

Closing: when the channel closes (by the client, the broker, or with its
connection) every pending Deferred errbacks with the specific reason
(``ChannelClosedByBroker``, ``ConnectionClosedByBroker``, ``StreamLostError``
...), every consumer queue is closed with it, later calls fail with it, and
``on_closed`` and the close callbacks fire.

Publishing: without confirms ``basic_publish`` returns an already-fired
Deferred (the message is queued for this reactor turn's write).  After
``confirm_delivery`` each publish gets the next delivery tag and a Deferred
that fires with the ``Basic.Ack`` method, or errbacks with
:class:`~amqp_core.exceptions.NackError` (nacked) or
:class:`~amqp_core.exceptions.UnroutableError` (``mandatory`` and returned:
RabbitMQ sends the Basic.Return just before the ack of the same message; the
return is matched to a mandatory publish of that ack by exchange, routing key
and body).  An ack with ``multiple`` settles every tag up to it.

``basic_get``: as in pika, the callback API does not pass Basic.GetEmpty to
the get callback; a persistent ``add_callback(..., [Basic.GetEmpty])`` on the
callback channel (registered once) fires the one ``basic_get`` in flight with
None (on the next reactor turn, see ``_on_get_empty``).

Use a TwistedChannel on the reactor's thread only; from other threads go
through ``connection.add_callback_threadsafe`` (``reactor.callFromThread``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed

from amqp_core import spec
from amqp_core.channel import Channel
from amqp_core.completions import REPLY_CALLBACK, REPLY_CALLBACK_METHODS
from amqp_core.exceptions import (
    ConsumerCancelled,
    DuplicateGetOkCallback,
    NackError,
    UnroutableError,
)

from ._deferreds import Completion, DeferredOwner, install
from .queue import ClosableDeferredQueue, ReceivedMessage

__all__ = ["CHANNEL_DEFERREDS", "TwistedChannel"]

LOGGER = logging.getLogger(__name__)

#: ``ReceivedMessage`` without the generated ``__new__`` (a plain 4-tuple of that class).
_new_message = tuple.__new__

#: The callback channel's methods that TwistedChannel passes through as they are.
PASS_THROUGH = ("basic_ack", "basic_nack", "basic_reject")


class _Consumer:
    """What TwistedChannel keeps per consumer tag."""

    __slots__ = ("auto_ack", "queue")

    def __init__(self, queue: ClosableDeferredQueue, auto_ack: bool) -> None:
        self.queue = queue
        self.auto_ack = auto_ack


class _Confirms:
    """Delivery tags of unconfirmed publishes and their Deferreds (publisher confirms).

    ``pending`` holds ``(tag, deferred)`` pairs in publish (= tag) order: the broker
    confirms mostly in order, often with ``multiple``, so settling is a run of
    ``popleft`` calls (or one swap when every pending tag is covered); a single ack
    out of order is searched for.
    """

    __slots__ = ("mandatory", "next_tag", "pending", "returned")

    def __init__(self) -> None:
        self.next_tag = 1
        self.pending: deque[tuple[int, Deferred[Any]]] = deque()
        self.mandatory: dict[int, tuple[str, str, Any]] = {}
        self.returned: deque[ReceivedMessage] = deque()

    def track(self, exchange: str, routing_key: str, body: Any, mandatory: bool) -> Deferred[Any]:
        tag = self.next_tag
        self.next_tag = tag + 1
        deferred: Deferred[Any] = Deferred()
        self.pending.append((tag, deferred))
        if mandatory:
            self.mandatory[tag] = (exchange, routing_key, body)
        return deferred

    def on_ack_nack(self, method_frame: Any) -> None:
        method = method_frame.method
        tag: int = method.delivery_tag
        pending = self.pending
        batch: Iterable[tuple[int, Deferred[Any]]]
        if not pending:
            batch = ()
        elif method.multiple:
            if pending[-1][0] <= tag:  # every pending tag: swap (callbacks may publish meanwhile)
                batch = pending
                self.pending = deque()
            else:
                taken: list[tuple[int, Deferred[Any]]] = []
                popleft = pending.popleft
                while pending[0][0] <= tag:  # stops at the last entry at the latest
                    taken.append(popleft())
                batch = taken
        elif pending[0][0] == tag:
            batch = (pending.popleft(),)
        else:
            batch = self._take(tag)
        if self.mandatory or self.returned or type(method) is not spec.Basic.Ack:
            self._settle_checked(batch, method)
            return
        for _tag, deferred in batch:  # the common case: plain acks
            if not deferred.called:  # else the publisher cancelled it
                deferred.callback(method)

    def _take(self, tag: int) -> tuple[tuple[int, Deferred[Any]], ...]:
        """Remove and return the one entry of ``tag`` (acked out of order), if pending."""
        pending = self.pending
        for index, entry in enumerate(pending):
            if entry[0] == tag:
                del pending[index]
                return (entry,)
            if entry[0] > tag:
                break
        return ()

    def _settle_checked(self, batch: Iterable[tuple[int, Deferred[Any]]], method: Any) -> None:
        """Settle with returns (mandatory publishes) and nacks taken into account."""
        nack = type(method) is spec.Basic.Nack
        check_returns = bool(self.mandatory)
        for one, deferred in batch:
            returned = self._returned_for(one) if check_returns else None
            if deferred.called:  # the publisher cancelled it
                continue
            if returned is not None:
                deferred.errback(UnroutableError([returned]))
            elif nack:
                deferred.errback(NackError([]))
            else:
                deferred.callback(method)
        if self.returned:  # a return precedes the ack of its own message: older ones are stale
            self.returned.clear()

    def _returned_for(self, tag: int) -> ReceivedMessage | None:
        published = self.mandatory.pop(tag, None)
        if published is None or not self.returned:
            return None
        exchange, routing_key, body = published
        if isinstance(body, str):
            body = body.encode()
        for message in self.returned:
            method = message.method
            if (method.exchange == exchange and method.routing_key == routing_key
                    and message.body == body):
                self.returned.remove(message)
                return message
        return None

    def fail_all(self, error: BaseException) -> None:
        pending, self.pending = self.pending, deque()
        self.mandatory.clear()
        self.returned.clear()
        for _tag, deferred in pending:
            if not deferred.called:
                deferred.errback(error)


def _after_cancel_ok(owner: TwistedChannel, method_frame: Any) -> Any:
    owner._end_consumer(method_frame.method.consumer_tag, requeue_pending=True)
    return method_frame


#: TwistedChannel's generic Deferred-returning methods (each fires with the callback's argument);
#: ``basic_consume`` is written by hand (it fires with a queue object and the consumer tag).
CHANNEL_DEFERREDS: Mapping[str, Completion] = {
    name: Completion(REPLY_CALLBACK) for name in REPLY_CALLBACK_METHODS if name != "basic_consume"
}

_CANCEL = Completion("callback", wrap=_after_cancel_ok)
_CONFIRM_SELECT = Completion("callback")


class TwistedChannel(DeferredOwner):
    """pika's Deferred-returning channel over an amqp_core callback :class:`Channel`.

    Made by ``TwistedProtocolConnection.channel()``; any open callback channel
    can be wrapped too: ``TwistedChannel(channel)``.

    :param channel: the callback-API channel
    :raises TypeError: ``channel`` is not an :class:`amqp_core.channel.Channel`

    Attributes: ``callback_channel`` (the channel underneath), ``on_closed`` (a
    Deferred fired with the close reason, as in pika).
    """

    _TARGET = "callback_channel"

    #: ``basic_ack(delivery_tag=0, multiple=False)``: the callback channel's own method.
    basic_ack: Callable[..., None]
    #: ``basic_nack(delivery_tag=0, multiple=False, requeue=True)``: the callback channel's.
    basic_nack: Callable[..., None]
    #: ``basic_reject(delivery_tag=0, requeue=True)``: the callback channel's.
    basic_reject: Callable[..., None]

    def __init__(self, channel: Channel) -> None:
        if not isinstance(channel, Channel):
            raise TypeError(f"channel must be an amqp_core Channel, not {type(channel).__name__}")
        #: The callback-API channel underneath.
        self.callback_channel = channel
        self._pending = set()
        self._failure = None
        #: Fires with the close reason when the channel closes (pika's attribute).
        self.on_closed: Deferred[BaseException] = Deferred()
        self._close_waiters: list[Deferred[Any]] = []
        self._close_callbacks: list[Callable[[TwistedChannel, BaseException], None]] = []
        self._return_callbacks: list[Callable[[ReceivedMessage], None]] = []
        self._consumers: dict[str, _Consumer] = {}
        self._confirms: _Confirms | None = None
        self._get_deferred: Deferred[Any] | None = None
        for name in PASS_THROUGH:
            setattr(self, name, getattr(channel, name))
        self._publish = channel.basic_publish
        connection: Any = channel.connection
        self._call_soon: Callable[[Callable[[], None]], Any] = connection.event_loop.call_soon
        channel.add_on_close_callback(self._on_channel_closed)
        channel.add_on_cancel_callback(self._on_broker_cancel)
        channel.add_on_return_callback(self._on_returned)
        channel.add_callback(self._on_get_empty, [spec.Basic.GetEmpty], one_shot=False)

    def __repr__(self) -> str:
        return f"<TwistedChannel channel={self.callback_channel!r}>"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == self._TARGET:
            raise AttributeError(name)
        return getattr(self.callback_channel, name)

    # ------------------------------------------------------------ state

    @property
    def channel_number(self) -> int:
        """The channel's number."""
        return self.callback_channel.channel_number

    @property
    def connection(self) -> Any:
        """The callback-API connection the channel belongs to."""
        return self.callback_channel.connection

    @property
    def is_open(self) -> bool:
        """True while the channel is open."""
        return self.callback_channel.is_open

    @property
    def is_closing(self) -> bool:
        """True while the channel is closing."""
        return self.callback_channel.is_closing

    @property
    def is_closed(self) -> bool:
        """True once the channel is closed."""
        return self.callback_channel.is_closed

    @property
    def consumer_tags(self) -> list[str]:
        """The consumer tags active on this channel."""
        return self.callback_channel.consumer_tags

    @property
    def publisher_confirms(self) -> bool:
        """True once :meth:`confirm_delivery` was called."""
        return self._confirms is not None

    # ------------------------------------------------------------ callbacks

    def add_on_close_callback(
        self, callback: Callable[[TwistedChannel, BaseException], None]
    ) -> None:
        """``callback(twisted_channel, reason)`` when the channel closes."""
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        self._close_callbacks.append(callback)

    def add_on_return_callback(self, callback: Callable[[ReceivedMessage], None]) -> None:
        """``callback(message)`` for every message the broker returns (``Basic.Return``).

        ``message`` is a :class:`ReceivedMessage` (``channel`` is this TwistedChannel).
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        self._return_callbacks.append(callback)

    # ------------------------------------------------------------ publishing

    def basic_publish(
        self, exchange: str, routing_key: str, body: bytes | str,
        properties: spec.BasicProperties | None = None, mandatory: bool = False,
    ) -> Deferred[Any]:
        """Publish a message.

        :returns: without confirms, a Deferred already fired with None; with confirms
            (:meth:`confirm_delivery`), a Deferred firing with the ``Basic.Ack`` method
            when the broker confirms, errbacking with ``NackError`` (nacked),
            ``UnroutableError`` (``mandatory`` and returned) or the close reason
        """
        if self._failure is not None:
            return fail(self._failure)
        try:
            self._publish(exchange, routing_key, body, properties, mandatory)
        except Exception:
            return fail()
        confirms = self._confirms
        if confirms is None:
            return succeed(None)
        return confirms.track(exchange, routing_key, body, mandatory)

    def confirm_delivery(self) -> Deferred[Any]:
        """Turn on publisher confirms; fires with the ``frame.Method`` of Confirm.SelectOk.

        From then on :meth:`basic_publish` returns a Deferred that fires when the
        broker confirms.  A second call fires with None at once.
        """
        if self._confirms is not None:
            LOGGER.error("confirm_delivery: confirmation was already enabled on %r", self)
            return succeed(None)
        confirms = _Confirms()
        deferred = self._call_deferred(
            "confirm_delivery", _CONFIRM_SELECT, (confirms.on_ack_nack,), {}
        )
        if not deferred.called:
            self._confirms = confirms  # the broker counts delivery tags from the Select on
        return deferred

    def _on_returned(self, _channel: Any, method: Any, properties: Any, body: bytes) -> None:
        message = ReceivedMessage(self, method, properties, body)
        if self._confirms is not None:
            self._confirms.returned.append(message)
        elif not self._return_callbacks:
            LOGGER.warning(
                "Message returned by the broker (%s %s) on %r: turn on confirm_delivery() to "
                "have basic_publish errback with UnroutableError, or add_on_return_callback()",
                method.reply_code, method.reply_text, self,
            )
        for callback in list(self._return_callbacks):
            try:
                callback(message)
            except Exception:
                LOGGER.exception("Return callback %r raised", callback)

    # ------------------------------------------------------------ consuming

    def basic_consume(
        self, queue: str, auto_ack: bool = False, exclusive: bool = False,
        consumer_tag: str | None = None, arguments: Mapping[str, Any] | None = None,
    ) -> Deferred[Any]:
        """Start a consumer.

        :returns: a Deferred firing with ``(queue_object, consumer_tag)`` once the broker
            confirms (Basic.ConsumeOk); ``queue_object`` is a
            :class:`ClosableDeferredQueue` whose ``get()`` gives
            :class:`ReceivedMessage` objects; it is closed with ``ConsumerCancelled``
            when the consumer is cancelled, or with the close reason of the channel
        """
        if self._failure is not None:
            return fail(self._failure)
        queue_object = ClosableDeferredQueue()
        deferred = self._new_deferred()
        channel = self.callback_channel
        put_soon = queue_object.put_soon
        call_soon = self._call_soon

        def on_message(_channel: Any, method: Any, properties: Any, body: bytes) -> None:
            if queue_object.closed is None:
                put_soon(_new_message(ReceivedMessage, (self, method, properties, body)),
                         call_soon)
            elif not auto_ack and channel.is_open:  # closed by the application: give it back
                channel.basic_reject(method.delivery_tag, requeue=True)

        def on_consume_ok(method_frame: Any) -> None:
            tag = method_frame.method.consumer_tag
            if not self._settle(deferred, (queue_object, tag)) and channel.is_open:
                self.basic_cancel(tag)  # nobody waits for this consumer any more

        try:
            tag = channel.basic_consume(
                queue, on_message, auto_ack=auto_ack, exclusive=exclusive,
                consumer_tag=consumer_tag, arguments=arguments, callback=on_consume_ok,
            )
        except Exception:
            self._pending.discard(deferred)
            return fail()
        self._consumers[tag] = _Consumer(queue_object, bool(auto_ack))
        return deferred

    def basic_cancel(self, consumer_tag: str = "") -> Deferred[Any]:
        """Cancel a consumer; fires with the ``frame.Method`` of Basic.CancelOk.

        Its queue object is closed with ``ConsumerCancelled``; messages it held
        unread are rejected back to the queue (unless ``auto_ack``).  A tag that is
        not consuming (any more) fires with None.
        """
        if self._failure is not None:
            return fail(self._failure)
        if not isinstance(consumer_tag, str):
            return fail(TypeError(
                f"consumer_tag must be a str, not {type(consumer_tag).__name__}"
            ))
        if consumer_tag not in self.callback_channel.consumer_tags:
            self._end_consumer(consumer_tag, requeue_pending=True)
            return succeed(None)
        return self._call_deferred("basic_cancel", _CANCEL, (consumer_tag,), {})

    def _on_broker_cancel(self, method_frame: Any) -> None:
        self._end_consumer(method_frame.method.consumer_tag, requeue_pending=False)

    def _end_consumer(self, consumer_tag: str, requeue_pending: bool) -> None:
        consumer = self._consumers.pop(consumer_tag, None)
        if consumer is None:
            return
        queue = consumer.queue
        channel = self.callback_channel
        if requeue_pending and not consumer.auto_ack and channel.is_open:
            for message in queue.drain():
                channel.basic_reject(message.method.delivery_tag, requeue=True)
        if queue.closed is None:
            queue.close(ConsumerCancelled(f"consumer {consumer_tag!r} was cancelled"))

    def basic_get(self, queue: str, auto_ack: bool = False) -> Deferred[Any]:
        """Fetch one message from ``queue``.

        :returns: a Deferred firing with a :class:`ReceivedMessage`, or None when the
            queue is empty
        :raises DuplicateGetOkCallback: a previous ``basic_get`` is still waiting
        """
        if self._get_deferred is not None:
            raise DuplicateGetOkCallback()
        if self._failure is not None:
            return fail(self._failure)
        deferred = self._new_deferred()
        channel = self.callback_channel

        def on_message(_channel: Any, method: Any, properties: Any, body: bytes) -> None:
            self._get_deferred = None
            message = ReceivedMessage(self, method, properties, body)
            if not self._settle(deferred, message) and not auto_ack and channel.is_open:
                channel.basic_reject(method.delivery_tag, requeue=True)  # the caller gave up

        try:
            channel.basic_get(queue, on_message, auto_ack=auto_ack)
        except Exception:
            self._pending.discard(deferred)
            return fail()
        self._get_deferred = deferred
        return deferred

    def _on_get_empty(self, _method_frame: Any) -> None:
        deferred, self._get_deferred = self._get_deferred, None
        if deferred is not None:
            # Fired on the next reactor turn: the callback channel calls GetEmpty listeners
            # before it forgets its own get callback, and a Deferred's callbacks run at once
            # (an awaiting coroutine calling basic_get again would see DuplicateGetOkCallback).
            connection: Any = self.callback_channel.connection
            connection.event_loop.call_soon(lambda: self._settle(deferred, None))

    def callback_deferred(self, deferred: Deferred[Any], replies: list[Any]) -> None:
        """Fire ``deferred`` with the ``frame.Method`` of the first of ``replies`` to arrive.

        :param deferred: the Deferred to fire
        :param replies: ``spec`` method classes (or ``(class, {"attribute": value})`` pairs)
        """
        self.callback_channel.add_callback(deferred.callback, replies)

    # ------------------------------------------------------------ closing

    def close(self, reply_code: int = 0, reply_text: str = "Normal shutdown") -> Deferred[Any]:
        """Close the channel; the Deferred fires with the close reason once it is closed.

        :raises ChannelWrongStateError: it is closing or closed already (as in pika)
        """
        self.callback_channel.close(reply_code, reply_text)
        waiter: Deferred[Any] = Deferred()
        self._close_waiters.append(waiter)
        return waiter

    def _on_channel_closed(self, _channel: Any, reason: BaseException) -> None:
        self._failure = reason
        self._get_deferred = None
        self._fail_pending(reason)
        if self._confirms is not None:
            self._confirms.fail_all(reason)
        consumers, self._consumers = self._consumers, {}
        for consumer in consumers.values():
            if consumer.queue.closed is None:
                consumer.queue.close(reason)
        for callback in list(self._close_callbacks):
            try:
                callback(self, reason)
            except Exception:
                LOGGER.exception("Close callback %r raised", callback)
        if not self.on_closed.called:
            self.on_closed.callback(reason)
        waiters, self._close_waiters = self._close_waiters, []
        for waiter in waiters:
            waiter.callback(reason)


install(TwistedChannel, CHANNEL_DEFERREDS, Channel)
