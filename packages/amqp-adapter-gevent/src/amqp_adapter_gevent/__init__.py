"""amqp_adapter_gevent: amqp_core on gevent.

:class:`GeventConnection` is pika's ``GeventConnection`` (``import amqp_core as
pika`` code keeps working): it runs on the calling thread's gevent hub, with or
without ``gevent.monkey.patch_all()``.  ``connection.ioloop`` is a
:class:`GeventIOLoop` (``start``, ``stop``, ``call_later``, ``remove_timeout``,
``add_callback``, ``close``).  Other OS threads reach the connection through
``add_callback_threadsafe``; other greenlets of the hub's thread may call
channel methods directly or use the greenlet-safe ``add_callback``.
"""

from __future__ import annotations

from ._contract import GeventEventLoop
from ._loop import GeventIOLoop
from .connection import GeventConnection, make_ioloop

__version__ = "0.1.0"

__all__ = [
    "GeventConnection",
    "GeventEventLoop",
    "GeventIOLoop",
    "__version__",
    "make_ioloop",
]
