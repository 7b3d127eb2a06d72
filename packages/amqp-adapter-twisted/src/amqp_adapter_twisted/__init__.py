"""amqp_adapter_twisted: amqp_core on Twisted.

Two APIs over one protocol core:

* pika's Twisted API: :class:`TwistedProtocolConnection`, a Twisted ``Protocol``
  (connect it with ``ClientCreator`` or any client endpoint, TCP or TLS) with
  ``ready`` and ``closed`` Deferreds and ``channel()`` firing with a
  :class:`TwistedChannel`, whose methods return Deferreds (``await`` them in
  ``async def`` code run with ``ensureDeferred``); ``basic_consume`` gives a
  :class:`ClosableDeferredQueue` of :class:`ReceivedMessage`.
* pika's callback API on the reactor: :class:`TwistedConnection` (what
  ``amqp_core.plugins.get_connection_class("twisted")`` returns), which
  connects by itself (TCP, or TLS from the parameters' ``ssl_options``).

The thread-safe entry point is ``add_callback_threadsafe`` (``reactor.callFromThread``).
"""

from __future__ import annotations

import importlib.metadata as _metadata

from ._deferreds import Completion
from ._loop import TwistedEventLoop, TwistedStreamTransport
from .channel import CHANNEL_DEFERREDS, TwistedChannel
from .connection import TwistedConnection
from .protocol import CONNECTION_DEFERREDS, TwistedProtocolConnection
from .queue import ClosableDeferredQueue, ReceivedMessage

try:  # single-sourced: pyproject.toml's version, read from the installed distribution
    __version__ = _metadata.version("amqp-adapter-twisted")
except _metadata.PackageNotFoundError:  # a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "CHANNEL_DEFERREDS",
    "CONNECTION_DEFERREDS",
    "ClosableDeferredQueue",
    "Completion",
    "ReceivedMessage",
    "TwistedChannel",
    "TwistedConnection",
    "TwistedEventLoop",
    "TwistedProtocolConnection",
    "TwistedStreamTransport",
    "__version__",
]
