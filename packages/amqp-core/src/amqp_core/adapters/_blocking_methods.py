"""The synchronous AMQP methods of ``BlockingChannel``: declare, bind, delete, get, qos, tx ...

Theory of operation: each method validates its arguments (``TypeError`` /
``ValueError`` naming the parameter, before anything is sent), builds the
``spec`` method and hands it to ``_rpc``, which sends it through the protocol
core and waits for the reply.  The reply is returned the way pika returns it:
a ``frame.Method`` for declare/bind/delete/purge/tx, a bool for ``flow``, a
``(method, properties, body)`` triple for ``basic_get``, None for qos and
recover.  :class:`ChannelMethods` is a base class of ``BlockingChannel``,
which provides ``_rpc`` and ``_call``; the validators here serve both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import frame, spec
from ..exchange_type import ExchangeType
from ..protocol.arguments import require_flag

if TYPE_CHECKING:
    from ..protocol import events as ev

__all__ = ["ChannelMethods", "require_arguments", "require_callable", "require_flag",
           "require_str", "require_timeout"]


def require_str(value: Any, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")


def require_callable(value: Any, name: str = "callback") -> None:
    if not callable(value):
        raise TypeError(f"{name} must be callable, not {type(value).__name__}")


def require_arguments(arguments: Any) -> dict[str, Any]:
    if arguments is None:
        return {}
    if not isinstance(arguments, Mapping):
        raise TypeError(f"arguments must be a dict or None, not {type(arguments).__name__}")
    return dict(arguments)


def require_timeout(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number or None, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


class ChannelMethods:
    """The request/reply methods of ``BlockingChannel`` (a base class; not used on its own)."""

    if TYPE_CHECKING:

        def _rpc(self, method: Any) -> ev.RpcReply: ...

        def _call(self, method: Any) -> frame.Method: ...

    # ------------------------------------------------------------ get, qos, recover

    def basic_get(
        self, queue: str, auto_ack: bool = False
    ) -> tuple[Any, spec.BasicProperties | None, bytes | None]:
        """Fetch one message.

        :returns: ``(spec.Basic.GetOk, properties, body)``, or
            ``(None, None, None)`` when the queue is empty
        """
        require_str(queue, "queue")
        require_flag(auto_ack, "auto_ack")
        reply = self._rpc(spec.Basic.Get(queue=queue, no_ack=bool(auto_ack)))
        if reply.method.INDEX == spec.Basic.GetOk.INDEX:
            return reply.method, reply.properties, reply.body
        return None, None, None

    def basic_qos(self, prefetch_size: int = 0, prefetch_count: int = 0,
                  global_qos: bool = False) -> None:
        """Set the prefetch window (of this channel, or of the connection with ``global_qos``)."""
        for name, value, limit in (
            ("prefetch_size", prefetch_size, 2**32 - 1), ("prefetch_count", prefetch_count, 65535)
        ):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be int, not {type(value).__name__}")
            if not 0 <= value <= limit:
                raise ValueError(f"{name} must be within 0..{limit}, got {value}")
        require_flag(global_qos, "global_qos")
        self._rpc(spec.Basic.Qos(prefetch_size=prefetch_size, prefetch_count=prefetch_count,
                                 global_qos=bool(global_qos)))

    def basic_recover(self, requeue: bool = False) -> None:
        """Ask the broker to redeliver every unacknowledged message of this channel."""
        require_flag(requeue, "requeue")
        self._rpc(spec.Basic.Recover(requeue=bool(requeue)))

    # ------------------------------------------------------------ exchanges

    def exchange_declare(
        self, exchange: str, exchange_type: str | ExchangeType = ExchangeType.direct,
        passive: bool = False, durable: bool = False, auto_delete: bool = False,
        internal: bool = False, arguments: Mapping[str, Any] | None = None,
    ) -> frame.Method:
        """Declare an exchange.

        :returns: ``frame.Method`` whose ``method`` is ``spec.Exchange.DeclareOk``
        """
        require_str(exchange, "exchange")
        if isinstance(exchange_type, ExchangeType):
            exchange_type = exchange_type.value
        require_str(exchange_type, "exchange_type")
        return self._call(spec.Exchange.Declare(
            # the flags as given: the core refuses a non-bool one, naming it
            exchange=exchange, type=exchange_type, passive=passive, durable=durable,
            auto_delete=auto_delete, internal=internal,
            arguments=require_arguments(arguments),
        ))

    def exchange_delete(self, exchange: str | None = None, if_unused: bool = False) -> frame.Method:
        """Delete an exchange.

        :returns: ``frame.Method`` whose ``method`` is ``spec.Exchange.DeleteOk``
        """
        exchange = "" if exchange is None else exchange
        require_str(exchange, "exchange")
        return self._call(spec.Exchange.Delete(exchange=exchange, if_unused=if_unused))

    def exchange_bind(self, destination: str, source: str, routing_key: str = "",
                      arguments: Mapping[str, Any] | None = None) -> frame.Method:
        """Bind exchange ``destination`` to exchange ``source``.

        :returns: ``frame.Method`` whose ``method`` is ``spec.Exchange.BindOk``
        """
        require_str(destination, "destination")
        require_str(source, "source")
        require_str(routing_key, "routing_key")
        return self._call(spec.Exchange.Bind(
            destination=destination, source=source, routing_key=routing_key,
            arguments=require_arguments(arguments),
        ))

    def exchange_unbind(self, destination: str | None = None, source: str | None = None,
                        routing_key: str = "",
                        arguments: Mapping[str, Any] | None = None) -> frame.Method:
        """Remove an exchange-to-exchange binding.

        :returns: ``frame.Method`` whose ``method`` is ``spec.Exchange.UnbindOk``
        """
        destination = "" if destination is None else destination
        source = "" if source is None else source
        require_str(destination, "destination")
        require_str(source, "source")
        require_str(routing_key, "routing_key")
        return self._call(spec.Exchange.Unbind(
            destination=destination, source=source, routing_key=routing_key,
            arguments=require_arguments(arguments),
        ))

    # ------------------------------------------------------------ queues

    def queue_declare(
        self, queue: str, passive: bool = False, durable: bool = False,
        exclusive: bool = False, auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> frame.Method:
        """Declare a queue (``""``: the broker names it; read ``result.method.queue``).

        :returns: ``frame.Method`` whose ``method`` is ``spec.Queue.DeclareOk``
        """
        require_str(queue, "queue")
        return self._call(spec.Queue.Declare(
            queue=queue, passive=passive, durable=durable, exclusive=exclusive,
            auto_delete=auto_delete,
            arguments=require_arguments(arguments),
        ))

    def queue_delete(self, queue: str, if_unused: bool = False,
                     if_empty: bool = False) -> frame.Method:
        """Delete a queue.

        :returns: ``frame.Method`` whose ``method`` is ``spec.Queue.DeleteOk``
        """
        require_str(queue, "queue")
        return self._call(spec.Queue.Delete(queue=queue, if_unused=if_unused,
                                            if_empty=if_empty))

    def queue_purge(self, queue: str) -> frame.Method:
        """Remove every ready message from a queue.

        :returns: ``frame.Method`` whose ``method`` is ``spec.Queue.PurgeOk``
        """
        require_str(queue, "queue")
        return self._call(spec.Queue.Purge(queue=queue))

    def queue_bind(self, queue: str, exchange: str, routing_key: str | None = None,
                   arguments: Mapping[str, Any] | None = None) -> frame.Method:
        """Bind a queue to an exchange (the routing key defaults to the queue name).

        :returns: ``frame.Method`` whose ``method`` is ``spec.Queue.BindOk``
        """
        require_str(queue, "queue")
        require_str(exchange, "exchange")
        routing_key = queue if routing_key is None else routing_key
        require_str(routing_key, "routing_key")
        return self._call(spec.Queue.Bind(
            queue=queue, exchange=exchange, routing_key=routing_key,
            arguments=require_arguments(arguments),
        ))

    def queue_unbind(self, queue: str, exchange: str | None = None,
                     routing_key: str | None = None,
                     arguments: Mapping[str, Any] | None = None) -> frame.Method:
        """Remove a queue binding (the routing key defaults to the queue name).

        :returns: ``frame.Method`` whose ``method`` is ``spec.Queue.UnbindOk``
        """
        require_str(queue, "queue")
        exchange = "" if exchange is None else exchange
        require_str(exchange, "exchange")
        routing_key = queue if routing_key is None else routing_key
        require_str(routing_key, "routing_key")
        return self._call(spec.Queue.Unbind(
            queue=queue, exchange=exchange, routing_key=routing_key,
            arguments=require_arguments(arguments),
        ))

    # ------------------------------------------------------------ flow, tx

    def flow(self, active: bool) -> bool:
        """Ask the broker to pause (False) or resume (True) deliveries on this channel.

        :returns: the ``active`` flag of the broker's Channel.FlowOk
        """
        if not isinstance(active, bool):
            raise TypeError(f"active must be bool, not {type(active).__name__}")
        return bool(self._rpc(spec.Channel.Flow(active=active)).method.active)

    def tx_select(self) -> frame.Method:
        """Put the channel in transaction mode.

        :returns: ``frame.Method`` whose ``method`` is ``spec.Tx.SelectOk``
        """
        return self._call(spec.Tx.Select())

    def tx_commit(self) -> frame.Method:
        """Commit the current transaction.

        :returns: ``frame.Method`` whose ``method`` is ``spec.Tx.CommitOk``
        """
        return self._call(spec.Tx.Commit())

    def tx_rollback(self) -> frame.Method:
        """Roll the current transaction back.

        :returns: ``frame.Method`` whose ``method`` is ``spec.Tx.RollbackOk``
        """
        return self._call(spec.Tx.Rollback())
