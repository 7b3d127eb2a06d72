"""amqp_adapter_tornado: amqp_core on a tornado IOLoop.

:class:`TornadoConnection` is pika's ``TornadoConnection`` (same constructor,
same callback API: ``import amqp_core as pika`` code keeps working).  Its
``ioloop`` is the tornado ``IOLoop``; ``add_callback_threadsafe`` is that
IOLoop's ``add_callback``, which tornado documents as safe from any thread.

The connection runs on an IOLoop in any thread and shares its asyncio loop
with other asyncio code.  Importing this package imports tornado; importing
``amqp_core`` does not.
"""

from __future__ import annotations

import importlib.metadata as _metadata

from ._loop import TornadoEventLoop
from .connection import TornadoConnection, default_ioloop

try:  # single-sourced: pyproject.toml's version, read from the installed distribution
    __version__ = _metadata.version("amqp-adapter-tornado")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["TornadoConnection", "TornadoEventLoop", "__version__", "default_ioloop"]
