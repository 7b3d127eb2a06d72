"""The plugin hook contract: how a distribution tells amqp_core which adapters it provides.

Theory of operation
-------------------
amqp_core is a pluggy host for the project name ``"amqp_core"``.  There is one
hook, :func:`amqp_core_adapters`: every plugin returns a list of
:class:`AdapterDescription` objects, one per adapter it provides.  A plugin is
found through an entry point in the group ``amqp_core.adapters`` whose name is
the adapter's name (see :mod:`amqp_core.plugins`, which loads one entry point
at a time, only when that adapter is asked for).

An adapter author writes, in a module the entry point names::

    from amqp_core import hookimpl
    from amqp_core.hookspecs import AdapterDescription

    @hookimpl
    def amqp_core_adapters():
        return [AdapterDescription(
            name="mine", connection_class="my_package:MyConnection",
            native_loop="my_framework.Loop", install_hint="pip install my-package")]

and declares ``[project.entry-points."amqp_core.adapters"] mine = "my_package._plugin"``.

This module imports nothing but pluggy and the standard library, so ``hookimpl``
can be re-exported by ``amqp_core`` at no cost.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import pluggy

__all__ = [
    "PROJECT_NAME",
    "AdapterDescription",
    "amqp_core_adapters",
    "hookimpl",
    "hookspec",
    "resolve_dotted_path",
]

#: The pluggy project name of amqp_core's hooks.
PROJECT_NAME = "amqp_core"

#: Marks a hook specification (used by amqp_core itself).
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Marks a hook implementation (used by adapter plugins; re-exported as ``amqp_core.hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


def resolve_dotted_path(path: str) -> Any:
    """Import the object a dotted path names.

    Both ``"package.module:Name"`` and ``"package.module.Name"`` are accepted;
    after a colon, dots walk attributes (``"module:Outer.Inner"``).

    :param path: the dotted path
    :returns: the object
    :raises TypeError: ``path`` is not a str
    :raises ValueError: ``path`` is not of either form
    :raises ImportError: the module cannot be imported
    :raises AttributeError: the module has no such attribute
    """
    if not isinstance(path, str):
        raise TypeError(f"path must be a str, not {type(path).__name__}")
    if ":" in path:
        module_name, _, attributes = path.partition(":")
    else:
        module_name, _, attributes = path.rpartition(".")
    if not module_name or not attributes or ":" in attributes:
        raise ValueError(
            f"path must look like 'package.module:Name' or 'package.module.Name', got {path!r}"
        )
    target: Any = importlib.import_module(module_name)
    for attribute in attributes.split("."):
        target = getattr(target, attribute)
    return target


def _require_text(value: Any, name: str, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterDescription:
    """What a plugin says about one adapter it provides.

    :param name: the adapter's name, also the name of its entry point (``"asyncio"``)
    :param connection_class: the connection class, or a lazy dotted path to it
        (``"amqp_adapter_asyncio:AsyncioConnection"``) so that describing an adapter
        imports nothing of its framework
    :param native_loop: the native loop type the connection runs on, as text
        (``"asyncio.AbstractEventLoop"``)
    :param install_hint: how to install the adapter (``"pip install amqp-adapter-asyncio"``)
    :param distribution: the distribution providing it (filled from the entry
        point's metadata when None)
    :param version: that distribution's version (filled likewise when None)
    :param summary: one line about the adapter
    :raises TypeError: a field has the wrong type
    :raises ValueError: a required text field is empty
    """

    name: str
    connection_class: type | str
    native_loop: str
    install_hint: str
    distribution: str | None = None
    version: str | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        _require_text(self.name, "name")
        if not isinstance(self.connection_class, type):
            _require_text(self.connection_class, "connection_class")
        _require_text(self.native_loop, "native_loop")
        _require_text(self.install_hint, "install_hint")
        _require_text(self.distribution, "distribution", optional=True)
        _require_text(self.version, "version", optional=True)
        if not isinstance(self.summary, str):
            raise TypeError(f"summary must be a str, not {type(self.summary).__name__}")

    @property
    def connection_class_path(self) -> str:
        """The connection class as a dotted path (without importing anything)."""
        target = self.connection_class
        if isinstance(target, str):
            return target
        return f"{target.__module__}:{target.__qualname__}"

    def load_connection_class(self) -> type:
        """Return the connection class, importing it when it was given as a path.

        :raises ImportError: the module cannot be imported
        :raises AttributeError: the module has no such class
        :raises TypeError: the path names something that is not a class
        """
        target = self.connection_class
        if isinstance(target, type):
            return target
        loaded = resolve_dotted_path(target)
        if not isinstance(loaded, type):
            raise TypeError(
                f"connection_class {target!r} of adapter {self.name!r} is not a class: "
                f"{loaded!r}"
            )
        return loaded


@hookspec
def amqp_core_adapters() -> list[AdapterDescription]:  # type: ignore[empty-body]
    """Describe the adapters this plugin provides.

    Called once per plugin, when one of its adapters is first asked for.  Must
    be cheap and must not import the adapter's event-loop framework: give the
    connection class as a dotted path if importing it would.

    :returns: one :class:`AdapterDescription` per adapter (a plugin found
        through the entry point ``NAME`` must describe the adapter ``NAME``)
    """
