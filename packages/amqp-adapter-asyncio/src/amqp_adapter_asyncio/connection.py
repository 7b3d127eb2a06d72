"""``AsyncioConnection``: pika's asynchronous connection on an asyncio event loop.

Theory of operation: the connection is amqp_core's one callback connection
(:class:`amqp_core.adapters.base_connection.BaseConnection`) bound to an
asyncio loop through :class:`~amqp_adapter_asyncio._loop.AsyncioEventLoop`;
this module only chooses the loop and keeps track of the transport's write
back-pressure for the async/await API (publishers wait while the transport's
buffer is over its high-water mark, never per message).

The default loop is the running loop when there is one, else the thread's
current loop, else a new loop made current for the thread; no deprecated call
is made on the way.  Create a connection on the loop's thread (or before the
loop runs); only :meth:`add_callback_threadsafe` may be called from others.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Callable
from typing import Any

from amqp_core.adapters.base_connection import BaseConnection
from amqp_core.io.contract import EventLoop
from amqp_core.parameters import Parameters

from ._loop import AsyncioEventLoop

__all__ = ["AsyncioConnection", "default_event_loop"]


def default_event_loop() -> asyncio.AbstractEventLoop:
    """The loop a connection uses when no ``custom_ioloop`` is given.

    The running loop if any; else the calling thread's current loop; else a new
    loop, which is made the thread's current loop.  Unlike a bare
    ``asyncio.get_event_loop()`` this never emits a DeprecationWarning.
    """
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    with warnings.catch_warnings():
        # on Python versions that deprecate implicit loop creation, asking is an error here
        warnings.simplefilter("error", DeprecationWarning)
        try:
            loop = asyncio.get_event_loop()
        except (RuntimeError, DeprecationWarning):
            loop = None
    if loop is None or loop.is_closed():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
    return loop


class AsyncioConnection(BaseConnection):
    """An asynchronous connection on an asyncio event loop (uvloop's too).

    Same constructor as pika's.

    :param parameters: connection parameters (defaults when None)
    :param on_open_callback: ``callback(connection)`` once open
    :param on_open_error_callback: ``callback(connection, exception)`` when opening fails
    :param on_close_callback: ``callback(connection, exception)`` once closed
    :param custom_ioloop: the asyncio loop to run on (see :func:`default_event_loop`
        when None)
    :param internal_connection_workflow: connect by itself (True) or wait for
        :meth:`create_connection` (False)
    :raises TypeError: ``custom_ioloop`` is not an asyncio event loop
    :raises ValueError: ``custom_ioloop`` is closed
    """

    def __init__(
        self,
        parameters: Parameters | None = None,
        on_open_callback: Callable[[Any], None] | None = None,
        on_open_error_callback: Callable[[Any, BaseException], None] | None = None,
        on_close_callback: Callable[[Any, BaseException], None] | None = None,
        custom_ioloop: asyncio.AbstractEventLoop | None = None,
        internal_connection_workflow: bool = True,
    ) -> None:
        self._writing_paused = False
        self._writable_waiters: list[asyncio.Future[None]] = []
        super().__init__(
            parameters, on_open_callback, on_open_error_callback, on_close_callback,
            custom_ioloop, internal_connection_workflow,
        )
        self.add_on_close_callback(self._on_closed_wake_writers)

    @classmethod
    def _create_event_loop(cls, custom_ioloop: Any) -> tuple[Any, EventLoop]:
        if custom_ioloop is None:
            loop = default_event_loop()
        elif isinstance(custom_ioloop, AsyncioEventLoop):
            loop = custom_ioloop.loop
        elif isinstance(custom_ioloop, asyncio.AbstractEventLoop):
            loop = custom_ioloop
        else:
            raise TypeError(
                "custom_ioloop must be an asyncio event loop (asyncio.AbstractEventLoop) or None, "
                f"not {type(custom_ioloop).__name__}"
            )
        if loop.is_closed():
            raise ValueError("custom_ioloop is closed")
        return loop, AsyncioEventLoop(loop)

    @property
    def ioloop(self) -> asyncio.AbstractEventLoop:
        """The asyncio event loop the connection runs on."""
        loop: asyncio.AbstractEventLoop = self._native_loop
        return loop

    # ------------------------------------------------------------ write back-pressure

    @property
    def writing_paused(self) -> bool:
        """True while the transport's write buffer is over its high-water mark."""
        return self._writing_paused

    def _on_writing_paused(self, paused: bool) -> None:
        self._writing_paused = paused
        if not paused:
            self._wake_writers()

    def _wake_writers(self) -> None:
        waiters, self._writable_waiters = self._writable_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_writable(self) -> None:
        """Return once the transport accepts more data (at once if it is not paused).

        Also returns when the connection ends (the next command then raises).
        Call it on the loop's thread.
        """
        if not self._writing_paused or self.is_closed:
            return
        waiter: asyncio.Future[None] = self.ioloop.create_future()
        self._writable_waiters.append(waiter)
        await waiter

    async def wait_stream_closed(self, timeout: float = 5.0) -> None:
        """Wait until the connection's transport is really gone (its socket closed).

        The close callbacks run as soon as the AMQP connection has ended; the
        transport finishes closing a little later (a TLS stream exchanges
        close_notify first).  Await this before closing the loop.  A stream still
        open after ``timeout`` seconds is aborted.
        """
        loop = self.event_loop
        assert isinstance(loop, AsyncioEventLoop)
        await loop.wait_streams_closed(timeout)

    def _on_closed_wake_writers(self, _connection: Any, _error: BaseException) -> None:
        self._writing_paused = False
        self._wake_writers()
