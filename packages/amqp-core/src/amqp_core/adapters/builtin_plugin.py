"""The plugin registering amqp_core's built-in ``select`` and ``blocking`` adapters.

Theory of operation: the built-in adapters are found exactly like third-party
ones, through entry points in the group ``amqp_core.adapters`` declared in
amqp-core's own ``pyproject.toml`` (``select`` and ``blocking``).  pluggy
registers one plugin object per entry point, so each adapter gets its own
small plugin object here (one module cannot be registered under two names).
The connection classes are given as dotted paths: describing an adapter
imports nothing.
"""

from __future__ import annotations

from .._version import __version__
from ..hookspecs import AdapterDescription, hookimpl

__all__ = ["BuiltinAdapterPlugin", "blocking_plugin", "select_plugin"]


class BuiltinAdapterPlugin:
    """A plugin describing one adapter that ships with amqp-core.

    :param description: the adapter it describes
    """

    def __init__(self, description: AdapterDescription) -> None:
        self.description = description

    def __repr__(self) -> str:
        return f"<BuiltinAdapterPlugin {self.description.name!r}>"

    @hookimpl
    def amqp_core_adapters(self) -> list[AdapterDescription]:
        """The one adapter this plugin describes."""
        return [self.description]


#: The ``select`` adapter: :class:`~amqp_core.SelectConnection` on the built-in IOLoop.
select_plugin = BuiltinAdapterPlugin(AdapterDescription(
    name="select",
    connection_class="amqp_core.adapters.select_connection:SelectConnection",
    native_loop="amqp_core.adapters.select_connection.IOLoop",
    install_hint="pip install amqp-core",
    distribution="amqp-core",
    version=__version__,
    summary="asynchronous callback API on the built-in selectors IOLoop",
))

#: The ``blocking`` adapter: :class:`~amqp_core.BlockingConnection` (no event loop).
blocking_plugin = BuiltinAdapterPlugin(AdapterDescription(
    name="blocking",
    connection_class="amqp_core.adapters.blocking_connection:BlockingConnection",
    native_loop="none (drives its socket with selectors in the calling thread)",
    install_hint="pip install amqp-core",
    distribution="amqp-core",
    version=__version__,
    summary="synchronous API, pika's BlockingConnection",
))
