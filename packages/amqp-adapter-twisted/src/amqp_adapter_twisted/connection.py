"""``TwistedConnection``: pika's callback API on a Twisted reactor (the plugin's connection class).

Theory of operation: the connection is amqp_core's one callback connection
(:class:`amqp_core.adapters.base_connection.BaseConnection`) bound to a reactor
through :class:`~amqp_adapter_twisted._loop.TwistedEventLoop`: it resolves,
connects (``reactor.connectTCP``; TLS from the parameters' ``ssl_options``),
retries over ``connection_attempts`` and times out like every other adapter.
It is what ``amqp_core.plugins.get_connection_class("twisted")`` returns, so
the cross-adapter suite runs on it.

pika's Twisted API (a ``Protocol`` that Twisted connects, with Deferreds) is
:class:`~amqp_adapter_twisted.TwistedProtocolConnection`; wrap any channel of
this connection in :class:`~amqp_adapter_twisted.TwistedChannel` to get the
Deferred API on it.

The connection must be created and used on the reactor's thread (or before
the reactor runs); only :meth:`add_callback_threadsafe` (``callFromThread``)
may be called from others.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from amqp_core.adapters.base_connection import BaseConnection
from amqp_core.io.contract import EventLoop
from amqp_core.parameters import Parameters

from ._loop import TwistedEventLoop, default_reactor, require_reactor

__all__ = ["TwistedConnection"]


class TwistedConnection(BaseConnection):
    """An asynchronous connection on a Twisted reactor, with pika's callback API.

    Same constructor as pika's other asynchronous connections.

    :param parameters: connection parameters (defaults when None)
    :param on_open_callback: ``callback(connection)`` once open
    :param on_open_error_callback: ``callback(connection, exception)`` when opening fails
    :param on_close_callback: ``callback(connection, exception)`` once closed
    :param custom_ioloop: the reactor to run on (the global reactor when None), or a
        :class:`~amqp_adapter_twisted.TwistedEventLoop`
    :param internal_connection_workflow: connect by itself (True) or wait for
        :meth:`create_connection` (False)
    :raises TypeError: ``custom_ioloop`` is not a reactor
    """

    def __init__(
        self,
        parameters: Parameters | None = None,
        on_open_callback: Callable[[Any], None] | None = None,
        on_open_error_callback: Callable[[Any, BaseException], None] | None = None,
        on_close_callback: Callable[[Any, BaseException], None] | None = None,
        custom_ioloop: Any = None,
        internal_connection_workflow: bool = True,
    ) -> None:
        super().__init__(
            parameters, on_open_callback, on_open_error_callback, on_close_callback,
            custom_ioloop, internal_connection_workflow,
        )

    @classmethod
    def _create_event_loop(cls, custom_ioloop: Any) -> tuple[Any, EventLoop]:
        if isinstance(custom_ioloop, TwistedEventLoop):
            return custom_ioloop.reactor, custom_ioloop
        reactor = default_reactor() if custom_ioloop is None else require_reactor(
            custom_ioloop, "custom_ioloop"
        )
        return reactor, TwistedEventLoop(reactor)

    @property
    def ioloop(self) -> Any:
        """The reactor the connection runs on."""
        return self._native_loop
