"""Messages and ``async for`` consumers for the async/await API.

Theory of operation
-------------------
A :class:`Consumer` is the handle ``AsyncChannel.consume(queue)`` returns.  It
starts the broker-side consumer (``basic_consume`` on the callback channel) on
first use: ``async with``, ``await consumer.start()`` or the first
``__anext__``.  Deliveries arrive in the channel's ``on_message_callback``
(the hot path: one :class:`Message` built, then either handed to a waiting
``__anext__`` or appended to a deque).  The deque is bounded by the broker:
it holds at most the channel's prefetch window (``basic_qos``) of unacked
messages, so set a prefetch count when consuming faster producers.

Ending: ``await consumer.cancel()`` (or leaving ``async with``) cancels the
broker-side consumer and waits for Basic.CancelOk; buffered, unacknowledged
messages are rejected with ``requeue=True`` so another consumer gets them.  A
consumer abandoned by ``break`` out of a bare ``async for`` is garbage
collected; a finalizer then schedules the same cancel on the loop.  When the
broker cancels the consumer (its queue was deleted) iteration drains the
buffer and raises :class:`~amqp_core.exceptions.ConsumerCancelled`; when the
channel closes it raises the channel's close reason (after draining, for
``auto_ack`` consumers whose messages need no ack).

Cancelling a task waiting in ``__anext__`` only stops that wait: the consumer
and its buffer stay, so ``asyncio.wait_for(consumer.__anext__(), t)`` works as
an inactivity timeout.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from amqp_core import spec
from amqp_core.exceptions import ConsumerCancelled

if TYPE_CHECKING:
    from .aio import AsyncChannel

__all__ = ["Consumer", "Message"]

LOGGER = logging.getLogger(__name__)


class Message:
    """A delivered message (from a consumer or ``basic_get``).

    :param channel: the :class:`~amqp_adapter_asyncio.aio.AsyncChannel` it arrived on
    :param method: ``spec.Basic.Deliver`` or ``spec.Basic.GetOk``
    :param properties: the message properties
    :param body: the body
    """

    __slots__ = ("body", "channel", "method", "properties", "settled")

    def __init__(
        self, channel: AsyncChannel, method: Any, properties: spec.BasicProperties, body: bytes
    ) -> None:
        self.channel = channel
        self.method = method
        self.properties = properties
        self.body = body
        #: True once acked, nacked or rejected through this object (or delivered with auto_ack)
        self.settled = False

    def __repr__(self) -> str:
        return (
            f"<Message delivery_tag={self.method.delivery_tag} "
            f"routing_key={self.method.routing_key!r} body={self.body[:40]!r}>"
        )

    @property
    def delivery_tag(self) -> int:
        """The delivery tag (to ack with)."""
        tag: int = self.method.delivery_tag
        return tag

    @property
    def routing_key(self) -> str:
        """The routing key the message was published with."""
        key: str = self.method.routing_key
        return key

    @property
    def exchange(self) -> str:
        """The exchange the message was published to."""
        exchange: str = self.method.exchange
        return exchange

    @property
    def redelivered(self) -> bool:
        """True if the broker delivered it before."""
        return bool(self.method.redelivered)

    def ack(self, multiple: bool = False) -> None:
        """Acknowledge it (with ``multiple``: every unacked message up to it).

        Queues the Basic.Ack; it is written with the other frames of this loop turn.
        """
        self.channel.callback_channel.basic_ack(self.method.delivery_tag, multiple)
        self.settled = True

    def nack(self, multiple: bool = False, requeue: bool = True) -> None:
        """Negatively acknowledge it (requeued by default)."""
        self.channel.callback_channel.basic_nack(self.method.delivery_tag, multiple, requeue)
        self.settled = True

    def reject(self, requeue: bool = True) -> None:
        """Reject it (requeued by default)."""
        self.channel.callback_channel.basic_reject(self.method.delivery_tag, requeue)
        self.settled = True


class _ConsumerState:
    """What the channel's callbacks reach: the buffer and the waiter (not the user's handle)."""

    __slots__ = (
        "auto_ack", "buffer", "channel", "ended", "error", "loop", "started", "tag", "waiter",
    )

    def __init__(self, channel: AsyncChannel, auto_ack: bool) -> None:
        self.channel = channel
        self.loop = channel.connection.ioloop
        self.auto_ack = auto_ack
        self.tag: str | None = None
        self.buffer: deque[Message] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.started = False
        self.ended = False  # no more deliveries will come
        self.error: BaseException | None = None  # raised once the buffer is drained

    def on_message(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        message = Message(self.channel, method, properties, body)
        if self.auto_ack:
            message.settled = True
        elif self.ended:
            # in flight while we cancel: nobody will take it, give it back at once
            channel.basic_reject(method.delivery_tag, requeue=True)
            return
        self.buffer.append(message)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def end(self, error: BaseException | None) -> None:
        """No more deliveries: iteration drains what is buffered, then stops or raises."""
        if self.ended:
            return
        self.ended = True
        self.error = error
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def on_channel_closed(self, error: BaseException) -> None:
        if not self.auto_ack:
            # their delivery tags died with the channel: they cannot be acked any more
            self.buffer.clear()
        self.end(error)

    def reject_buffered(self) -> None:
        """Give back what was delivered but never handed out (manual-ack consumers)."""
        if self.auto_ack:
            self.buffer.clear()
            return
        channel = self.channel.callback_channel
        connection = self.channel.connection.callback_connection
        while self.buffer:
            message = self.buffer.popleft()
            if channel.is_open and connection.is_open:
                channel.basic_reject(message.delivery_tag, requeue=True)

    def cancel_now(self) -> None:
        """Cancel without waiting (used when the handle is garbage collected)."""
        if self.ended or self.tag is None:
            return
        self.end(None)
        self.reject_buffered()
        self.channel._cancel_consumer_nowait(self.tag)


def _abandoned(state: _ConsumerState) -> None:
    """Finalizer of a :class:`Consumer`: cancel it on its loop, from whatever thread GC ran in."""
    if state.ended or state.tag is None:
        return
    try:
        state.loop.call_soon_threadsafe(state.cancel_now)
    except RuntimeError:  # the loop is closed: the connection is gone anyway
        pass


class Consumer:
    """An ``async for`` consumer on one queue (made by ``AsyncChannel.consume``).

    :param channel: the async channel
    :param queue: the queue to consume from
    :param auto_ack: the broker considers messages acked when sent
    :param exclusive: no other consumer may use the queue
    :param consumer_tag: the tag (generated when None)
    :param arguments: ``x-`` arguments of Basic.Consume
    """

    def __init__(
        self, channel: AsyncChannel, queue: str, auto_ack: bool = False,
        exclusive: bool = False, consumer_tag: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(queue, str):
            raise TypeError(f"queue must be a str, not {type(queue).__name__}")
        self.channel = channel
        self.queue = queue
        self._kwargs: dict[str, Any] = {
            "auto_ack": bool(auto_ack), "exclusive": bool(exclusive),
            "consumer_tag": consumer_tag, "arguments": arguments,
        }
        self._state = _ConsumerState(channel, bool(auto_ack))
        self._starting: asyncio.Future[Any] | None = None

    def __repr__(self) -> str:
        return f"<Consumer queue={self.queue!r} tag={self._state.tag!r}>"

    @property
    def consumer_tag(self) -> str | None:
        """The consumer tag (None until started)."""
        return self._state.tag

    @property
    def is_active(self) -> bool:
        """True from start until cancelled (by either side) or the channel closed."""
        return self._state.started and not self._state.ended

    async def start(self) -> str:
        """Start consuming (Basic.Consume) and wait for Basic.ConsumeOk; idempotent.

        :returns: the consumer tag
        """
        state = self._state
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start(), loop=state.loop)
        await asyncio.shield(self._starting)
        assert state.tag is not None
        return state.tag

    async def _start(self) -> None:
        state = self._state
        state.tag, consume_ok = self.channel._start_consumer(self.queue, state, self._kwargs)
        finalizer = weakref.finalize(self, _abandoned, state)
        finalizer.atexit = False
        await consume_ok
        state.started = True

    async def cancel(self) -> None:
        """Cancel the consumer and wait for Basic.CancelOk; buffered messages are requeued.

        Idempotent; a no-op once the channel is closed.
        """
        state = self._state
        if self._starting is not None and not self._starting.done():
            try:
                await asyncio.shield(self._starting)
            except Exception:
                return
        if state.tag is None or state.ended:
            state.ended = True
            return
        state.end(None)
        state.reject_buffered()
        await self.channel.basic_cancel(state.tag)

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.channel.callback_channel.is_open:
            await self.cancel()

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Message:
        state = self._state
        if not state.started:
            await self.start()
        while True:
            if state.buffer:
                return state.buffer.popleft()
            if state.ended:
                if state.error is not None:
                    raise state.error
                raise StopAsyncIteration
            waiter = state.waiter
            if waiter is None or waiter.done():
                waiter = state.waiter = state.loop.create_future()
            await waiter


def broker_cancelled(state: _ConsumerState, method_frame: Any) -> None:
    """The broker cancelled this consumer (Basic.Cancel): iteration raises once drained."""
    state.end(ConsumerCancelled(f"consumer {state.tag!r} cancelled by the broker"))
