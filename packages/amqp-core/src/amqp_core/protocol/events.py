"""Events the protocol core hands to its driver.

Theory of operation: :meth:`amqp_core.protocol.Connection.next_event` returns
one of these (or :data:`NEED_DATA`).  They are frozen, slotted, keyword-only
dataclasses: cheap to build on the delivery hot path, impossible to mutate by
accident.  Methods and properties inside them are the ``amqp_core.spec``
objects a pika user already knows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from .. import spec


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by ``next_event()`` when the buffered bytes hold no complete event.
NEED_DATA: Final = _NeedData()


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened(Event):
    """The handshake completed (Connection.OpenOk received)."""

    server_properties: dict[str, Any]
    channel_max: int
    frame_max: int
    heartbeat: int
    known_hosts: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionBlocked(Event):
    """The broker blocked publishing (resource alarm)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionUnblocked(Event):
    """The broker lifted its block."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateSecretOk(Event):
    """The broker accepted a new secret."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """The connection closed cleanly: terminal.

    ``by_peer`` is True when the broker sent Connection.Close (the core already
    answered with Close-Ok) and False when our own Close was acknowledged.
    """

    reply_code: int
    reply_text: str
    by_peer: bool
    class_id: int = 0
    method_id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionFailed(Event):
    """The connection ended without a clean close: terminal.

    ``error`` is the user-facing exception (StreamLostError,
    AMQPHeartbeatTimeout, ProbableAuthenticationError ...).
    """

    error: Exception


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelOpened(Event):
    """Channel.OpenOk arrived."""

    channel_number: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelClosed(Event):
    """The channel closed: by the broker (``by_peer``) or by our acknowledged close.

    Pending synchronous requests on the channel will never be answered.
    """

    channel_number: int
    reply_code: int
    reply_text: str
    by_peer: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RpcReply(Event):
    """The reply to the oldest outstanding synchronous request on a channel.

    ``properties``/``body`` are set for Basic.GetOk only.
    """

    channel_number: int
    request: Any
    method: Any
    properties: spec.BasicProperties | None = None
    body: bytes | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodReceived(Event):
    """A method the broker sent on its own.

    Basic.Ack/Nack (publisher confirms), Basic.Cancel, Channel.Flow.
    """

    channel_number: int
    method: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery(Event):
    """A message for a consumer (Basic.Deliver with its properties and body)."""

    channel_number: int
    method: spec.Basic.Deliver
    properties: spec.BasicProperties
    body: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Returned(Event):
    """A mandatory message the broker could not route (Basic.Return)."""

    channel_number: int
    method: spec.Basic.Return
    properties: spec.BasicProperties
    body: bytes
