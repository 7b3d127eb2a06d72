"""AMQP ``delivery-mode`` values for :class:`amqp_core.spec.BasicProperties`.

Theory of operation: the wire carries an octet (1 transient, 2 persistent).
:class:`DeliveryMode` is an :class:`~enum.IntEnum`, so a member can be passed
anywhere an ``int`` is expected; ``BasicProperties`` stores the plain ``int``.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["DeliveryMode"]


class DeliveryMode(IntEnum):
    """Whether the broker keeps a message on disk.

    ``Transient`` (1) messages live in memory only; ``Persistent`` (2) messages
    published to a durable queue survive a broker restart.
    """

    Transient = 1
    Persistent = 2
