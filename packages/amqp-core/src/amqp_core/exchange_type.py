"""The exchange types every RabbitMQ broker provides.

Theory of operation: :class:`ExchangeType` is a :class:`~enum.StrEnum`, so a
member compares equal to (and encodes exactly like) its plain string; any other
string (a plugin's exchange type such as ``"x-delayed-message"``) can be passed
wherever an exchange type is accepted.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ExchangeType"]


class ExchangeType(StrEnum):
    """Built-in exchange types, equal to their wire names."""

    direct = "direct"
    fanout = "fanout"
    headers = "headers"
    topic = "topic"
