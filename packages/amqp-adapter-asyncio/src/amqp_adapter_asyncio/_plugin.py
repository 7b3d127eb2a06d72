"""The amqp_core plugin of this distribution (entry point ``asyncio`` in ``amqp_core.adapters``).

Theory of operation: amqp_core's plugin host loads this module only when the
``asyncio`` adapter is asked for; the hook describes the adapter and names its
connection class by dotted path.
"""

from __future__ import annotations

from amqp_core import hookimpl
from amqp_core.hookspecs import AdapterDescription

__all__ = ["amqp_core_adapters"]


@hookimpl
def amqp_core_adapters() -> list[AdapterDescription]:
    """The ``asyncio`` adapter (uvloop runs through it: pass a uvloop loop)."""
    return [
        AdapterDescription(
            name="asyncio",
            connection_class="amqp_adapter_asyncio.connection:AsyncioConnection",
            native_loop="asyncio.AbstractEventLoop",
            install_hint="pip install amqp-adapter-asyncio",
            summary="pika's AsyncioConnection plus an async/await API; any asyncio loop "
            "(uvloop included)",
        )
    ]
