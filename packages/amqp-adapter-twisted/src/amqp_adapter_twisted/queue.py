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
How much is buffered is bounded by the broker: at most the channel's prefetch
window (``basic_qos``) of unacknowledged messages.
"""

from __future__ import annotations

import logging
from collections import deque
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

    def get(self) -> Deferred[Any]:
        """A Deferred firing with the next object; it errbacks if the queue is (or gets) closed.

        :raises QueueUnderflow: ``backlog`` gets are waiting already
        """
        if self.closed is not None:
            return fail(self.closed)
        if self.pending:
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
        self.closed = reason
        waiting = self.waiting
        while waiting:
            waiting.popleft().errback(reason)
        self.pending.clear()

    def drain(self) -> list[Any]:
        """Take every object held now (without waiting)."""
        items = list(self.pending)
        self.pending.clear()
        return items
