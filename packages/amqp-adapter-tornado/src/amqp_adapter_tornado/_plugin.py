"""The amqp_core plugin of this distribution (entry point ``tornado`` in ``amqp_core.adapters``).

Theory of operation: amqp_core's plugin host loads this module only when the
``tornado`` adapter is asked for; the hook describes the adapter and names its
connection class by dotted path, so describing it imports neither tornado nor
the connection module.
"""

from __future__ import annotations

from amqp_core import hookimpl
from amqp_core.hookspecs import AdapterDescription

__all__ = ["amqp_core_adapters"]


@hookimpl
def amqp_core_adapters() -> list[AdapterDescription]:
    """The ``tornado`` adapter: pika's TornadoConnection on a tornado IOLoop."""
    return [
        AdapterDescription(
            name="tornado",
            connection_class="amqp_adapter_tornado.connection:TornadoConnection",
            native_loop="tornado.ioloop.IOLoop",
            install_hint="pip install amqp-adapter-tornado",
            summary="pika's TornadoConnection on a tornado IOLoop (any thread, shared with "
            "asyncio code)",
        )
    ]
