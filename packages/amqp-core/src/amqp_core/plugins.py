"""The adapter plugin host: find adapters by name, load only the one asked for.

Theory of operation
-------------------
An adapter is provided by a distribution that declares an entry point in the
group :data:`ENTRY_POINT_GROUP` (``amqp_core.adapters``) named after the
adapter; the entry point names a plugin object (a module, a class or an
instance) with a :func:`amqp_core.hookspecs.amqp_core_adapters` hook
implementation.  amqp_core's own ``select`` and ``blocking`` adapters are
declared the same way (``amqp_core.adapters.builtin_plugin``).

* Listing (:func:`installed_adapters`) reads entry-point metadata only:
  nothing is imported, so listing never drags in tornado, twisted or gevent.
* Asking for one adapter (:func:`get_adapter`) loads that one entry point with
  ``PluginManager.load_setuptools_entrypoints(group, name=NAME)``, calls that
  one plugin's hook (never the others'), checks what it returned, and caches
  the :class:`~amqp_core.hookspecs.AdapterDescription`.
* A plugin that fails to import, has a hook pluggy rejects, implements a hook
  that does not exist, raises from its hook or returns something that is not a
  list of descriptions is reported as :class:`AdapterLoadError` naming the
  adapter and its distribution; it is blocked, and every other adapter keeps
  working.  An adapter nobody declared is :class:`AdapterNotFoundError`, which
  lists the installed adapters and names the package to install for the
  well-known ones.
* Before an adapter's entry point is loaded, the range of amqp-core versions
  its distribution declares (its ``Requires-Dist: amqp-core ...`` metadata) is
  compared with the installed amqp-core's version; an adapter made for other
  core versions is refused, never imported, with
  :class:`AdapterIncompatibleError` (an :class:`AdapterLoadError`) naming the
  adapter, its range and the installed version.  The comparison is this
  core's own small PEP 440 subset (:mod:`amqp_core.version_ranges`: the
  operators ``== != <= >= < > ~= ===`` and ``==X.*``), so the core still depends on
  pluggy alone.  Installed pre-releases satisfy a range that contains them
  (as pip's own consistency check does); ``<2.0`` excludes ``2.0rc1``.
* Plugins can also be registered in-process (:func:`register_plugin`): handy
  for tests and for applications that ship their own adapter.

The registry is thread-safe (one lock around loading).
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import pluggy

from . import hookspecs
from .hookspecs import AdapterDescription, hookimpl
from .version_ranges import CORE_DISTRIBUTION, core_specifier, version_satisfies

__all__ = [
    "CORE_DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "KNOWN_ADAPTER_PACKAGES",
    "AdapterDescription",
    "AdapterError",
    "AdapterIncompatibleError",
    "AdapterInfo",
    "AdapterLoadError",
    "AdapterNotFoundError",
    "AdapterRegistry",
    "core_specifier",
    "get_adapter",
    "get_connection_class",
    "hookimpl",
    "installed_adapters",
    "plugin_manager",
    "register_plugin",
    "version_satisfies",
]

LOGGER = logging.getLogger(__name__)

#: The entry-point group adapters are declared in; the entry-point name is the adapter name.
ENTRY_POINT_GROUP: Final = "amqp_core.adapters"


#: What to install for the adapters this project knows of (used in "not installed" errors).
KNOWN_ADAPTER_PACKAGES: Final[dict[str, str]] = {
    "select": "amqp-core",
    "blocking": "amqp-core",
    "asyncio": "amqp-adapter-asyncio",
    "uvloop": "amqp-adapter-asyncio[uvloop]",
    "tornado": "amqp-adapter-tornado",
    "twisted": "amqp-adapter-twisted",
    "gevent": "amqp-adapter-gevent",
}


class AdapterError(Exception):
    """Base of the plugin host's errors.

    :param name: the adapter's name
    :param message: what went wrong
    """

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        #: The adapter's name.
        self.name = name


class AdapterNotFoundError(AdapterError, LookupError):
    """No installed distribution provides an adapter of that name.

    :param name: the adapter asked for
    :param installed: the names of the installed adapters
    """

    def __init__(self, name: str, installed: Sequence[str]) -> None:
        #: The installed adapters' names, sorted.
        self.installed = tuple(sorted(installed))
        package = KNOWN_ADAPTER_PACKAGES.get(name)
        #: The package to install, when the name is a known adapter's.
        self.package = package
        listing = ", ".join(self.installed) or "none"
        if package is not None:
            message = (
                f"amqp_core adapter {name!r} is not installed; install it with: "
                f"pip install {package} (installed adapters: {listing})"
            )
        else:
            message = (
                f"unknown amqp_core adapter {name!r} (installed adapters: {listing}); an adapter "
                f"is provided by a distribution declaring an entry point named {name!r} in the "
                f"group {ENTRY_POINT_GROUP!r}"
            )
        super().__init__(name, message)


class AdapterLoadError(AdapterError):
    """An installed adapter could not be loaded (import error, broken hook contract ...).

    The original exception, if any, is the ``__cause__``.

    :param name: the adapter's name
    :param distribution: the distribution that declared it, when known
    :param reason: what went wrong
    """

    def __init__(self, name: str, distribution: str | None, reason: str) -> None:
        #: The distribution that declared the adapter, when known.
        self.distribution = distribution
        #: What went wrong.
        self.reason = reason
        origin = f" (from distribution {distribution!r})" if distribution else ""
        super().__init__(name, f"amqp_core adapter {name!r}{origin} {self._verb}: {reason}")

    _verb = "is broken"

    def _again(self) -> AdapterLoadError:
        """A fresh copy of this error (a failed adapter is reported again on every lookup)."""
        return AdapterLoadError(self.name, self.distribution, self.reason)


class AdapterIncompatibleError(AdapterLoadError):
    """An installed adapter declares a range of amqp-core versions that excludes the installed one.

    The adapter is refused before anything of it is imported.

    :param name: the adapter's name
    :param distribution: the distribution that declared it
    :param required: its version specifier on amqp-core, e.g. ``">=0.1,<0.2"``
    :param installed: the installed amqp-core's version
    """

    _verb = "is incompatible with the installed amqp-core"

    def __init__(self, name: str, distribution: str | None, required: str, installed: str) -> None:
        #: The adapter's version specifier on amqp-core.
        self.required = required
        #: The installed amqp-core's version.
        self.installed = installed
        package = distribution or "the adapter"
        super().__init__(
            name, distribution,
            f"it requires {CORE_DISTRIBUTION}{required} but {CORE_DISTRIBUTION} {installed} is "
            f"installed; install a release of {package} made for {CORE_DISTRIBUTION} "
            f"{installed}, or an {CORE_DISTRIBUTION} matching {required!r}",
        )

    def _again(self) -> AdapterIncompatibleError:
        return AdapterIncompatibleError(self.name, self.distribution, self.required,
                                        self.installed)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterInfo:
    """An installed adapter, as its metadata describes it (nothing imported).

    :param name: the adapter's (and entry point's) name
    :param distribution: the distribution declaring it (None for in-process plugins)
    :param version: that distribution's version
    :param entry_point: the entry point's value (``"module:attr"``), or the
        plugin's name for in-process plugins
    """

    name: str
    distribution: str | None
    version: str | None
    entry_point: str


def _dist_of(entry_point: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return None, None
    try:
        return dist.metadata["Name"], dist.version
    except Exception:  # broken metadata must not break listing
        return None, None


class AdapterRegistry:
    """Finds, loads and caches adapters of one entry-point group.

    :param group: the entry-point group to read
    """

    def __init__(self, group: str = ENTRY_POINT_GROUP) -> None:
        if not isinstance(group, str) or not group:
            raise TypeError("group must be a non-empty str")
        self.group = group
        self._manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self._manager.add_hookspecs(hookspecs)
        self._lock = threading.RLock()
        self._descriptions: dict[str, AdapterDescription] = {}
        self._failures: dict[str, AdapterLoadError] = {}
        self._local_plugins: list[object] = []

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The underlying pluggy manager (plugins loaded so far)."""
        return self._manager

    # ------------------------------------------------------------ listing

    def _entry_points(self) -> dict[str, importlib.metadata.EntryPoint]:
        found: dict[str, importlib.metadata.EntryPoint] = {}
        for entry_point in importlib.metadata.entry_points(group=self.group):
            found.setdefault(entry_point.name, entry_point)
        return found

    def installed(self) -> list[AdapterInfo]:
        """The installed adapters, sorted by name, read from metadata only.

        In-process plugins (:meth:`register`) are included; their hooks are called.
        """
        infos: dict[str, AdapterInfo] = {}
        for name, entry_point in self._entry_points().items():
            distribution, version = _dist_of(entry_point)
            infos[name] = AdapterInfo(
                name=name, distribution=distribution, version=version,
                entry_point=entry_point.value,
            )
        with self._lock:
            for plugin in list(self._local_plugins):
                plugin_name = self._manager.get_name(plugin) or repr(plugin)
                try:
                    descriptions = self._call_hook(plugin, plugin_name, None)
                except AdapterLoadError as error:
                    LOGGER.warning("%s", error)
                    continue
                for description in descriptions:
                    infos.setdefault(description.name, AdapterInfo(
                        name=description.name, distribution=description.distribution,
                        version=description.version, entry_point=plugin_name,
                    ))
        return [infos[name] for name in sorted(infos)]

    # ------------------------------------------------------------ loading

    def get(self, name: str) -> AdapterDescription:
        """The description of adapter ``name``, loading its entry point on first use.

        :raises TypeError: ``name`` is not a str
        :raises AdapterNotFoundError: no installed distribution provides it
        :raises AdapterLoadError: its plugin could not be loaded or broke the hook contract
        """
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        with self._lock:
            cached = self._descriptions.get(name)
            if cached is not None:
                return cached
            failure = self._failures.get(name)
            if failure is not None:
                raise failure._again() from failure.__cause__
            entry_points = self._entry_points()
            entry_point = entry_points.get(name)
            if entry_point is None:
                description = self._from_local_plugins(name)
                if description is None:
                    raise AdapterNotFoundError(name, self._known_names(entry_points))
            else:
                description = self._load(name, entry_point)
            self._descriptions[name] = description
            return description

    def connection_class(self, name: str) -> type:
        """The connection class of adapter ``name`` (importing it if it was a dotted path).

        :raises AdapterNotFoundError: no installed distribution provides it
        :raises AdapterLoadError: the plugin or the class could not be loaded
        """
        description = self.get(name)
        try:
            return description.load_connection_class()
        except Exception as error:
            raise AdapterLoadError(
                name, description.distribution,
                f"its connection class {description.connection_class_path!r} could not be "
                f"loaded: {error!r}",
            ) from error

    def register(self, plugin: object, name: str | None = None) -> None:
        """Register an in-process plugin (one not declared through an entry point).

        :param plugin: a module, class or object with an ``amqp_core_adapters`` hookimpl
        :param name: the plugin's name in the manager (pluggy's default when None)
        :raises AdapterLoadError: pluggy rejects the plugin
        """
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str or None, not {type(name).__name__}")
        with self._lock:
            try:
                registered = self._manager.register(plugin, name=name)
            except Exception as error:
                raise AdapterLoadError(
                    name or repr(plugin), None, f"the plugin was rejected: {error}"
                ) from error
            if registered is not None:
                self._local_plugins.append(plugin)

    # ------------------------------------------------------------ internals

    def _known_names(self, entry_points: dict[str, importlib.metadata.EntryPoint]) -> list[str]:
        names = set(entry_points)
        for plugin in self._local_plugins:
            plugin_name = self._manager.get_name(plugin) or repr(plugin)
            try:
                names.update(d.name for d in self._call_hook(plugin, plugin_name, None))
            except AdapterLoadError:
                continue
        return sorted(names)

    def _from_local_plugins(self, name: str) -> AdapterDescription | None:
        for plugin in self._local_plugins:
            plugin_name = self._manager.get_name(plugin) or repr(plugin)
            try:
                descriptions = self._call_hook(plugin, plugin_name, None)
            except AdapterLoadError as error:
                LOGGER.warning("%s", error)
                continue
            for description in descriptions:
                if description.name == name:
                    return description
        return None

    def _fail(
        self, name: str, distribution: str | None, reason: str, cause: BaseException | None
    ) -> AdapterLoadError:
        error = AdapterLoadError(name, distribution, reason)
        error.__cause__ = cause
        self._failures[name] = error
        # keep a half-registered plugin from lingering, and never load it again
        try:
            if self._manager.has_plugin(name):
                self._manager.unregister(name=name)
            self._manager.set_blocked(name)
        except Exception:  # pragma: no cover - pluggy refused the clean-up; nothing else to do
            LOGGER.debug("could not unregister broken plugin %r", name, exc_info=True)
        return error

    def _check_compatible(
        self, name: str, entry_point: importlib.metadata.EntryPoint, distribution: str | None
    ) -> None:
        """Refuse the adapter when its amqp-core range excludes the installed core."""
        dist = getattr(entry_point, "dist", None)
        installed = _core_version()
        if dist is None or installed is None:
            return  # no metadata to read, or a core running from an uninstalled tree
        try:
            required = core_specifier(dist.requires or ())
            compatible = required is None or version_satisfies(installed, required)
        except Exception as error:  # our PEP 440 subset must never block a working adapter
            LOGGER.warning(
                "cannot check the amqp-core range of adapter %r (%s): %s", name, distribution,
                error,
            )
            return
        if required is not None and not compatible:
            refused = AdapterIncompatibleError(name, distribution, required, installed)
            self._failures[name] = refused
            raise refused

    def _load(self, name: str, entry_point: importlib.metadata.EntryPoint) -> AdapterDescription:
        distribution, version = _dist_of(entry_point)
        self._check_compatible(name, entry_point, distribution)
        if not self._manager.has_plugin(name):
            try:
                self._manager.load_setuptools_entrypoints(self.group, name=name)
            except pluggy.PluginValidationError as error:
                raise self._fail(
                    name, distribution,
                    f"its plugin {entry_point.value!r} breaks the hook contract: {error}", error,
                ) from error
            except Exception as error:
                raise self._fail(
                    name, distribution,
                    f"its plugin {entry_point.value!r} could not be loaded: {error!r}", error,
                ) from error
        plugin = self._manager.get_plugin(name)
        if plugin is None:
            raise self._fail(
                name, distribution, f"no plugin was registered from {entry_point.value!r}", None
            )
        try:
            descriptions = self._call_hook(plugin, name, distribution)
        except AdapterLoadError as error:
            raise self._fail(name, distribution, error.reason, error.__cause__) from (
                error.__cause__
            )
        for description in descriptions:
            if description.name == name:
                return replace(
                    description,
                    distribution=description.distribution or distribution,
                    version=description.version or version,
                )
        provided = ", ".join(repr(d.name) for d in descriptions) or "nothing"
        raise self._fail(
            name, distribution,
            f"its plugin {entry_point.value!r} describes {provided}, not an adapter named "
            f"{name!r} (the entry-point name must be the adapter name)",
            None,
        )

    def _call_hook(
        self, plugin: object, name: str, distribution: str | None
    ) -> list[AdapterDescription]:
        """Call ``amqp_core_adapters`` on ``plugin`` only and check what it returned."""
        manager = self._manager
        callers = manager.get_hookcallers(plugin) or []
        unknown = sorted(caller.name for caller in callers if not caller.has_spec())
        if unknown:
            raise AdapterLoadError(
                name, distribution,
                f"it implements hooks amqp_core does not define: {', '.join(unknown)}",
            )
        if not any(caller.name == "amqp_core_adapters" for caller in callers):
            raise AdapterLoadError(
                name, distribution, "its plugin implements no amqp_core_adapters() hook"
            )
        others = [p for _n, p in manager.list_name_plugin() if p is not None and p is not plugin]
        hook = manager.subset_hook_caller("amqp_core_adapters", remove_plugins=others)
        try:
            results: list[Any] = hook()
        except Exception as error:
            raise AdapterLoadError(
                name, distribution, f"its amqp_core_adapters() hook raised {error!r}"
            ) from error
        descriptions: list[AdapterDescription] = []
        for result in results:
            if isinstance(result, AdapterDescription) or not isinstance(result, list | tuple):
                raise AdapterLoadError(
                    name, distribution,
                    "its amqp_core_adapters() hook must return a list of AdapterDescription, "
                    f"not {type(result).__name__}",
                )
            for item in result:
                if not isinstance(item, AdapterDescription):
                    raise AdapterLoadError(
                        name, distribution,
                        "its amqp_core_adapters() hook returned a list holding a "
                        f"{type(item).__name__}, not an AdapterDescription",
                    )
                descriptions.append(item)
        return descriptions


