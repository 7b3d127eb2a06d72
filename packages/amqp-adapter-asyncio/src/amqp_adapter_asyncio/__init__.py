"""amqp_adapter_asyncio: amqp_core on asyncio (and uvloop).

Two APIs over one connection:

* pika's callback API: :class:`AsyncioConnection` (``import amqp_core as pika``
  code keeps working: ``AsyncioConnection(params, on_open_callback=...)``).
* an async/await API: ``async with connect(url) as conn``, ``ch = await
  conn.channel()``, ``await ch.queue_declare("q")``, ``async for message in
  ch.consume("q")``, ``await ch.basic_publish(...)`` (confirmed when
  ``await ch.confirm_delivery()`` was called).

uvloop: create the loop with ``uvloop.new_event_loop()`` (or run under
``uvloop.run``); nothing else changes.
"""

from __future__ import annotations

import importlib.metadata as _metadata

from ._confirms import ReturnedMessage
from ._connect import connect
from ._consumer import Consumer, Message
from ._loop import AsyncioEventLoop
from .aio import AsyncChannel, AsyncConnection
from .connection import AsyncioConnection, default_event_loop

try:  # single-sourced: pyproject.toml's version, read from the installed distribution
    __version__ = _metadata.version("amqp-adapter-asyncio")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "AsyncChannel",
    "AsyncConnection",
    "AsyncioConnection",
    "AsyncioEventLoop",
    "Consumer",
    "Message",
    "ReturnedMessage",
    "__version__",
    "connect",
    "default_event_loop",
]
