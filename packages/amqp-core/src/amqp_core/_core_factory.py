"""Building a protocol core from connection parameters: shared by every connection class.

Theory of operation: the asynchronous :class:`~amqp_core.connection.Connection`
and :class:`~amqp_core.BlockingConnection` both start each attempt with a
fresh sans-I/O core configured from the same parameters and announcing the
same client properties; this module is that one place.  pika's heartbeat
callable takes ``(connection, broker_proposal)``; the core only knows the
proposal, so the callable is wrapped with a getter for the connection object
(a weak reference for owners that must not be kept alive by their core).
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from typing import Any, Final

from ._version import __version__
from .exceptions import (
    AuthenticationError,
    ConnectionClosedByBroker,
    ConnectionOpenAborted,
    ProbableAccessDeniedError,
    ProbableAuthenticationError,
)
from .parameters import Parameters
from .protocol import Connection as CoreConnection

#: The ``product`` client property.
PRODUCT: Final = "amqp-core"

#: Handshake failures that another attempt cannot fix: connection workflows stop at once.
FINAL_HANDSHAKE_ERRORS: Final = (
    ProbableAuthenticationError,
    ProbableAccessDeniedError,
    AuthenticationError,
    ConnectionOpenAborted,
    ConnectionClosedByBroker,
)


def client_properties(params: Parameters) -> dict[str, Any]:
    """The Start-Ok client properties: ours, then the application's on top."""
    properties: dict[str, Any] = {
        "product": PRODUCT,
        "platform": f"Python {platform.python_version()}",
        "capabilities": {
            "authentication_failure_close": True,
            "basic.nack": True,
            "connection.blocked": True,
            "consumer_cancel_notify": True,
            "publisher_confirms": True,
        },
        "information": "A pika-compatible AMQP 0-9-1 client",
        "version": __version__,
    }
    if params.client_properties:
        properties.update(params.client_properties)
    return properties


def new_core(params: Parameters, connection: Callable[[], Any]) -> CoreConnection:
    """A fresh protocol core for one connection attempt.

    :param params: the attempt's parameters
    :param connection: returns the user-facing connection object (handed to a
        heartbeat callable, as pika does)
    """
    heartbeat = params.heartbeat
    setting: Any = heartbeat
    if callable(heartbeat):
        user_callable = heartbeat

        def setting(broker_value: int) -> int:
            return int(user_callable(connection(), broker_value))

    return CoreConnection(
        credentials=params.credentials,
        virtual_host=params.virtual_host,
        client_properties=client_properties(params),
        channel_max=params.channel_max,
        frame_max=params.frame_max,
        heartbeat=setting,
        locale=params.locale,
    )
