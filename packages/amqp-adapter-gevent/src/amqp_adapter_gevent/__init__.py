"""amqp_adapter_gevent: amqp_core on gevent.

:class:`GeventConnection` is pika's ``GeventConnection`` (``import amqp_core as
pika`` code keeps working): it runs on the calling thread's gevent hub, with or
without ``gevent.monkey.patch_all()``.  ``connection.ioloop`` is a
:class:`GeventIOLoop` (``start``, ``stop``, ``call_later``, ``remove_timeout``,
``add_callback``, ``close``).  Other OS threads reach the connection through
``add_callback_threadsafe``; other greenlets of the hub's thread may call
channel methods directly or use the greenlet-safe ``add_callback``.

Theory of operation: the names are loaded on first use (PEP 562), so that
amqp_core's plugin host can read this distribution's plugin module
(``amqp_adapter_gevent._plugin``) without importing gevent.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._contract import GeventEventLoop
    from ._loop import GeventIOLoop
    from .connection import GeventConnection, make_ioloop

import importlib.metadata as _metadata

try:  # single-sourced: pyproject.toml's version, read from the installed distribution
    __version__ = _metadata.version("amqp-adapter-gevent")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "GeventConnection",
    "GeventEventLoop",
    "GeventIOLoop",
    "__version__",
    "make_ioloop",
]

_LAZY = {
    "GeventConnection": ".connection",
    "make_ioloop": ".connection",
    "GeventEventLoop": "._contract",
    "GeventIOLoop": "._loop",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
