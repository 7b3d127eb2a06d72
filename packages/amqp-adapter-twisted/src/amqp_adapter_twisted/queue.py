"""``ClosableDeferredQueue`` and ``ReceivedMessage``: what a Deferred consumer reads.

Theory of operation: a consumer started with ``TwistedChannel.basic_consume``
puts one :class:`ReceivedMessage` per delivery into its
:class:`ClosableDeferredQueue`; the application takes them with ``get()`` (a
Deferred, so ``msg = await queue.get()`` works in ``async def`` code run with
``ensureDeferred``).  When the consumer ends (cancelled by either side, or its
channel closed) the queue is closed with the reason: every waiting ``get``
errbacks with it, and so do later ``get`` and ``put`` calls.

It is a ``twisted.internet.defer.DeferredQueue`` (``size`` and ``backlog``
behave the same), with ``pending`` and ``waiting`` held in deques so that a
long backlog costs O(1) per message (the base class pops lists from the front).

Deliveries come in through :meth:`ClosableDeferredQueue.put_soon`, not ``put``:
the first message of a reactor turn goes to the waiting ``get`` at once, the
others of that turn are queued, and one call on the next turn hands them to the
waiting ``get`` calls.  An ``async def`` consumer is thus resumed about twice
per read and takes the rest of the batch from fired Deferreds, instead of being
suspended and resumed through ``inlineCallbacks`` once per message; a lone
message (request/reply traffic) is not delayed.  Order is kept (a ``get``
made meanwhile queues behind the waiting ones), and ``close``/``drain`` first
hand the waiters what was promised to them.  ``put`` keeps Twisted's semantics
(a waiting ``get`` fires at once).  How much is buffered is bounded by the
broker: at most the channel's prefetch window (``basic_qos``) of unacknowledged
messages.  A channel that closes hands the waiters their messages before the
waiters errback (an ``ack`` of such a message then finds the channel closed).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple

from twisted.internet.defer import (
    Deferred,
    DeferredQueue,
    QueueOverflow,
    QueueUnderflow,
    fail,
    succeed,
)
from twisted.python.failure import Failure

from amqp_core import spec

__all__ = ["ClosableDeferredQueue", "ReceivedMessage"]

LOGGER = logging.getLogger(__name__)


class ReceivedMessage(NamedTuple):
    """A message from a consumer queue, ``basic_get`` or a return callback (pika's namedtuple).

    :param channel: the :class:`~amqp_adapter_twisted.TwistedChannel` it arrived on
    :param method: ``spec.Basic.Deliver``, ``spec.Basic.GetOk`` or ``spec.Basic.Return``
    :param properties: the message properties
    :param body: the body
    """

    channel: Any
    method: Any
    properties: spec.BasicProperties
    body: bytes


class ClosableDeferredQueue(DeferredQueue[Any]):
    """A ``DeferredQueue`` that can be closed with a reason.

    :param size: most objects held (``QueueOverflow`` beyond), None for no limit
    :param backlog: most waiting ``get`` calls (``QueueUnderflow`` beyond), None for no limit

    Attributes: ``closed`` (None, or the exception it was closed with),
    ``pending`` (objects not taken yet), ``waiting`` (Deferreds of ``get``
    calls not served yet).
    """

    def __init__(self, size: int | None = None, backlog: int | None = None) -> None:
        for name, value in (("size", size), ("backlog", backlog)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise TypeError(f"{name} must be an int or None, not {type(value).__name__}")
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        super().__init__(size, backlog)
        #: The reason the queue was closed, or None while it is open.
        self.closed: BaseException | Failure | None = None
        self.waiting: deque[Deferred[Any]] = deque()  # type: ignore[assignment]
        self.pending: deque[Any] = deque()  # type: ignore[assignment]
        self._wake_scheduled = False

    def __repr__(self) -> str:
        state = "open" if self.closed is None else f"closed ({self.closed!r})"
        return (
            f"<ClosableDeferredQueue {state} pending={len(self.pending)} "
            f"waiting={len(self.waiting)}>"
        )

    def put(self, obj: Any) -> Deferred[Any] | None:  # type: ignore[override]
        """Add ``obj``: the oldest waiting ``get`` fires with it, or it is kept.

        :returns: None, or a failed Deferred (the close reason) once the queue is closed
        :raises QueueOverflow: ``size`` objects are held already
        """
        if self.closed is not None:
            LOGGER.error("Cannot put to the queue: it is closed (%r)", self.closed)
            return fail(self.closed)
        waiting = self.waiting
        if waiting:
            waiting.popleft().callback(obj)
        elif self.size is None or len(self.pending) < self.size:
            self.pending.append(obj)
        else:
            raise QueueOverflow()
        return None

    def put_soon(self, obj: Any, call_soon: Callable[[Callable[[], None]], Any]) -> None:
        """Like :meth:`put`, but the waiters are served at most twice per loop turn.

        The consumer's path (what ``TwistedChannel.basic_consume`` uses): the first
        delivery of a turn goes to the waiting ``get`` at once (as with :meth:`put`:
        a lone message has no added latency) and opens a batch; the deliveries that
        follow in the same turn are queued, and one call on the next turn hands
        them to the waiting ``get`` calls, in order.  An ``async def`` consumer
        resumed by the first of them takes the others with ``get()`` without
        waiting (fired Deferreds), instead of being suspended and resumed through
        ``inlineCallbacks`` once per message.  Objects are never reordered: a
        ``get`` made meanwhile queues up behind the waiting ones.  Unlike
        :meth:`put`, ``size`` is not enforced (the consumer's prefetch bounds what
        is held).

        :param obj: the object (the queue must be open)
        :param call_soon: schedules a callable on the next loop turn
        """
        if self._wake_scheduled:  # a batch is open this turn: join it
            self.pending.append(obj)
            return
        waiting = self.waiting
        if not waiting:
            self.pending.append(obj)
            return
        # the first delivery of a turn: open a batch for the ones that may follow it
        self._wake_scheduled = True
        call_soon(self._serve_waiters)
        if self.pending:  # older objects first (not expected outside a batch)
            self.pending.append(obj)
        else:  # served at once, as put() would (no latency for a lone message)
            waiting.popleft().callback(obj)

    def _serve_waiters(self) -> None:
        self._wake_scheduled = False
        waiting = self.waiting
        pending = self.pending
        while waiting and pending:
            waiting.popleft().callback(pending.popleft())

    def get(self) -> Deferred[Any]:
        """A Deferred firing with the next object; it errbacks if the queue is (or gets) closed.

        :raises QueueUnderflow: ``backlog`` gets are waiting already
        """
        if self.closed is not None:
            return fail(self.closed)
        if self.pending and not self.waiting:  # else older gets are served first, in order
            return succeed(self.pending.popleft())
        if self.backlog is None or len(self.waiting) < self.backlog:
            deferred: Deferred[Any] = Deferred(canceller=self._cancelGet)
            self.waiting.append(deferred)
            return deferred
        raise QueueUnderflow()

    def close(self, reason: BaseException | Failure) -> None:
        """Close the queue: every waiting ``get`` errbacks with ``reason``, so will later calls.

        Objects not taken yet are dropped (use :meth:`drain` first to keep them).

        :param reason: the exception (or Failure) to errback with
        :raises TypeError: ``reason`` is not an exception
        """
        if not isinstance(reason, BaseException | Failure):
            raise TypeError(f"reason must be an exception, not {type(reason).__name__}")
        if self.closed is not None:
            LOGGER.debug("Queue was already closed with reason: %r", self.closed)
        if self._wake_scheduled:  # first hand over what put_soon already promised the waiters
            self._serve_waiters()
        self.closed = reason
        waiting = self.waiting
        while waiting:
            waiting.popleft().errback(reason)
        self.pending.clear()

    def drain(self) -> list[Any]:
        """Take every object held now (without waiting) that no waiting ``get`` is owed."""
        if self._wake_scheduled:
            self._serve_waiters()
        items = list(self.pending)
        self.pending.clear()
        return items
