"""``TornadoConnection``: pika's asynchronous connection on a tornado ``IOLoop``.

Theory of operation: the connection is amqp_core's one callback connection
(:class:`amqp_core.adapters.base_connection.BaseConnection`) bound to a
tornado IOLoop through :class:`~amqp_adapter_tornado._loop.TornadoEventLoop`;
this module only chooses the IOLoop.

``custom_ioloop`` is a tornado ``IOLoop`` (another connection's ``ioloop``
included, so many connections share one loop) or a ``TornadoEventLoop``.
Without one, the loop is what pika's ``IOLoop.instance()`` gives, reached
without tornado's or asyncio's deprecated paths: the IOLoop of the running
asyncio loop when there is one, else that of the thread's current asyncio
loop, else a new IOLoop made current for the thread (:func:`default_ioloop`).

The close callbacks run once the stream has ended (the driver waits for it,
at most a couple of seconds) and the socket is closed as they return, so an
IOLoop stopped from a close callback can be closed at once;
:meth:`TornadoConnection.wait_stream_closed` is there for coroutines that
close a connection and want to wait for the socket.

Create a connection on the IOLoop's thread, or before that loop runs; from
other threads, only :meth:`~TornadoConnection.add_callback_threadsafe` (which
is ``IOLoop.add_callback``) may be called.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any

from tornado.ioloop import IOLoop

from amqp_core.adapters.base_connection import BaseConnection
from amqp_core.io.contract import EventLoop
from amqp_core.parameters import Parameters

from ._loop import TornadoEventLoop

__all__ = ["TornadoConnection", "default_ioloop"]


def default_ioloop() -> IOLoop:
    """The IOLoop a connection uses when no ``custom_ioloop`` is given.

    The IOLoop of the running asyncio loop, if any; else that of the calling
    thread's current asyncio loop; else a new IOLoop, which becomes the thread's
    current one.  Unlike a bare ``IOLoop.current()`` outside a running loop,
    this never triggers a DeprecationWarning.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        return IOLoop.current()
    with warnings.catch_warnings():
        # where implicit loop creation is deprecated, asking is an error here
        warnings.simplefilter("error", DeprecationWarning)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_event_loop()
        except (RuntimeError, DeprecationWarning):
            loop = None
    if loop is not None and not loop.is_closed():
        # wraps the thread's current asyncio loop (an IOLoop is made for it when needed)
        return IOLoop.current()
    created: IOLoop = IOLoop(make_current=True)
    return created


def _check_open(ioloop: IOLoop) -> None:
    asyncio_loop = getattr(ioloop, "asyncio_loop", None)
    if isinstance(asyncio_loop, asyncio.AbstractEventLoop) and asyncio_loop.is_closed():
        raise ValueError("custom_ioloop is closed")


class TornadoConnection(BaseConnection):
    """An asynchronous connection on a tornado IOLoop.

    Same constructor as pika's ``TornadoConnection``; the channel API is
    :class:`amqp_core.channel.Channel`, shared by every adapter.

    :param parameters: connection parameters (defaults when None)
    :param on_open_callback: ``callback(connection)`` once open
    :param on_open_error_callback: ``callback(connection, exception)`` when opening fails
    :param on_close_callback: ``callback(connection, exception)`` once closed
    :param custom_ioloop: the tornado IOLoop to run on (another connection's
        ``ioloop`` included), a :class:`TornadoEventLoop`, or None for
        :func:`default_ioloop`
    :param internal_connection_workflow: connect by itself (True) or wait for
        :meth:`create_connection` (False)
    :raises TypeError: ``custom_ioloop`` is not a tornado IOLoop
    :raises ValueError: ``custom_ioloop`` is closed
    """

    def __init__(
        self,
        parameters: Parameters | None = None,
        on_open_callback: Callable[[Any], None] | None = None,
        on_open_error_callback: Callable[[Any, BaseException], None] | None = None,
        on_close_callback: Callable[[Any, BaseException], None] | None = None,
        custom_ioloop: IOLoop | TornadoEventLoop | None = None,
        internal_connection_workflow: bool = True,
    ) -> None:
        super().__init__(
            parameters, on_open_callback, on_open_error_callback, on_close_callback,
            custom_ioloop, internal_connection_workflow,
        )

    @classmethod
    def _create_event_loop(cls, custom_ioloop: Any) -> tuple[Any, EventLoop]:
        if custom_ioloop is None:
            ioloop = default_ioloop()
        elif isinstance(custom_ioloop, TornadoEventLoop):
            ioloop = custom_ioloop.ioloop
        elif isinstance(custom_ioloop, IOLoop):
            ioloop = custom_ioloop
        else:
            raise TypeError(
                "custom_ioloop must be a tornado.ioloop.IOLoop (or None), "
                f"not {type(custom_ioloop).__name__}"
            )
        _check_open(ioloop)
        return ioloop, TornadoEventLoop(ioloop)

    @property
    def ioloop(self) -> IOLoop:
        """The tornado IOLoop the connection runs on."""
        ioloop: IOLoop = self._native_loop
        return ioloop

    async def wait_stream_closed(self, timeout: float = 5.0) -> None:
        """Wait until the connection's socket is closed (at once if it is).

        For a coroutine on the IOLoop that called :meth:`close` and wants the
        socket gone before it goes on; callback code gets the same guarantee
        from the close callback.  A stream still open after ``timeout`` seconds
        is aborted.
        """
        loop = self.event_loop
        assert isinstance(loop, TornadoEventLoop)
        await loop.wait_streams_closed(timeout)
