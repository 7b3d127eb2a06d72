"""The amqp_core plugin of this distribution (entry point ``asyncfd``).

Theory of operation: amqp_core loads this module only when the ``asyncfd``
adapter is asked for; the hook describes the adapter, naming its connection
class by dotted path so that describing it imports nothing else.
"""

from __future__ import annotations

from amqp_core import hookimpl
from amqp_core.hookspecs import AdapterDescription

__all__ = ["amqp_core_adapters"]


@hookimpl
def amqp_core_adapters() -> list[AdapterDescription]:
    """The ``asyncfd`` adapter."""
    return [
        AdapterDescription(
            name="asyncfd",
            connection_class="amqp_adapter_asyncfd.connection:AsyncfdConnection",
            native_loop="asyncio.SelectorEventLoop",
            install_hint="pip install ./examples/third_party_adapter",
            summary="example: asyncio selector loops through file-descriptor watching",
        )
    ]
