"""The conformance kit's pytest plugin: one fixture parametrized over every adapter.

Theory of operation
-------------------
Enabled with ``-p amqp_core.testing`` or ``pytest_plugins = ["amqp_core.testing"]``
(never automatically).  After anyio's model, a test asks for ``amqp_adapter``
(or anything built on it: ``amqp_harness``, ``amqp_client``) and
:func:`pytest_generate_tests` parametrizes it over the selected adapters:

* the adapters named with ``--amqp-adapter=select,asyncio`` (repeatable), or
  in the environment variable ``AMQP_KIT_ADAPTERS``; otherwise
* every installed adapter (:func:`amqp_core.plugins.installed_adapters`, read
  from entry-point metadata, nothing imported) plus every adapter a
  ``pytest_amqp_core_harnesses`` hook registers.

``blocking`` has no loop: it is never an ``amqp_adapter``; the blocking live
scenarios take ``amqp_blocking_adapter`` instead.

``amqp_harness`` builds a fresh :class:`~amqp_core.testing.harness.LoopHarness`
per test: the harness registered for the adapter through the hook, else the
kit's own for this project's adapters, else the generic
:class:`~amqp_core.testing.harness.RunnableLoopHarness`, which works for any
adapter whose contract loop implements ``RunnableLoop``.  A fixture of the
same name in a conftest overrides all of this.

Live scenarios need a broker: ``--amqp-url`` (or ``AMQP_URL``), or
``--amqp-private-broker`` to start a private RabbitMQ node for the session;
without either they are skipped.  A project may override ``amqp_broker``.

This module asserts nothing, so a conftest may import it before pytest loads it as a
plugin (PYTEST_DONT_REWRITE: no "already imported" warning).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from .client import KitClient
from .harness import HarnessFactory, LoopHarness, harness_class_for, make_harness
from .peer import ScriptedPeer

__all__ = [
    "BLOCKING_ADAPTERS",
    "amqp_adapter",
    "amqp_blocking_adapter",
    "amqp_blocking_connect",
    "amqp_broker",
    "amqp_client",
    "amqp_harness",
    "amqp_params",
    "amqp_peer",
    "amqp_private_broker",
    "pytest_addhooks",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_generate_tests",
    "pytest_report_header",
    "selected_adapters",
]

# The test modules are imported by the user's test modules, after this plugin:
# let pytest rewrite their asserts (a no-op when they are imported already).
pytest.register_assert_rewrite(
    "amqp_core.testing.contract_tests",
    "amqp_core.testing.loop_tests",
    "amqp_core.testing.stream_tests",
    "amqp_core.testing.protocol_tests",
    "amqp_core.testing.scenarios",
    "amqp_core.testing.blocking_scenarios",
    "amqp_core.testing.stress_scenarios",
    "amqp_core.testing.fault_scenarios",
    "amqp_core.testing.misbehaving_peer_tests",
)

#: Adapters without a loop (driven by the live blocking scenarios only).
BLOCKING_ADAPTERS = frozenset({"blocking"})
#: Environment variable naming the adapters to run (comma-separated) when no option does.
ADAPTERS_ENV = "AMQP_KIT_ADAPTERS"


@dataclass(frozen=True)
class Selection:
    """The adapters a run covers.

    :param loop: adapters with a loop (``amqp_adapter``'s parameters)
    :param blocking: adapters without one (``amqp_blocking_adapter``'s parameters)
    :param explicit: whether they were named (option or environment)
    """

    loop: tuple[str, ...]
    blocking: tuple[str, ...]
    explicit: bool


# ---------------------------------------------------------------- hooks


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """Add the ``pytest_amqp_core_harnesses`` hook."""
    from . import _hookspecs

    pluginmanager.add_hookspecs(_hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--amqp-adapter``, ``--amqp-url``, ``--amqp-private-broker``."""
    group = parser.getgroup("amqp_core", "amqp_core adapter conformance kit")
    group.addoption(
        "--amqp-adapter", action="append", default=None, metavar="NAMES", dest="amqp_adapter",
        help="adapters to run the kit for, comma-separated (repeatable); default: every "
        f"installed adapter (or ${ADAPTERS_ENV})",
    )
    group.addoption(
        "--amqp-url", default=None, metavar="URL", dest="amqp_url",
        help="broker for the live scenarios (default: $AMQP_URL); without it and without "
        "--amqp-private-broker they are skipped",
    )
    group.addoption(
        "--amqp-private-broker", action="store_true", default=False,
        dest="amqp_private_broker",
        help="start a private RabbitMQ node on 127.0.0.1 for the live scenarios "
        "(needs rabbitmq-server)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``amqp_live`` and ``slow`` markers."""
    config.addinivalue_line(
        "markers", "amqp_live: a live scenario of the amqp_core kit (needs a broker)"
    )
    config.addinivalue_line(
        "markers", "slow: a long-running scenario of the amqp_core kit (stress, leak cycles)"
    )


def pytest_collection_modifyitems(config: pytest.Config) -> None:
    """Check the adapter names once every conftest is loaded (a typo is a usage error, not a
    silent empty run; conftests of subdirectories may register harnesses)."""
    selected_adapters(config)


def pytest_report_header(config: pytest.Config) -> str:
    """Say which adapters the kit runs, and where they come from."""
    selection = selected_adapters(config, strict=False)
    installed = _installed()
    described = []
    for name in (*selection.loop, *selection.blocking):
        info = installed.get(name)
        origin = f"{info.distribution} {info.version}" if info and info.distribution else (
            "registered by a pytest_amqp_core_harnesses hook")
        described.append(f"{name} ({origin})")
    return "amqp_core kit adapters: " + (", ".join(described) or "none")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``amqp_adapter`` and ``amqp_blocking_adapter`` over the selected adapters."""
    names = metafunc.fixturenames
    if "amqp_adapter" not in names and "amqp_blocking_adapter" not in names:
        return
    selection = selected_adapters(
        metafunc.config, _registered(metafunc.definition.ihook, metafunc.config), strict=False)
    if "amqp_adapter" in names:
        _parametrize(metafunc, "amqp_adapter", selection.loop, "with a loop")
    elif "amqp_blocking_adapter" in names:
        _parametrize(metafunc, "amqp_blocking_adapter", selection.blocking, "without a loop")


def _parametrize(metafunc: pytest.Metafunc, name: str, adapters: tuple[str, ...],
                 kind: str) -> None:
    if adapters:
        metafunc.parametrize(name, list(adapters), ids=list(adapters))
    else:  # say why, rather than pytest's "got empty parameter set"
        reason = f"no adapter {kind} is selected (--amqp-adapter / ${ADAPTERS_ENV})"
        metafunc.parametrize(name, [pytest.param(None, marks=pytest.mark.skip(reason=reason))],
                             ids=["none"])


# ---------------------------------------------------------------- selection

_INSTALLED: dict[str, Any] | None = None


def _installed() -> dict[str, Any]:
    global _INSTALLED
    if _INSTALLED is None:
        from ..plugins import installed_adapters

        _INSTALLED = {info.name: info for info in installed_adapters()}
    return _INSTALLED


def _registered(ihook: Any, config: pytest.Config) -> dict[str, HarnessFactory]:
    merged: dict[str, HarnessFactory] = {}
    for result in ihook.pytest_amqp_core_harnesses(config=config):
        if not isinstance(result, Mapping):
            raise pytest.UsageError(
                "pytest_amqp_core_harnesses must return a mapping {adapter name: factory}, "
                f"not {type(result).__name__}"
            )
        for name, factory in result.items():
            if not isinstance(name, str) or not callable(factory):
                raise pytest.UsageError(
                    f"pytest_amqp_core_harnesses returned {name!r}: {factory!r}; expected "
                    "an adapter name and a harness factory"
                )
            merged.setdefault(name, factory)
    return merged


def _requested(config: pytest.Config) -> list[str] | None:
    values: list[str] | None = config.getoption("amqp_adapter", default=None)
    if not values:
        env = os.environ.get(ADAPTERS_ENV, "").strip()
        values = [env] if env else None
    if values is None:
        return None
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise pytest.UsageError("--amqp-adapter: no adapter named")
    return list(dict.fromkeys(names))


def selected_adapters(
    config: pytest.Config, registered: Mapping[str, HarnessFactory] | None = None,
    *, strict: bool = True,
) -> Selection:
    """The adapters this run covers (see the module comment).

    :param config: the pytest config
    :param registered: the harnesses registered by hooks (all of them when None)
    :param strict: raise for a named adapter that is neither installed nor registered
        (else leave it out: a conftest loaded later may register it)
    :raises pytest.UsageError: ``strict`` and a named adapter is unknown
    """
    if registered is None:
        registered = _registered(config.hook, config)
    installed = _installed()
    requested = _requested(config)
    known = sorted(set(installed) | set(registered))
    if requested is None:
        names = known
    else:
        unknown = [name for name in requested if name not in known]
        if unknown and strict:
            raise pytest.UsageError(
                f"amqp_core kit: adapter(s) {', '.join(map(repr, unknown))} are not installed "
                f"and no pytest_amqp_core_harnesses hook registers them (installed: "
                f"{', '.join(sorted(installed)) or 'none'})"
            )
        names = [name for name in requested if name in known]
    return Selection(
        loop=tuple(n for n in names if n not in BLOCKING_ADAPTERS),
        blocking=tuple(n for n in names if n in BLOCKING_ADAPTERS),
        explicit=requested is not None,
    )


def own_process_adapters(names: list[str] | tuple[str, ...]) -> list[str]:
    """The adapters among ``names`` whose built-in harness wants a process of its own."""
    return [n for n in names if getattr(harness_class_for(n), "own_process", False)]


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def amqp_adapter() -> str:
    """The adapter under test (parametrized by the plugin; this body only runs when it was not)."""
    raise pytest.UsageError(
        "amqp_adapter was not parametrized: enable the kit with -p amqp_core.testing or "
        'pytest_plugins = ["amqp_core.testing"] in the top-level conftest'
    )


@pytest.fixture
def amqp_blocking_adapter() -> str:
    """The blocking adapter under test (parametrized by the plugin)."""
    raise pytest.UsageError(
        "amqp_blocking_adapter was not parametrized: enable the kit with -p amqp_core.testing"
    )


@pytest.fixture
def amqp_harness(amqp_adapter: str, request: pytest.FixtureRequest) -> Iterator[LoopHarness]:
    """A fresh :class:`~amqp_core.testing.harness.LoopHarness` of the adapter under test."""
    registered = _registered(request.node.ihook, request.config)
    harness = make_harness(amqp_adapter, registered)
    try:
        yield harness
    finally:
        harness.close()


@pytest.fixture
def amqp_client(amqp_harness: LoopHarness) -> Iterator[KitClient]:
    """A :class:`~amqp_core.testing.client.KitClient` on ``amqp_harness``; its connections are
    closed afterwards."""
    client = KitClient(amqp_harness)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def amqp_peer() -> Iterator[Callable[..., ScriptedPeer]]:
    """``amqp_peer(**options)`` starts a :class:`~amqp_core.testing.peer.ScriptedPeer`;
    every peer is closed afterwards."""
    peers: list[ScriptedPeer] = []

    def start(**options: Any) -> ScriptedPeer:
        peer = ScriptedPeer(**options)
        peers.append(peer)
        return peer

    try:
        yield start
    finally:
        for peer in peers:
            peer.close()


@pytest.fixture(scope="session")
def amqp_broker(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The broker of the live scenarios: ``url``, ``host``, ``port``, ``is_private``.

    ``--amqp-url`` / ``$AMQP_URL``: that broker as it is; ``--amqp-private-broker``: a
    private node started here and stopped at the end; otherwise the test is skipped.
    """
    from .broker import ExternalBroker, PrivateBroker

    url = request.config.getoption("amqp_url", default=None) or os.environ.get("AMQP_URL")
    if url:
        yield ExternalBroker.from_url(url)
        return
    if request.config.getoption("amqp_private_broker", default=False):
        with PrivateBroker() as node:
            yield node
        return
    pytest.skip("no broker for the live scenarios: pass --amqp-url=URL or --amqp-private-broker")


@pytest.fixture
def amqp_private_broker(amqp_broker: Any) -> Any:
    """The broker, when it is a private node the kit can control (``ctl``); else skip."""
    if not getattr(amqp_broker, "is_private", False) or not callable(
        getattr(amqp_broker, "close_connection", None)
    ):
        pytest.skip("needs a private broker the kit can control (rabbitmqctl): "
                    "--amqp-private-broker")
    return amqp_broker


@pytest.fixture
def amqp_params(amqp_broker: Any) -> Callable[..., Any]:
    """``amqp_params(**overrides)``: connection parameters for the broker (from its URL)."""
    from ..parameters import URLParameters

    def make(**overrides: Any) -> Any:
        parameters = URLParameters(amqp_broker.url)
        parameters.connection_attempts = 1
        for name, value in overrides.items():
            if not hasattr(parameters, name):
                raise TypeError(f"unknown connection parameter {name!r}")
            setattr(parameters, name, value)
        return parameters

    return make


@pytest.fixture
def amqp_blocking_connect(
    amqp_blocking_adapter: str, amqp_params: Callable[..., Any]
) -> Iterator[Callable[..., Any]]:
    """``amqp_blocking_connect(**parameter_overrides)`` opens the blocking adapter's connection
    to the broker; every connection is closed afterwards."""
    from ..plugins import get_connection_class

    connection_class = get_connection_class(amqp_blocking_adapter)
    opened: list[Any] = []

    def connect(**overrides: Any) -> Any:
        connection = connection_class(amqp_params(**overrides))
        opened.append(connection)
        return connection

    try:
        yield connect
    finally:
        for connection in opened:
            if connection.is_open:
                connection.close()
