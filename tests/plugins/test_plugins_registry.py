"""The plugin host in-process: listing, lookup, errors, and the hook contract checks.

Contract violations are exercised with a private :class:`AdapterRegistry` and in-process
plugins; the same checks through real (fake) entry points run in a subprocess in
``test_plugins_entry_points.py``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import pytest

import amqp_core
from amqp_core import hookimpl, plugins
from amqp_core.hookspecs import AdapterDescription, resolve_dotted_path
from amqp_core.plugins import (
    AdapterInfo,
    AdapterLoadError,
    AdapterNotFoundError,
    AdapterRegistry,
)


def description(name: str = "fake", **overrides: Any) -> AdapterDescription:
    fields: dict[str, Any] = {
        "name": name,
        "connection_class": "collections:OrderedDict",
        "native_loop": "none",
        "install_hint": "pip install fake",
    }
    fields.update(overrides)
    return AdapterDescription(**fields)


class Plugin:
    """An in-process plugin returning whatever it was given."""

    def __init__(self, result: Any) -> None:
        self.result = result

    @hookimpl
    def amqp_core_adapters(self) -> Any:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result


def test_hookimpl_is_exported_for_adapter_authors() -> None:
    assert "hookimpl" in amqp_core.__all__
    assert amqp_core.hookimpl is plugins.hookimpl


def test_installed_adapters_lists_the_builtins_and_asyncio() -> None:
    adapters = {info.name: info for info in plugins.installed_adapters()}
    assert {"select", "blocking", "asyncio"} <= set(adapters)
    select = adapters["select"]
    assert isinstance(select, AdapterInfo)
    assert select.distribution == "amqp-core"
    assert select.version == amqp_core.__version__
    assert select.entry_point == "amqp_core.adapters.builtin_plugin:select_plugin"
    assert adapters["asyncio"].distribution == "amqp-adapter-asyncio"
    assert adapters["asyncio"].version == "0.1.0"
    names = [info.name for info in plugins.installed_adapters()]
    assert names == sorted(names)


def test_get_adapter_and_connection_class() -> None:
    from amqp_adapter_asyncio import AsyncioConnection
    from amqp_core.adapters.select_connection import SelectConnection

    select = plugins.get_adapter("select")
    assert select.name == "select" and select.distribution == "amqp-core"
    assert select.connection_class_path == "amqp_core.adapters.select_connection:SelectConnection"
    assert plugins.get_connection_class("select") is SelectConnection
    assert plugins.get_adapter("select") is select  # cached

    asyncio_adapter = plugins.get_adapter("asyncio")
    assert asyncio_adapter.native_loop == "asyncio.AbstractEventLoop"
    assert asyncio_adapter.distribution == "amqp-adapter-asyncio"  # filled from metadata
    assert asyncio_adapter.version == "0.1.0"
    assert asyncio_adapter.install_hint == "pip install amqp-adapter-asyncio"
    assert plugins.get_connection_class("asyncio") is AsyncioConnection


def test_blocking_is_registered_lazily_by_path() -> None:
    blocking = plugins.get_adapter("blocking")
    assert blocking.connection_class == (
        "amqp_core.adapters.blocking_connection:BlockingConnection"
    )
    if importlib.util.find_spec("amqp_core.adapters.blocking_connection") is not None:
        from amqp_core.adapters.blocking_connection import BlockingConnection

        assert plugins.get_connection_class("blocking") is BlockingConnection


@pytest.mark.parametrize("name", ["tornado", "twisted", "gevent", "asyncio"])
def test_known_but_uninstalled_adapter_names_its_package(name: str) -> None:
    # a registry over an entry-point group nobody declares: every adapter is "not installed"
    registry = plugins.AdapterRegistry("amqp_core.adapters.test-empty-group")
    with pytest.raises(AdapterNotFoundError) as caught:
        registry.get(name)
    error = caught.value
    assert isinstance(error, LookupError)
    assert error.name == name and error.package == f"amqp-adapter-{name}"
    message = str(error)
    assert f"pip install amqp-adapter-{name}" in message
    assert list(error.installed) == []


def test_unknown_adapter_lists_the_installed_ones() -> None:
    with pytest.raises(AdapterNotFoundError) as caught:
        plugins.get_connection_class("no-such-adapter")
    message = str(caught.value)
    assert "unknown amqp_core adapter 'no-such-adapter'" in message
    installed = ", ".join(info.name for info in plugins.installed_adapters())
    assert f"(installed adapters: {installed})" in message
    assert "amqp_core.adapters" in message
    assert caught.value.package is None


def test_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="name"):
        plugins.get_adapter(3)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- descriptions


def test_description_validates_its_fields() -> None:
    with pytest.raises(TypeError, match="name"):
        description(name=3)
    with pytest.raises(ValueError, match="name"):
        description(name="")
    with pytest.raises(TypeError, match="connection_class"):
        description(connection_class=42)
    with pytest.raises(ValueError, match="install_hint"):
        description(install_hint="")
    with pytest.raises(TypeError, match="version"):
        description(version=1)


def test_description_loads_classes_lazily() -> None:
    import collections

    lazy = description(connection_class="collections:OrderedDict")
    assert lazy.load_connection_class() is collections.OrderedDict
    dotted = description(connection_class="collections.OrderedDict")
    assert dotted.load_connection_class() is collections.OrderedDict
    eager = description(connection_class=collections.Counter)
    assert eager.connection_class_path == "collections:Counter"
    assert eager.load_connection_class() is collections.Counter
    with pytest.raises(TypeError, match="not a class"):
        description(connection_class="os.path:join").load_connection_class()
    with pytest.raises(ValueError, match="path"):
        resolve_dotted_path("nodots")


# ---------------------------------------------------------------------------- in-process plugins


def test_in_process_plugin() -> None:
    registry = AdapterRegistry(group="amqp_core.tests.no_such_group")
    registry.register(Plugin([description("mine"), description("also-mine")]), name="p")
    assert [info.name for info in registry.installed()] == ["also-mine", "mine"]
    assert registry.get("mine").name == "mine"
    import collections

    assert registry.connection_class("also-mine") is collections.OrderedDict
    with pytest.raises(AdapterNotFoundError, match="also-mine, mine"):
        registry.get("other")


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        ("not a list", "must return a list of AdapterDescription, not str"),
        (description("fake"), "must return a list of AdapterDescription"),
        (["text"], "holding a str, not an AdapterDescription"),
        (RuntimeError("boom"), "hook raised RuntimeError('boom')"),
    ],
)
def test_broken_in_process_plugin_is_skipped_and_logged(
    result: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = AdapterRegistry(group="amqp_core.tests.no_such_group")
    registry.register(Plugin(result), name="broken")
    registry.register(Plugin([description("good")]), name="good")
    assert registry.get("good").name == "good"  # the broken one does not break it
    assert [info.name for info in registry.installed()] == ["good"]
    assert reason in caplog.text


def test_rejected_plugin_is_a_load_error() -> None:
    class WrongSignature:
        @hookimpl
        def amqp_core_adapters(self, unexpected: Any) -> list[AdapterDescription]:
            return []

    registry = AdapterRegistry(group="amqp_core.tests.no_such_group")
    with pytest.raises(AdapterLoadError, match="rejected"):
        registry.register(WrongSignature(), name="wrong")


def test_connection_class_that_cannot_be_imported() -> None:
    registry = AdapterRegistry(group="amqp_core.tests.no_such_group")
    registry.register(Plugin([description("ghost", connection_class="no_such_module:X")]))
    with pytest.raises(AdapterLoadError) as caught:
        registry.connection_class("ghost")
    assert caught.value.name == "ghost"
    assert "no_such_module:X" in str(caught.value)
    assert isinstance(caught.value.__cause__, ImportError)
