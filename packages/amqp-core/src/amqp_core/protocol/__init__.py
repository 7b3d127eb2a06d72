"""The sans-I/O protocol core: bytes in, events out, no sockets, clocks or threads."""

from . import events
from .connection import DEFAULT_MAX_BODY_SIZE, Connection
from .events import NEED_DATA
from .states import ChannelState, ConnectionState

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "NEED_DATA",
    "ChannelState",
    "Connection",
    "ConnectionState",
    "events",
]
