"""``GeventConnection``: pika's asynchronous connection on a gevent hub.

Theory of operation: the connection is amqp_core's one callback connection
(:class:`amqp_core.adapters.base_connection.BaseConnection`) bound to the
calling thread's gevent hub through :class:`~amqp_adapter_gevent._loop.GeventIOLoop`
(the native loop, exposed as ``ioloop``) and its contract loop
:class:`~amqp_adapter_gevent._loop.GeventEventLoop`.  This module only turns
``custom_ioloop`` into those two objects and adds the greenlet-safe
:meth:`GeventConnection.add_callback`.

Callbacks (open, close, consumer, confirm ...) run in the hub greenlet: they
must not block (no ``gevent.sleep``, no waiting on an event); spawn a greenlet
for anything that waits.  Channel methods may be called from any greenlet of
the hub's thread (they never switch); from other OS threads only through
:meth:`GeventConnection.add_callback_threadsafe`.  The same holds with and
without ``gevent.monkey.patch_all()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gevent
import gevent.hub

from amqp_core.adapters.base_connection import BaseConnection
from amqp_core.io.contract import EventLoop, TimerHandle
from amqp_core.parameters import Parameters

from ._loop import GeventIOLoop, _real_thread_ident

__all__ = ["GeventConnection", "make_ioloop"]


def make_ioloop(custom_ioloop: Any = None) -> GeventIOLoop:
    """The :class:`GeventIOLoop` a connection runs on, from its ``custom_ioloop`` argument.

    :param custom_ioloop: None (the calling thread's hub), a :class:`GeventIOLoop`,
        a :class:`gevent.hub.Hub`, or the calling thread's ``gevent.get_hub().loop``.
    :raises TypeError: ``custom_ioloop`` is none of those.
    :raises ValueError: the loop is closed, or belongs to another thread.
    """
    if custom_ioloop is None:
        return GeventIOLoop()
    if isinstance(custom_ioloop, GeventIOLoop):
        if custom_ioloop.is_closed:
            raise ValueError("custom_ioloop is closed")
        return custom_ioloop
    if isinstance(custom_ioloop, gevent.hub.Hub):
        return GeventIOLoop(custom_ioloop)
    if hasattr(custom_ioloop, "io") and hasattr(custom_ioloop, "run_callback"):
        hub = gevent.get_hub()
        if hub.loop is not custom_ioloop:
            raise ValueError(
                "custom_ioloop is a gevent loop but not the calling thread's hub loop; "
                "pass its hub (or a GeventIOLoop) from that hub's thread"
            )
        return GeventIOLoop(hub)
    raise TypeError(
        "custom_ioloop must be a GeventIOLoop, a gevent Hub, the hub's loop, or None, "
        f"not {type(custom_ioloop).__name__}"
    )


class GeventConnection(BaseConnection):
    """An asynchronous connection on a gevent hub (pika's ``GeventConnection``).

    Same constructor as pika's.  Create it on the thread whose hub it should
    use (with ``custom_ioloop=None``, the calling thread's ``gevent.get_hub()``).

    :param parameters: connection parameters (defaults when None)
    :param on_open_callback: ``callback(connection)`` once open
    :param on_open_error_callback: ``callback(connection, exception)`` when opening fails
    :param on_close_callback: ``callback(connection, exception)`` once closed
    :param custom_ioloop: a :class:`GeventIOLoop`, a gevent hub or its loop, or None
        (see :func:`make_ioloop`)
    :param internal_connection_workflow: connect by itself (True) or wait for
        :meth:`create_connection` (False)
    :raises TypeError: ``custom_ioloop`` is of the wrong type
    :raises ValueError: ``custom_ioloop`` is closed or belongs to another thread
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
        ioloop = make_ioloop(custom_ioloop)
        return ioloop, ioloop.contract()

    @property
    def ioloop(self) -> GeventIOLoop:
        """The :class:`GeventIOLoop` the connection runs on (``start``, ``stop`` ...)."""
        loop: GeventIOLoop = self._native_loop
        return loop

    def add_callback_threadsafe(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` in the connection's hub; callable from any OS thread.

        From another thread it wakes the hub through a gevent async watcher;
        from the hub's own thread (any greenlet) it costs no system call.

        :raises TypeError: ``callback`` is not callable
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        self._native_loop.add_callback_threadsafe(callback)

    def add_callback(self, callback: Callable[[], None]) -> TimerHandle:
        """The greenlet-safe variant: run ``callback`` in the hub soon, from any greenlet.

        Call it from a greenlet of the connection's thread (it never switches);
        from another OS thread use :meth:`add_callback_threadsafe`.

        :returns: a handle whose ``cancel()`` prevents the call
        :raises TypeError: ``callback`` is not callable
        :raises RuntimeError: called from another OS thread
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        loop: GeventIOLoop = self._native_loop
        if _real_thread_ident() != loop.hub.thread_ident:
            raise RuntimeError(
                "add_callback must be called on the connection's thread; "
                "use add_callback_threadsafe from other threads"
            )
        return loop.call_soon(callback)
