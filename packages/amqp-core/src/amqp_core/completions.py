"""Which callback-API channel methods complete through one reply callback.

Theory of operation: adapters that offer another completion style on top of
:class:`amqp_core.channel.Channel` (awaitables for asyncio, Deferreds for
Twisted) wrap most channel methods the same way: pass a one-shot callback as
the method's ``callback`` keyword argument and complete with the one value it
receives (the reply's ``frame.Method``; for ``flow`` the bool the broker
agreed to).  :data:`REPLY_CALLBACK_METHODS` names those methods once, so every
adapter derives its table from the same list.  ``basic_get`` (its callback
receives a message), ``confirm_delivery`` (its confirms go to another
callback), ``basic_cancel`` and ``close`` (whose adapted forms also settle the
consumer's or channel's state) are not in it: adapters write those by hand.
An adapter that gives one of the listed methods a richer result (Twisted's
``basic_consume`` returns a queue) leaves it out of its own table and writes
that method by hand too.
"""

from __future__ import annotations

from typing import Final

__all__ = ["REPLY_CALLBACK", "REPLY_CALLBACK_METHODS"]

#: The keyword argument that carries the completion callback of the methods below.
REPLY_CALLBACK: Final = "callback"

#: :class:`~amqp_core.channel.Channel` methods that complete by calling ``callback`` once,
#: with the broker's reply as its one argument.
REPLY_CALLBACK_METHODS: Final[tuple[str, ...]] = (
    "basic_consume", "basic_qos", "basic_recover",
    "exchange_bind", "exchange_declare", "exchange_delete", "exchange_unbind",
    "queue_bind", "queue_declare", "queue_delete", "queue_purge", "queue_unbind",
    "flow", "tx_commit", "tx_rollback", "tx_select",
)
