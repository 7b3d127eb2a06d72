"""Publisher confirms for the async/await API: one future per delivery tag.

Theory of operation
-------------------
Once ``Confirm.Select`` is sent, the broker numbers every publish on the
channel 1, 2, 3 ... and answers each with Basic.Ack or Basic.Nack, possibly
several at once (``multiple``: every tag up to this one).  A
:class:`ConfirmTracker` mirrors the numbering: :meth:`ConfirmTracker.track`
gives each publish the next tag and a future, kept in a dict (tag -> record)
plus a deque of tags in publish order, so a ``multiple`` ack pops from the
front and a single ack pops one entry (and trims settled tags off the front,
keeping the deque as short as the window of unconfirmed publishes).

A Basic.Return carries no delivery tag.  RabbitMQ sends it just before the
ack of the same message, so returns wait in a queue and the next ack assigns
each one to the first publish it settles that was ``mandatory`` with the same
exchange, routing key and body; that publish fails with
:class:`~amqp_core.exceptions.UnroutableError`.  Nacked publishes fail with
:class:`~amqp_core.exceptions.NackError`.  A future whose publisher was
cancelled is skipped: the confirm is discarded.

No per-message cost beyond one future, one small record and one dict entry;
nothing here writes to the network.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from amqp_core import spec
from amqp_core.exceptions import NackError, UnroutableError

__all__ = ["ConfirmTracker", "ReturnedMessage"]


class ReturnedMessage:
    """A published message the broker returned (Basic.Return) or nacked (Basic.Nack).

    Held by :class:`~amqp_core.exceptions.UnroutableError` and
    :class:`~amqp_core.exceptions.NackError` in their ``messages``.

    :param method: ``spec.Basic.Return`` or ``spec.Basic.Nack``
    :param properties: the message's properties
    :param body: its body
    """

    __slots__ = ("body", "method", "properties")

    def __init__(self, method: Any, properties: spec.BasicProperties | None, body: Any) -> None:
        self.method = method
        self.properties = properties
        self.body = body

    def __repr__(self) -> str:
        return f"<ReturnedMessage {type(self.method).__name__} body={self.body!r:.60}>"


class _Publish:
    """One publish awaiting its confirm (references to what was published, no copies)."""

    __slots__ = ("body", "exchange", "future", "mandatory", "properties", "routing_key")

    def __init__(self, future: asyncio.Future[None], exchange: str, routing_key: str,
                 body: Any, properties: spec.BasicProperties | None, mandatory: bool) -> None:
        self.future = future
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = body
        self.properties = properties
        self.mandatory = mandatory

    def matches(self, returned: ReturnedMessage) -> bool:
        method = returned.method
        if not self.mandatory or method.exchange != self.exchange:
            return False
        if method.routing_key != self.routing_key:
            return False
        body = self.body.encode() if isinstance(self.body, str) else self.body
        return bool(body == returned.body)


class ConfirmTracker:
    """The unconfirmed publishes of one channel in confirm mode.

    :param loop: the loop futures are made on
    """

    __slots__ = ("_loop", "_next_tag", "_order", "_returned", "_unconfirmed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._next_tag = 1
        self._unconfirmed: dict[int, _Publish] = {}
        self._order: deque[int] = deque()
        self._returned: deque[ReturnedMessage] = deque()

    def __len__(self) -> int:
        return len(self._unconfirmed)

    def track(
        self, exchange: str, routing_key: str, body: Any,
        properties: spec.BasicProperties | None, mandatory: bool,
    ) -> asyncio.Future[None]:
        """Give the publish just made the next delivery tag; its future settles with the confirm."""
        tag = self._next_tag
        self._next_tag = tag + 1
        future: asyncio.Future[None] = self._loop.create_future()
        self._unconfirmed[tag] = _Publish(
            future, exchange, routing_key, body, properties, mandatory
        )
        self._order.append(tag)
        return future

    def on_returned(self, method: Any, properties: Any, body: bytes) -> None:
        """A Basic.Return: held until the ack of the same message arrives."""
        self._returned.append(ReturnedMessage(method, properties, body))

    def on_ack_nack(self, method_frame: Any) -> None:
        """A Basic.Ack or Basic.Nack from the broker (the channel's ``ack_nack_callback``)."""
        method = method_frame.method
        tag: int = method.delivery_tag
        unconfirmed = self._unconfirmed
        order = self._order
        batch: list[_Publish] = []
        if method.multiple:
            while order and order[0] <= tag:
                record = unconfirmed.pop(order.popleft(), None)
                if record is not None:
                    batch.append(record)
        else:
            record = unconfirmed.pop(tag, None)
            if record is not None:
                batch.append(record)
            while order and order[0] not in unconfirmed:
                order.popleft()
        returned: dict[int, ReturnedMessage] = {}
        if self._returned:
            self._match_returns(batch, returned)
        nack = type(method) is spec.Basic.Nack
        for index, record in enumerate(batch):
            future = record.future
            if future.done():
                continue  # the publisher gave up (cancelled): discard
            message = returned.get(index)
            if message is not None:
                future.set_exception(UnroutableError([message]))
            elif nack:
                future.set_exception(
                    NackError([ReturnedMessage(method, record.properties, record.body)])
                )
            else:
                future.set_result(None)

    def _match_returns(self, batch: list[_Publish], returned: dict[int, ReturnedMessage]) -> None:
        leftover: deque[ReturnedMessage] = deque()
        for message in self._returned:
            for index, record in enumerate(batch):
                if index not in returned and record.matches(message):
                    returned[index] = message
                    break
            else:
                leftover.append(message)
        self._returned = leftover

    def fail_all(self, error: BaseException) -> None:
        """The channel closed: every unconfirmed publish fails with ``error``."""
        unconfirmed, self._unconfirmed = self._unconfirmed, {}
        self._order.clear()
        self._returned.clear()
        for record in unconfirmed.values():
            if not record.future.done():
                record.future.set_exception(error)