# ---------------------------------------------------------------- version ranges


def _core_version() -> str | None:
    """The installed amqp-core's version (None when amqp_core runs from an uninstalled tree)."""
    try:
        return importlib.metadata.version(CORE_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return None


_registry = AdapterRegistry()


def installed_adapters() -> list[AdapterInfo]:
    """The installed adapters, sorted by name, from entry-point metadata (nothing imported).

    :returns: one :class:`AdapterInfo` per adapter
    """
    return _registry.installed()


def get_adapter(name: str) -> AdapterDescription:
    """The description of the adapter ``name``; loads that one entry point on first use.

    :param name: the adapter's name (``"select"``, ``"blocking"``, ``"asyncio"`` ...)
    :raises AdapterNotFoundError: not installed (the message says what to install)
    :raises AdapterLoadError: installed but broken
    """
    return _registry.get(name)


def get_connection_class(name: str) -> type:
    """The connection class of the adapter ``name`` (e.g. ``AsyncioConnection``).

    :param name: the adapter's name
    :raises AdapterNotFoundError: not installed (the message says what to install)
    :raises AdapterLoadError: installed but broken
    """
    return _registry.connection_class(name)


def register_plugin(plugin: object, name: str | None = None) -> None:
    """Register an in-process adapter plugin (one no entry point declares).

    :param plugin: a module, class or object with an ``amqp_core_adapters`` hookimpl
    :param name: the plugin's name (pluggy's default when None)
    :raises AdapterLoadError: pluggy rejects the plugin
    """
    _registry.register(plugin, name)


def plugin_manager() -> pluggy.PluginManager:
    """The process-wide pluggy manager (holding the plugins loaded so far)."""
    return _registry.plugin_manager
