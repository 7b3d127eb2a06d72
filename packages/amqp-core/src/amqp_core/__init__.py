"""amqp_core: a pika-compatible RabbitMQ (AMQP 0-9-1) client with a sans-I/O protocol core.

Migrating from pika means changing the import: ``import amqp_core as pika``
keeps ``pika.BlockingConnection``, ``pika.SelectConnection``,
``pika.ConnectionParameters``, ``pika.BasicProperties`` ... working.
"""

from __future__ import annotations

from typing import Any

from . import exceptions, spec
from ._version import __version__
from .adapters.utils.connection_workflow import AMQPConnectionWorkflow
from .connection import (
    ConnectionParameters,
    SSLOptions,
    URLParameters,
)
from .credentials import ExternalCredentials, PlainCredentials
from .delivery_mode import DeliveryMode
from .hookspecs import hookimpl
from .spec import BasicProperties

__all__ = [
    "AMQPConnectionWorkflow",
    "BasicProperties",
    "BlockingConnection",
    "ConnectionParameters",
    "DeliveryMode",
    "ExternalCredentials",
    "PlainCredentials",
    "SSLOptions",
    "SelectConnection",
    "URLParameters",
    "__version__",
    "exceptions",
    "hookimpl",
    "spec",
]


def __getattr__(name: str) -> Any:
    # the connection classes are imported on first use to keep `import amqp_core` light
    if name == "SelectConnection":
        from .adapters.select_connection import SelectConnection

        return SelectConnection
    if name == "BlockingConnection":
        from .adapters.blocking_connection import BlockingConnection

        return BlockingConnection
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
