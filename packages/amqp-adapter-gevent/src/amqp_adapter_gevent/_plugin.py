"""The amqp_core plugin of this distribution (entry point ``gevent`` in ``amqp_core.adapters``).

Theory of operation: amqp_core's plugin host loads this module only when the
``gevent`` adapter is asked for; the hook describes the adapter and names its
connection class by dotted path, so describing it does not import gevent.
"""

from __future__ import annotations

from amqp_core import hookimpl
from amqp_core.hookspecs import AdapterDescription

__all__ = ["amqp_core_adapters"]


@hookimpl
def amqp_core_adapters() -> list[AdapterDescription]:
    """The ``gevent`` adapter."""
    return [
        AdapterDescription(
            name="gevent",
            connection_class="amqp_adapter_gevent.connection:GeventConnection",
            native_loop="amqp_adapter_gevent.GeventIOLoop (on the thread's gevent hub)",
            install_hint="pip install amqp-adapter-gevent",
            summary="pika's GeventConnection on the thread's gevent hub, with or without "
            "monkey-patching",
        )
    ]
