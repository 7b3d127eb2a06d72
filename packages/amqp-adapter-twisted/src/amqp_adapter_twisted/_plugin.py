"""The amqp_core plugin of this distribution (entry point ``twisted`` in ``amqp_core.adapters``).

Theory of operation: amqp_core's plugin host loads this module only when the
``twisted`` adapter is asked for; the hook describes the adapter and names its
connection class by dotted path, so describing it imports nothing of Twisted.
The connection class is :class:`~amqp_adapter_twisted.TwistedConnection` (pika's
callback constructor on the reactor), the one the cross-adapter suite drives;
pika's Deferred API is :class:`~amqp_adapter_twisted.TwistedProtocolConnection`.
"""

from __future__ import annotations

from amqp_core import hookimpl
from amqp_core.hookspecs import AdapterDescription

__all__ = ["amqp_core_adapters"]


@hookimpl
def amqp_core_adapters() -> list[AdapterDescription]:
    """The ``twisted`` adapter."""
    return [
        AdapterDescription(
            name="twisted",
            connection_class="amqp_adapter_twisted.connection:TwistedConnection",
            native_loop="twisted.internet.interfaces.IReactorCore",
            install_hint="pip install amqp-adapter-twisted",
            summary="pika's callback API on a Twisted reactor, plus pika's "
            "TwistedProtocolConnection with a Deferred-returning channel",
        )
    ]
